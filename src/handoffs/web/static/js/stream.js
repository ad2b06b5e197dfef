// The live escalation stream: one EventSource per page (the session cookie authenticates it).
//
// The browser reconnects by itself after a drop and sends Last-Event-ID, so the
// server replays what was missed. The first connection resumes from the event id
// the page was rendered at (`last_event_id`), so nothing that happened while the
// page loaded is lost. When the server refuses the stream outright (the browser
// then gives up), we check the session and open a new stream after a pause.
// `access_ended` (signed out, deactivated, role changed, token expired) is the
// server saying this session may no longer read the stream: reconnecting cannot
// help, so the page reloads and the server shows what the session may see now
// (the sign-in form, or the viewer's console).

import { api, toLogin } from "./api.js";

export const EVENT_TYPES = [
  "ready",
  "handoff_created",
  "handoff_claimed",
  "handoff_released",
  "handoff_reassigned",
  "handoff_resolved",
  "handoff_commented",
  "handoff_escalated",
  "handoff_assessment_ready",
  "handoff_assessment_failed",
  "handoff_assessment_delta",
  "resync",
  "access_ended",
];

const URL_PATH = "/api/v1/ai-sessions/escalations/stream";

export class LiveStream {
  constructor({ lastEventId, statusEl }) {
    this.lastEventId = lastEventId || null;
    this.statusEl = statusEl;
    this.handlers = new Map();
    this.source = null;
    this.retryDelay = 2000;
    this.retryTimer = null;
    this.setState("connecting");
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  start() {
    const query = this.lastEventId ? `?last_event_id=${encodeURIComponent(this.lastEventId)}` : "";
    const source = new EventSource(URL_PATH + query, { withCredentials: true });
    this.source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => this.dispatch(type, message));
    }
    source.addEventListener("error", () => this.onError(source));
  }

  dispatch(type, message) {
    if (message.lastEventId) this.lastEventId = message.lastEventId;
    let data = {};
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (type === "ready") {
      this.retryDelay = 2000;
      this.setState("live");
    }
    if (type === "access_ended") return this.end();
    for (const handler of this.handlers.get(type) || []) {
      try {
        handler(data);
      } catch (error) {
        console.error(`handling ${type}`, error);
      }
    }
  }

  onError(source) {
    if (source !== this.source) return;
    if (source.readyState === EventSource.CONNECTING) {
      // A dropped connection: the browser is already reconnecting with Last-Event-ID.
      this.setState("reconnecting");
      return;
    }
    // Refused (401/403/5xx): the browser will not retry on its own.
    source.close();
    this.setState("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.restart(), this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 30000);
  }

  async restart() {
    try {
      const me = await api("GET", "/api/v1/me"); // a 401 here sends the page to the sign-in form
      // Signed in but refused (403): the role changed. Retrying would never succeed.
      if (me && me.role === "viewer") return this.end();
    } catch (error) {
      if (error.status === 401) return toLogin();
    }
    this.start();
  }

  end() {
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.retryTimer);
    this.setState("ended");
    if (!this.leaving) location.reload();
  }

  /** The page is going elsewhere (signing out): close, and let the page's own navigation win. */
  leave() {
    this.leaving = true;
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.retryTimer);
  }

  setState(state) {
    document.documentElement.dataset.stream = state;
    const el = this.statusEl;
    if (!el) return;
    el.dataset.state = state;
    if (state === "reconnecting") {
      el.textContent = "Reconnecting…";
      el.hidden = false;
    } else {
      el.textContent = "";
      el.hidden = true;
    }
  }
}

/** Stands in for the stream where the user may not subscribe (viewers): handlers never fire. */
export class NoStream {
  on() {
    return this;
  }

  start() {
    document.documentElement.dataset.stream = "off";
  }
}
