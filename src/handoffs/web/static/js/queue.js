// The escalation queue: cards in server order (urgent first, then oldest), live arrivals
// sliding in at their place, claimed cards leaving every open queue, "Pick up".

import { api } from "./api.js";
import { ago, firstName, formatDuration, secondsSince } from "./time.js";

const RANK = { low: 0, normal: 1, high: 2, urgent: 3 };
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

/** A `handoff_created` event in the shape of a queue item (GET /api/v1/ai-sessions/queue). */
function itemFromEvent(event) {
  return {
    id: event.handoff_id,
    session_id: event.session_id,
    intent: event.intent || "escalate",
    priority: event.priority || "normal",
    created_by: event.created_by || { id: "", name: "Someone" },
    created_at: event.at || new Date().toISOString(),
    session_title: event.session_title || "",
    problem_summary: event.problem_summary || "",
    psa_ticket_id: event.psa_ticket_id || null,
    target_user_id: event.target_user_id || null,
  };
}

function snippet(text, length = 140) {
  const flat = (text || "").split(/\s+/).filter(Boolean).join(" ");
  return flat.length <= length ? flat : `${flat.slice(0, length).trimEnd()}…`;
}

export class Queue {
  constructor({ stream, userId, people, items, unseen, announce }) {
    this.list = document.getElementById("queue");
    this.template = document.getElementById("queue-card-template");
    this.empty = document.getElementById("queue-empty");
    this.countEl = document.getElementById("queue-count");
    this.notice = document.getElementById("claim-notice");
    this.userId = userId;
    this.people = people || {};
    this.unseen = unseen;
    this.announce = announce;
    this.reloading = null;
    this.again = false;
    this.noticeTimer = null;

    this.reconcile(items, { animate: false });
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action=claim]");
      if (button) this.claim(button.closest(".card"), button);
    });
    setInterval(() => this.tick(), 1000);

    stream.on("handoff_created", (event) => this.arrive(event));
    stream.on("handoff_claimed", (event) => this.leave(event.handoff_id));
    stream.on("handoff_released", () => this.reload());
    stream.on("resync", () => this.reload());
  }

  cards() {
    return [...this.list.querySelectorAll(".card:not(.is-leaving)")];
  }

  find(id) {
    return this.list.querySelector(`.card[data-id="${CSS.escape(id)}"]`);
  }

  static key(card) {
    return [-Number(card.dataset.rank), Date.parse(card.dataset.createdAt), card.dataset.id];
  }

  static before(a, b) {
    for (let i = 0; i < a.length; i += 1) {
      if (a[i] < b[i]) return true;
      if (a[i] > b[i]) return false;
    }
    return false;
  }

  build(item) {
    const card = this.template.content.firstElementChild.cloneNode(true);
    const slot = (name) => card.querySelector(`[data-slot="${name}"]`);
    const contextUrl = `/sessions/${item.session_id}/handoffs/${item.id}`;
    card.dataset.id = item.id;
    card.dataset.sessionId = item.session_id;
    card.dataset.priority = item.priority;
    card.dataset.rank = String(RANK[item.priority] ?? 1);
    card.dataset.createdAt = item.created_at;

    const priority = slot("priority");
    priority.textContent = item.priority[0].toUpperCase() + item.priority.slice(1);
    priority.classList.add(`pill-priority-${item.priority}`);
    const intent = slot("intent");
    const escalated = item.intent === "escalate";
    intent.textContent = escalated ? "Escalated" : "Parked";
    intent.classList.add(escalated ? "pill-status-escalated" : "pill-status-parked");
    const ticket = slot("ticket");
    if (item.psa_ticket_id) ticket.textContent = `#${item.psa_ticket_id}`;
    else ticket.remove();

    const titleId = `card-title-${item.id}`;
    const link = slot("link");
    link.id = titleId;
    link.href = contextUrl;
    link.textContent = snippet(item.problem_summary) || item.session_title || "Untitled session";
    card.querySelector("article").setAttribute("aria-labelledby", titleId);
    slot("open").href = contextUrl;
    slot("open").setAttribute("aria-describedby", titleId);

    slot("creator").textContent = item.created_by.name;
    const target = slot("target");
    if (item.target_user_id) {
      target.textContent =
        item.target_user_id === this.userId ? " for you" : ` for ${this.people[item.target_user_id] || "a colleague"}`;
    } else {
      target.remove();
    }
    const session = slot("session");
    if (item.session_title) session.textContent = item.session_title;
    else session.remove();

    const button = card.querySelector("[data-action=claim]");
    button.setAttribute("aria-describedby", titleId);
    if (item.created_by.id === this.userId) {
      // Your own escalation: read it, but picking it up yourself makes no sense.
      const own = document.createElement("span");
      own.className = "pill";
      own.textContent = "Your handoff";
      button.replaceWith(own);
    }
    this.updateWaiting(card);
    return card;
  }

  updateWaiting(card) {
    const waiting = card.querySelector('[data-slot="waiting"]');
    waiting.textContent = `waiting ${formatDuration(secondsSince(card.dataset.createdAt))}`;
  }

  tick() {
    for (const card of this.cards()) this.updateWaiting(card);
  }

  /** Make the list show `items` in their order: kept cards stay (and keep focus), new ones slide in. */
  reconcile(items, { animate }) {
    const wanted = new Set(items.map((item) => item.id));
    for (const card of this.cards()) {
      if (!wanted.has(card.dataset.id)) this.leave(card.dataset.id, { quiet: true });
    }
    let previous = null;
    for (const item of items) {
      let card = this.find(item.id);
      const isNew = !card;
      if (isNew) card = this.build(item);
      const anchor = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (card !== anchor) this.list.insertBefore(card, anchor);
      if (isNew) this.enter(card, animate);
      previous = card;
    }
    this.updateCount();
  }

  arrive(event) {
    if (this.find(event.handoff_id)) return; // a replayed event the page already shows
    const card = this.build(itemFromEvent(event));
    const key = Queue.key(card);
    const next = this.cards().find((other) => Queue.before(key, Queue.key(other)));
    this.list.insertBefore(card, next || null);
    this.enter(card, true);
    this.updateCount();
    if (event.created_by?.id !== this.userId) {
      this.unseen.bump();
      const what = event.intent === "park" ? "Parked" : "New escalation";
      this.announce(`${what} from ${event.created_by?.name || "a colleague"}: ${snippet(event.problem_summary, 80)}`);
    }
  }

  enter(card, animate) {
    if (!animate) {
      card.dataset.arrived = "initial";
      return;
    }
    card.dataset.arrived = "live";
    if (reducedMotion.matches) {
      card.dataset.entered = "instant";
      return;
    }
    card.classList.add("is-entering");
    card.addEventListener(
      "animationend",
      () => {
        card.classList.remove("is-entering");
        card.dataset.entered = "animated";
      },
      { once: true },
    );
  }

  leave(id, { quiet = false } = {}) {
    const card = this.find(id);
    if (!card || card.classList.contains("is-leaving")) return;
    const hadFocus = card.contains(document.activeElement);
    const remove = () => {
      card.remove();
      this.updateCount();
      if (hadFocus) document.getElementById("queue-heading").focus();
    };
    if (reducedMotion.matches || quiet) {
      remove();
      return;
    }
    card.classList.add("is-leaving");
    card.addEventListener("animationend", remove, { once: true });
    setTimeout(remove, 400); // in case the animation never runs (a hidden tab)
    this.updateCount();
  }

  updateCount() {
    const n = this.cards().length;
    this.countEl.textContent = `${n} open`;
    this.empty.hidden = n > 0;
  }

  /** Re-read the queue from the server (after `resync` or a release): one request in flight at a time. */
  reload() {
    if (this.reloading) {
      this.again = true;
      return;
    }
    this.reloading = (async () => {
      try {
        this.reconcile(await api("GET", "/api/v1/ai-sessions/queue"), { animate: true });
      } catch (error) {
        console.warn("queue reload failed", error);
      } finally {
        this.reloading = null;
        if (this.again) {
          this.again = false;
          this.reload();
        }
      }
    })();
  }

  async claim(card, button) {
    button.disabled = true;
    button.textContent = "Picking up…";
    const { id, sessionId } = card.dataset;
    try {
      await api("POST", `/api/v1/ai-sessions/${sessionId}/handoffs/${id}/claim`);
      location.assign(`/sessions/${sessionId}/handoffs/${id}`);
    } catch (error) {
      if (error.status === 409 && error.body.claimed_by) {
        // Lost the race: say who won, not that something failed.
        const winner = error.body.claimed_by;
        const who = winner.id === this.userId ? "You" : firstName(winner.name);
        const when = error.body.claimed_at ? ` ${ago(error.body.claimed_at)}` : "";
        this.showNotice(`${who} picked this up${when}.`);
        this.leave(id);
      } else if (error.status === 404) {
        this.showNotice("This handoff is no longer open.");
        this.leave(id);
      } else {
        this.showNotice(error.message);
        button.disabled = false;
        button.textContent = "Pick up";
      }
    }
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.notice.hidden = true;
    }, 8000);
  }
}
