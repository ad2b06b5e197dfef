// The escalation queue: cards in server order (urgent first, then oldest), live arrivals
// sliding in at their place, claimed, resolved and withdrawn cards leaving every open queue,
// released ones coming back, "Pick up". A switch shows all open, mine (raised for me by name)
// or the resolved ones; the search box filters any of them on the server. Each waiting
// escalation says where it is on the account's ladder (ladder.js), kept current every second
// and on `handoff_escalated`.

import { api } from "./api.js";
import { freshLadder, ladderState, stepped, stepsUp } from "./ladder.js";
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

/** A row of GET /api/v1/handoffs (the resolved view) in the shape of a queue item. */
function itemFromSearch(row) {
  return { ...row, targeted_at_me: false };
}

const OUTCOME_TEXT = {
  fixed: "fixed",
  workaround: "workaround",
  not_reproducible: "not reproducible",
  duplicate: "duplicate",
  other: "other",
  withdrawn: "withdrawn",
};

const EMPTY_TEXT = {
  open: "Nothing is waiting. New escalations appear here as they arrive.",
  mine: "Nothing is waiting for you by name. Handoffs raised for you appear here.",
  resolved: "No resolved handoffs yet.",
};

function snippet(text, length = 140) {
  const flat = (text || "").split(/\s+/).filter(Boolean).join(" ");
  return flat.length <= length ? flat : `${flat.slice(0, length).trimEnd()}…`;
}

export class Queue {
  constructor({ stream, userId, people, items, unseen, announce, policy, ladder }) {
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
    this.policy = policy || null;
    this.ladder = new Map(Object.entries(ladder || {}));
    this.ladderBusy = false;
    this.noticeTimer = null;

    this.view = "open";
    this.q = "";

    this.reconcile(items, { animate: false });
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action=claim]");
      if (button) this.claim(button.closest(".card"), button);
    });
    setInterval(() => this.tick(), 1000);

    this.switches = [...document.querySelectorAll(".segmented [data-view]")];
    for (const button of this.switches) {
      button.addEventListener("click", () => this.show(button.dataset.view, this.q));
    }
    const search = document.getElementById("queue-search");
    search?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.show(this.view, search.elements.q.value.trim());
    });

    stream.on("handoff_created", (event) => this.arrive(event));
    stream.on("handoff_claimed", (event) => {
      this.ladder.delete(event.handoff_id); // a claim cancels the rest of the ladder
      if (this.isOpenView()) this.leave(event.handoff_id);
    });
    stream.on("handoff_resolved", (event) => {
      // A withdrawn open one leaves the open queue; the resolved view gains it.
      if (this.isOpenView()) this.leave(event.handoff_id);
      else this.reload();
    });
    stream.on("handoff_released", () => this.isOpenView() && this.reload());
    stream.on("handoff_escalated", (event) => this.stepUp(event));
    stream.on("resync", () => this.reload());
  }

  /** A ladder level fired: the card turns overdue and says to whom it went (once per level). */
  stepUp(event) {
    const info = this.ladder.get(event.handoff_id);
    const card = this.find(event.handoff_id);
    if (!info) {
      if (card) this.refreshLadder(); // a card the page knows nothing about yet: ask the server
      return;
    }
    if ((info.level || 0) >= event.level) return; // a replayed event the page already shows
    this.ladder.set(event.handoff_id, stepped(info, event));
    if (!card || card.dataset.resolvedAt !== undefined) return;
    this.updateLadder(card);
    const who = this.policy?.labels?.[event.notify] || event.notify;
    this.announce(`Stepped up to ${who}: ${card.querySelector('[data-slot="link"]').textContent}`);
  }

  /** Re-read every open escalation's place on the ladder (after the queue was re-read). */
  async refreshLadder() {
    if (this.ladderBusy) return;
    this.ladderBusy = true;
    try {
      const data = await api("GET", "/parts/ladder");
      this.policy = data.policy;
      this.ladder = new Map(Object.entries(data.ladder || {}));
      for (const card of this.cards()) this.updateLadder(card);
    } catch (error) {
      console.warn("ladder refresh failed", error);
    } finally {
      this.ladderBusy = false;
    }
  }

  updateLadder(card) {
    const slot = card.querySelector('[data-slot="ladder"]');
    const waiting = card.querySelector('[data-slot="waiting"]');
    const result =
      card.dataset.resolvedAt === undefined
        ? ladderState(this.ladder.get(card.dataset.id), card.dataset, this.policy)
        : null;
    if (card.dataset.ladder === (result?.state ?? undefined) && slot.textContent === (result?.text ?? "")) return;
    for (const state of ["calm", "due", "overdue"]) {
      card.classList.toggle(`card-ladder-${state}`, result?.state === state);
      waiting.classList.toggle(`waiting-${state}`, result?.state === state);
    }
    if (!result) {
      delete card.dataset.ladder;
      slot.textContent = "";
      slot.hidden = true;
      return;
    }
    card.dataset.ladder = result.state;
    slot.className = `ladder ladder-${result.state}`;
    slot.textContent = result.text;
    slot.hidden = false;
  }

  isOpenView() {
    return this.view !== "resolved";
  }

  /** Switch the view (All open / Mine / Resolved) and the search; the server reads the list. */
  show(view, q) {
    this.view = view;
    this.q = q;
    this.list.dataset.view = view;
    for (const button of this.switches) button.setAttribute("aria-pressed", String(button.dataset.view === view));
    this.list.replaceChildren();
    this.updateCount();
    this.reload();
  }

  url() {
    const params = new URLSearchParams();
    if (this.q) params.set("q", this.q);
    if (this.view === "resolved") {
      params.set("state", "resolved");
      params.set("limit", "50");
      return `/api/v1/handoffs?${params}`;
    }
    if (this.view === "mine") params.set("mine", "true");
    const query = params.toString();
    return `/api/v1/ai-sessions/queue${query ? `?${query}` : ""}`;
  }

  async read() {
    const data = await api("GET", this.url());
    return this.view === "resolved" ? data.items.map(itemFromSearch) : data;
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
    card.dataset.intent = item.intent;
    if (item.state !== "resolved" && stepsUp(item.intent, item.priority) && !this.ladder.has(item.id)) {
      this.ladder.set(item.id, freshLadder(item.created_at, item.escalation_level || 0));
    }

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
    if (item.targeted_at_me || item.target_user_id === this.userId) {
      card.classList.add("is-for-you");
      slot("for-you").hidden = false;
    }

    const button = card.querySelector("[data-action=claim]");
    button.setAttribute("aria-describedby", titleId);
    if (item.state === "resolved") {
      card.classList.add("is-resolved");
      card.dataset.resolvedAt = item.resolved_at || "";
      const who = item.outcome === "withdrawn" ? "Withdrawn" : `Resolved by ${item.resolved_by?.name || "a colleague"}`;
      const how = item.outcome && item.outcome !== "withdrawn" ? ` (${OUTCOME_TEXT[item.outcome] || item.outcome})` : "";
      const resolution = slot("resolution");
      resolution.textContent = `${who}${how}${item.resolution ? `: ${snippet(item.resolution, 200)}` : ""}`;
      resolution.hidden = false;
      button.remove();
    } else if (item.created_by.id === this.userId) {
      // Your own escalation: read it, but picking it up yourself makes no sense.
      const own = document.createElement("span");
      own.className = "pill";
      own.textContent = "Your handoff";
      button.replaceWith(own);
    }
    this.updateWaiting(card);
    this.updateLadder(card);
    return card;
  }

  updateWaiting(card) {
    const waiting = card.querySelector('[data-slot="waiting"]');
    if (card.dataset.resolvedAt !== undefined) {
      waiting.textContent = card.dataset.resolvedAt ? `resolved ${ago(card.dataset.resolvedAt)}` : "resolved";
      return;
    }
    waiting.textContent = `waiting ${formatDuration(secondsSince(card.dataset.createdAt))}`;
  }

  tick() {
    for (const card of this.cards()) {
      this.updateWaiting(card);
      this.updateLadder(card);
    }
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
    if (!this.isOpenView()) return;
    if (this.view === "mine" && event.target_user_id !== this.userId) return;
    if (this.q) {
      this.reload(); // only the server knows whether it matches the search
      return;
    }
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
    this.countEl.textContent = `${n} ${this.view === "resolved" ? "resolved" : "open"}`;
    this.empty.textContent = this.q ? "Nothing matches the search." : EMPTY_TEXT[this.view];
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
        const asked = this.url();
        const items = await this.read();
        if (asked === this.url()) {
          this.reconcile(items, { animate: true }); // not the list of a view left meanwhile
          if (this.isOpenView()) this.refreshLadder(); // a released one restarted its ladder
        }
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
