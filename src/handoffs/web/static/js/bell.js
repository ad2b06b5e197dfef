// The bell: unread count, a panel of notifications, mark as read, live increments.
// An escalation someone already took reads as taken ("Taken by Sam Senior"), not as waiting.

import { api } from "./api.js";
import { ago } from "./time.js";

/** Entries that ask someone to pick a handoff up: they say whether it is still waiting. */
const ASKS = new Set(["escalation", "parked", "escalated"]);
/** The other kinds, as a short tag before the title. */
const KIND_TAG = {
  claimed: "Picked up",
  released: "Back in the queue",
  assigned: "Assigned to you",
  resolved: "Resolved",
  comment: "Comment",
};
const ACTOR = {
  handoff_claimed: "claimed_by",
  handoff_released: "released_by",
  handoff_reassigned: "reassigned_by",
  handoff_resolved: "resolved_by",
};

export class Bell {
  constructor({ stream, userId, unread }) {
    this.userId = userId;
    this.button = document.getElementById("bell-button");
    this.badge = document.getElementById("bell-count");
    this.panel = document.getElementById("bell-panel");
    this.list = document.getElementById("bell-list");
    this.empty = document.getElementById("bell-empty");
    this.loading = document.getElementById("bell-loading");
    this.readAll = document.getElementById("bell-read-all");
    this.count = unread;
    this.refreshing = null;
    this.again = false;
    if (!this.button) return;

    this.button.addEventListener("click", () => (this.isOpen() ? this.close(true) : this.open()));
    this.readAll.addEventListener("click", () => this.markAllRead());
    this.list.addEventListener("click", (event) => this.onListClick(event));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen()) this.close(true);
    });
    document.addEventListener("click", (event) => {
      if (this.isOpen() && !document.getElementById("bell").contains(event.target)) this.close(false);
    });

    stream.on("handoff_created", (event) => {
      if ((event.recipient_ids || []).includes(this.userId)) this.refresh();
    });
    // Whoever acts, the people concerned (creator, claimer, new claimer) get an entry in the
    // same transaction as the event: re-read the count, unless this user did it.
    this.takenBy = new Map();
    for (const [type, field] of Object.entries(ACTOR)) {
      stream.on(type, (event) => {
        if (type === "handoff_claimed") this.takenBy.set(event.handoff_id, event.claimed_by?.name);
        if (type === "handoff_reassigned") this.takenBy.set(event.handoff_id, event.to_user?.name);
        if (event[field]?.id !== this.userId) this.refresh();
        else if (this.isOpen()) this.load();
      });
    }
    stream.on("handoff_commented", (event) => {
      if (event.comment?.author?.id !== this.userId) this.refresh();
    });
    stream.on("resync", () => this.refresh());
    this.setCount(unread);
  }

  isOpen() {
    return !this.panel.hidden;
  }

  async open() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    await this.load();
  }

  close(returnFocus) {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (returnFocus) this.button.focus();
  }

  setCount(count) {
    this.count = Math.max(0, count);
    this.badge.textContent = this.count > 99 ? "99+" : String(this.count);
    this.badge.hidden = this.count === 0;
    this.button.setAttribute("aria-label", `Notifications, ${this.count} unread`);
    this.button.dataset.unread = String(this.count);
  }

  /** Re-read the count (and the open panel): the server's number, so a replayed event cannot count twice. */
  refresh() {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = (async () => {
      try {
        const { unread } = await api("GET", "/api/v1/notifications/unread-count");
        this.setCount(unread);
        if (this.isOpen()) await this.load();
      } catch (error) {
        console.warn("bell refresh failed", error);
      } finally {
        this.refreshing = null;
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      }
    })();
  }

  async load() {
    this.loading.hidden = false;
    try {
      const items = await api("GET", "/api/v1/notifications");
      this.render(items);
      this.setCount(items.filter((n) => !n.read_at).length);
    } catch (error) {
      this.loading.textContent = error.message;
      return;
    }
    this.loading.hidden = true;
  }

  render(items) {
    this.list.replaceChildren(...items.map((n) => this.item(n)));
    this.empty.hidden = items.length > 0;
    this.readAll.hidden = !items.some((n) => !n.read_at);
  }

  item(n) {
    const li = document.createElement("li");
    li.className = `notif${n.read_at ? "" : " is-unread"}`;
    li.dataset.id = n.id;
    const dot = document.createElement("span");
    dot.className = "notif-dot";
    dot.setAttribute("aria-hidden", "true");
    const text = document.createElement("div");
    const link = document.createElement("a");
    link.className = "notif-title";
    link.textContent = n.title;
    link.href = n.session_id && n.handoff_id ? `/sessions/${n.session_id}/handoffs/${n.handoff_id}` : "/";
    link.dataset.action = "open";
    const time = document.createElement("time");
    time.className = "notif-time";
    time.dateTime = n.created_at;
    time.dataset.ago = "";
    time.textContent = ago(n.created_at);
    const state = this.stateTag(n);
    if (state) text.append(state);
    text.append(link, time);
    li.append(dot, text);
    if (!n.read_at) {
      const mark = document.createElement("button");
      mark.type = "button";
      mark.className = "link-button";
      mark.dataset.action = "read";
      mark.textContent = "Mark as read";
      mark.setAttribute("aria-label", `Mark as read: ${n.title}`);
      li.append(mark);
    } else {
      li.append(document.createElement("span"));
    }
    return li;
  }

  /** "Waiting" / "Taken by Sam Senior" / "Resolved" for an ask; the kind's tag for the rest. */
  stateTag(n) {
    let text = null;
    let state = n.handoff_state || "";
    if (ASKS.has(n.kind)) {
      if (state === "claimed") {
        const who = this.takenBy.get(n.handoff_id) || n.handoff_claimed_by?.name;
        text = who ? `Taken by ${who}` : "Taken";
      } else if (state === "resolved") text = "Resolved";
      else if (state === "open") text = "Waiting";
    } else if (KIND_TAG[n.kind]) {
      text = KIND_TAG[n.kind];
      state = n.kind;
    }
    if (!text) return null;
    const tag = document.createElement("span");
    tag.className = `notif-state notif-state-${state || "none"}`;
    tag.textContent = text;
    return tag;
  }

  async onListClick(event) {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const li = target.closest(".notif");
    if (target.dataset.action === "read") {
      await this.markRead(li);
      li.querySelector(".notif-title").focus(); // its button is gone: keep the keyboard user in place
    } else if (target.dataset.action === "open" && li.classList.contains("is-unread")) {
      event.preventDefault();
      await this.markRead(li).catch(() => {});
      location.assign(target.href);
    }
  }

  async markRead(li) {
    await api("POST", `/api/v1/notifications/${li.dataset.id}/read`);
    li.classList.remove("is-unread");
    li.querySelector("[data-action=read]")?.replaceWith(document.createElement("span"));
    this.setCount(this.count - 1);
    this.readAll.hidden = !this.list.querySelector(".is-unread");
  }

  async markAllRead() {
    await api("POST", "/api/v1/notifications/read-all");
    for (const li of this.list.querySelectorAll(".notif.is-unread")) {
      li.classList.remove("is-unread");
      li.querySelector("[data-action=read]")?.replaceWith(document.createElement("span"));
    }
    this.setCount(0);
    this.readAll.hidden = true;
    this.button.focus();
  }
}
