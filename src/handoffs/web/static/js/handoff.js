// The handoff context screen: its live parts (claim status, AI assessment, documentation)
// are re-rendered by the server when their event arrives; no reload needed.

import { api, fragment } from "./api.js";
import { ago, firstName, renderTimes } from "./time.js";

const POLL_MS = 5000;
const POLL_FOR_MS = 10 * 60 * 1000;

export class HandoffScreen {
  constructor({ stream, handoff, userId, streaming, toast }) {
    this.id = handoff.id;
    this.sessionId = handoff.sessionId;
    this.state = handoff.assessmentStatus;
    this.userId = userId;
    this.toast = toast;
    const mine = (event) => event.handoff_id === this.id;

    stream.on("handoff_assessment_ready", (event) => mine(event) && this.assessmentChanged());
    stream.on("handoff_assessment_failed", (event) => mine(event) && this.assessmentChanged());
    stream.on("handoff_claimed", (event) => {
      if (!mine(event)) return;
      this.refresh("status");
      if (event.claimed_by && event.claimed_by.id !== this.userId) {
        this.toast(`${firstName(event.claimed_by.name)} picked this up.`);
      }
    });
    stream.on("handoff_released", (event) => mine(event) && this.refresh("status"));
    stream.on("resync", () => {
      this.refresh("status");
      if (this.state === "pending") this.assessmentChanged();
    });
    if (!streaming && this.state === "pending") this.poll(Date.now());

    document.getElementById("part-status").addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (button) this.act(button);
    });
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

  async act(button) {
    const action = button.dataset.action;
    button.disabled = true;
    try {
      await api("POST", `/api/v1/ai-sessions/${this.sessionId}/handoffs/${this.id}/${action}`);
      this.toast(action === "claim" ? "You picked this up." : "Back in the team queue.");
    } catch (error) {
      if (error.status === 409 && error.body.claimed_by) {
        const who = firstName(error.body.claimed_by.name);
        this.toast(`${who} picked this up${error.body.claimed_at ? ` ${ago(error.body.claimed_at)}` : ""}.`);
      } else {
        this.toast(error.message);
      }
    }
    await this.refresh("status");
  }
}
