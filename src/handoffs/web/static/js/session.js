// The session page: add to the transcript, and park or escalate the session.

import { api } from "./api.js";

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

function pill(status, text) {
  const el = document.createElement("span");
  el.className = `pill pill-status-${status}`;
  el.textContent = text;
  return el;
}

/** Keep the page's status current while the owner watches: picked up, or back in the queue. */
function followSession(stream, sessionId) {
  const notice = document.getElementById("session-notice");
  const status = document.getElementById("session-status");
  stream.on("handoff_claimed", (event) => {
    if (event.session_id !== sessionId) return;
    const who = document.createElement("strong");
    who.textContent = event.claimed_by?.name || "a colleague";
    notice.className = "notice notice-ok";
    notice.replaceChildren("Picked up by ", who, " just now.");
    notice.hidden = false;
    status.replaceChildren(pill("claimed", "Claimed"));
  });
  stream.on("handoff_released", (event) => {
    if (event.session_id !== sessionId) return;
    notice.className = "notice notice-info";
    notice.replaceChildren("Put back in the team queue just now.");
    notice.hidden = false;
    status.replaceChildren(pill("escalated", "Back in the queue"));
  });
}

export function initSessionPage({ stream, sessionId }) {
  followSession(stream, sessionId);
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
