// The handoff context screen: its live parts (status and actions, AI assessment, documentation,
// timeline) are re-rendered by the server when their event arrives; no reload needed.
// Comments are the CommentThread's (comments.js).

import { api, fragment } from "./api.js";
import { CommentThread } from "./comments.js";
import { ago, firstName, renderTimes } from "./time.js";

/** What the toast says when someone else moves the handoff on. */
/** The page's user, for "handed this to you". */
let me = "";
const LIFECYCLE = {
  handoff_claimed: (e) => `${firstName(e.claimed_by?.name)} picked this up.`,
  handoff_released: (e) => `${firstName(e.released_by?.name)} put this back in the queue.`,
  handoff_reassigned: (e) =>
    `${firstName(e.reassigned_by?.name)} handed this to ${e.to_user?.id === me ? "you" : e.to_user?.name || "a colleague"}.`,
  handoff_resolved: (e) =>
    e.outcome === "withdrawn"
      ? `${firstName(e.resolved_by?.name)} withdrew this handoff.`
      : `${firstName(e.resolved_by?.name)} resolved this.`,
};
const ACTOR = {
  handoff_claimed: "claimed_by",
  handoff_released: "released_by",
  handoff_reassigned: "reassigned_by",
  handoff_resolved: "resolved_by",
};
const DONE = {
  claim: "You picked this up.",
  release: "Back in the team queue.",
  reassign: "Handed on.",
  resolve: "Resolved. The junior hears about it.",
  withdraw: "Withdrawn.",
};

/** What the "Assessing…" line says the model is writing, by the field's path. */
const WRITING = {
  "assessment.likely_cause": "the likely cause",
  "assessment.what_was_tried": "what was tried",
  "assessment.next_steps": "the next steps",
  "assessment.risk": "the risk",
  "assessment.confidence": "the confidence",
  "escalation_package.summary": "the summary",
  "escalation_package.symptoms": "the symptoms",
  "escalation_package.environment": "the environment",
  "escalation_package.open_questions": "the open questions",
  "escalation_package.documentation_markdown": "the documentation",
};

const POLL_MS = 5000;
const POLL_FOR_MS = 10 * 60 * 1000;

export class HandoffScreen {
  constructor({ stream, handoff, userId, streaming, toast }) {
    this.id = handoff.id;
    this.sessionId = handoff.sessionId;
    this.state = handoff.assessmentStatus;
    this.userId = userId;
    me = userId;
    this.toast = toast;
    const mine = (event) => event.handoff_id === this.id;

    for (const type of ["handoff_assessment_ready", "handoff_assessment_failed"]) {
      stream.on(type, (event) => {
        if (!mine(event)) return;
        this.assessmentChanged();
        this.refresh("timeline");
      });
    }
    for (const type of Object.keys(LIFECYCLE)) {
      stream.on(type, (event) => {
        if (!mine(event)) return;
        this.refresh("status");
        this.refresh("timeline");
        const actor = event[ACTOR[type]];
        if (actor && actor.id !== this.userId) this.toast(LIFECYCLE[type](event));
      });
    }
    stream.on("handoff_assessment_delta", (event) => mine(event) && this.assessmentGrew(event));
    stream.on("handoff_commented", (event) => mine(event) && this.refresh("timeline"));
    stream.on("resync", () => {
      this.refresh("status");
      this.refresh("timeline");
      this.refresh("comments");
      if (this.state === "pending") this.assessmentChanged();
    });
    if (!streaming && this.state === "pending") this.poll(Date.now());

    this.error = document.getElementById("action-error");
    const status = document.getElementById("part-status");
    status.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.act(button.dataset.action, undefined, button);
    });
    status.addEventListener("submit", (event) => {
      const form = event.target.closest("form[data-action]");
      if (!form) return;
      event.preventDefault();
      this.act(form.dataset.action, bodyOf(form), form.querySelector("[type=submit]"));
    });
    document.getElementById("part-assessment")?.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-retry-assessment]");
      if (button) this.retryAssessment(button);
    });
    const thread = document.getElementById("comments");
    if (thread) new CommentThread({ root: thread, stream });
  }

  /** A delta: the model's output so far. Deltas are live only and may skip; each carries all of it. */
  assessmentGrew(event) {
    const live = document.querySelector("#part-assessment [data-live-assessment]");
    if (!live || this.state !== "pending") return;
    if (Number(event.seq) <= Number(live.dataset.seq || 0)) return; // an older one, late
    live.dataset.seq = String(event.seq);
    const a = event.partial?.assessment || {};
    const show = (name, yes) => {
      const block = live.querySelector(`[data-live-block="${name}"]`);
      if (block) block.hidden = !yes;
    };
    const field = (name, text) => {
      const el = live.querySelector(`[data-live-field="${name}"]`);
      if (el) el.textContent = text; // text only: the final one is rendered by the server
    };
    field("likely_cause", a.likely_cause || "");
    show("likely_cause", Boolean(a.likely_cause));
    if (a.risk) field("risk", `${a.risk[0].toUpperCase()}${a.risk.slice(1)} risk`);
    show("facts", Boolean(a.risk));
    for (const name of ["next_steps", "what_was_tried"]) {
      const list = live.querySelector(`[data-live-list="${name}"]`);
      const items = Array.isArray(a[name]) ? a[name] : [];
      if (!list) continue;
      while (list.children.length > items.length) list.lastElementChild.remove();
      items.forEach((text, i) => {
        let li = list.children[i];
        if (!li) li = list.appendChild(document.createElement("li"));
        if (li.textContent !== text) li.textContent = text;
      });
      show(name, items.length > 0);
    }
    // The caret sits where the model writes now.
    for (const el of live.querySelectorAll("[data-writing]")) delete el.dataset.writing;
    const [, name, index] = (event.field || "").split(".");
    const writing =
      index !== undefined
        ? live.querySelector(`[data-live-list="${name}"]`)?.children[Number(index)]
        : live.querySelector(`[data-live-field="${name}"]`);
    if (writing) writing.dataset.writing = "";
    const what = live.querySelector("[data-live-what]");
    if (what) what.textContent = `Writing ${WRITING[event.field?.split(".").slice(0, 2).join(".")] || "the assessment"}…`;
  }

  async retryAssessment(button) {
    button.disabled = true;
    try {
      await api("POST", `/api/v1/ai-sessions/${this.sessionId}/handoffs/${this.id}/assessment/retry`);
      this.state = "pending";
      this.toast("Asking the AI again.");
      await this.refresh("assessment");
      this.refresh("timeline");
    } catch (error) {
      button.disabled = false;
      this.toast(error.message);
      if (error.status === 409) this.assessmentChanged();
    }
  }

  async assessmentChanged() {
    const section = await this.refresh("assessment");
    await this.refresh("documentation");
    this.state = section?.querySelector("[data-assessment-state]")?.dataset.assessmentState || this.state;
  }

  /** Without the stream (viewers): look again every few seconds while the assessment is pending. */
  poll(started) {
    setTimeout(async () => {
      await this.assessmentChanged();
      if (this.state === "pending" && Date.now() - started < POLL_FOR_MS) this.poll(started);
    }, POLL_MS);
  }

  async refresh(part) {
    const container = document.getElementById(`part-${part}`);
    let html;
    try {
      html = await fragment(`/sessions/${this.sessionId}/handoffs/${this.id}/parts/${part}`);
    } catch (error) {
      console.warn(`refreshing ${part} failed`, error);
      return null;
    }
    const hadFocus = container.contains(document.activeElement);
    container.innerHTML = html;
    renderTimes(container);
    container.classList.remove("is-updated");
    void container.offsetWidth; // restart the highlight
    container.classList.add("is-updated");
    if (hadFocus) {
      const target = container.querySelector("button, a") || container;
      if (target === container) container.tabIndex = -1;
      target.focus();
    }
    return container;
  }

  async act(action, body, button) {
    if (button) button.disabled = true;
    this.error.hidden = true;
    try {
      await api("POST", `/api/v1/ai-sessions/${this.sessionId}/handoffs/${this.id}/${action}`, body);
      this.toast(DONE[action] || "Done.");
    } catch (error) {
      // 403/409/400 say why in `detail` ("… already picked this up.", "… It is resolved."): show it as is.
      let text = error.message;
      if (error.status === 409 && error.body.claimed_by && error.body.claimed_at && action === "claim") {
        text = `${firstName(error.body.claimed_by.name)} picked this up ${ago(error.body.claimed_at)}.`;
      }
      this.error.textContent = text;
      this.error.hidden = false;
      if (button) button.disabled = false;
      if (error.status === 400) return; // the form stays as typed, to correct it
    }
    await this.refresh("status");
    await this.refresh("timeline");
  }
}

/** A form's fields as the API's JSON body; blank optional fields are left out. */
function bodyOf(form) {
  const body = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") body[name] = value;
  }
  return body;
}
