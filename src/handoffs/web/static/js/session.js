// The session page: add to the transcript, park or escalate the session, follow its handoff
// (who is on it, how it ended) and talk to whoever works it.

import { api, fragment } from "./api.js";
import { CommentThread } from "./comments.js";
import { renderTimes } from "./time.js";

function showError(form, error) {
  const box = form.querySelector(".form-error");
  box.textContent = error.message;
  box.hidden = false;
}

async function submitting(form, work) {
  const button = form.querySelector("[type=submit]");
  button.disabled = true;
  form.querySelector(".form-error").hidden = true;
  try {
    await work();
  } catch (error) {
    showError(form, error);
    button.disabled = false;
  }
}

const LIFECYCLE_EVENTS = ["handoff_created", "handoff_claimed", "handoff_released", "handoff_reassigned", "handoff_resolved"];

/**
 * Keep the page's handoff state current while the owner watches. One handler for every
 * lifecycle event: it re-reads the server's one rendering of the notice, the status pill and
 * the handoffs list together, so the three never disagree (not even for a moment between two
 * events: the newest answer wins, at most one request in flight).
 */
/** A resolved session takes no more messages (the API answers 409): its form goes as it resolves. */
function takesMessages(open) {
  const form = document.getElementById("message-form");
  if (form) form.hidden = !open;
}

function followSession(stream, sessionId) {
  const places = {
    "session-notice": document.getElementById("session-notice"),
    "session-status": document.getElementById("session-status"),
    "session-handoffs": document.getElementById("session-handoffs"),
  };
  let busy = null;
  let again = false;
  const refresh = () => {
    if (busy) {
      again = true;
      return;
    }
    busy = fragment(`/sessions/${sessionId}/parts/state`)
      .then((html) => {
        const template = document.createElement("template");
        template.innerHTML = html; // the server's escaped rendering, never a person's raw text
        for (const part of template.content.querySelectorAll("[data-fill]")) {
          const place = places[part.dataset.fill];
          if (!place) continue;
          place.replaceChildren(...part.childNodes);
          renderTimes(place);
          if (part.dataset.status) takesMessages(part.dataset.status !== "resolved");
        }
      })
      .catch((error) => console.warn("session state refresh failed", error))
      .finally(() => {
        busy = null;
        if (again) {
          again = false;
          refresh();
        }
      });
  };
  const handle = (event) => {
    if (event.session_id === sessionId) refresh();
  };
  for (const type of LIFECYCLE_EVENTS) stream.on(type, handle);
  stream.on("resync", refresh);
}

export function initSessionPage({ stream, sessionId }) {
  followSession(stream, sessionId);
  const thread = document.getElementById("comments");
  if (thread) new CommentThread({ root: thread, stream });
  const handoff = document.getElementById("handoff-form");
  if (handoff) {
    const submit = handoff.querySelector("[type=submit]");
    handoff.addEventListener("change", () => {
      const intent = handoff.elements.intent.value;
      submit.textContent = intent === "park" ? submit.dataset.labelPark : submit.dataset.labelEscalate;
    });
    handoff.addEventListener("submit", (event) => {
      event.preventDefault();
      const f = handoff.elements;
      submitting(handoff, async () => {
        await api("POST", `/api/v1/ai-sessions/${handoff.dataset.sessionId}/handoff`, {
          intent: f.intent.value,
          engineer_notes: f.engineer_notes.value,
          priority: f.priority.value,
          target_user_id: f.target_user_id.value || null,
        });
        location.reload();
      });
    });
    submit.disabled = false; // the page's script handles it now (the template disables it)
  }

  const message = document.getElementById("message-form");
  if (message) {
    message.addEventListener("submit", (event) => {
      event.preventDefault();
      const f = message.elements;
      submitting(message, async () => {
        await api("POST", `/api/v1/ai-sessions/${message.dataset.sessionId}/messages`, {
          role: f.role.value,
          content: f.content.value,
        });
        location.reload();
      });
    });
    message.querySelector("[type=submit]").disabled = false;
  }
}

/** The "New session" dialog in the sidebar. */
export function initNewSession() {
  const open = document.getElementById("new-session-open");
  const dialog = document.getElementById("new-session-dialog");
  if (!open || !dialog) return;
  const form = document.getElementById("new-session-form");
  open.addEventListener("click", () => {
    dialog.showModal();
    form.elements.title.focus();
  });
  form.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => open.focus());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const f = form.elements;
    const body = { title: f.title.value, problem_summary: f.problem_summary.value };
    if (f.psa_ticket_id.value.trim()) body.psa_ticket_id = f.psa_ticket_id.value.trim();
    submitting(form, async () => {
      const session = await api("POST", "/api/v1/ai-sessions", body);
      location.assign(`/sessions/${session.id}`);
    });
  });
}
