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

export function initSessionPage() {
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
