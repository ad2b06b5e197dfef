// The settings page (admins and owners): the escalation ladder's form and the chat integration's.
// Both save through the JSON API; the form checks what the server checks first (1 to 5 levels,
// whole delays of at least 1 s, each later than the one before) and shows the server's `detail`
// for anything else it refuses.

import { api } from "./api.js";

export const MAX_LEVELS = 5;

function show(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

/** What is wrong with these levels in the server's terms, or "" (see ladder.check_increasing). */
export function checkLevels(levels) {
  if (levels.length < 1) return "Keep at least one level.";
  if (levels.length > MAX_LEVELS) return `At most ${MAX_LEVELS} levels.`;
  for (const [i, level] of levels.entries()) {
    if (!Number.isInteger(level.after_seconds) || level.after_seconds < 1) {
      return `Level ${i + 1}: give the delay as a whole number, at least 1 second.`;
    }
    if (i > 0 && level.after_seconds <= levels[i - 1].after_seconds) {
      return `Level ${i + 1} must come after level ${i} (${level.after_seconds} s is not later than ${levels[i - 1].after_seconds} s).`;
    }
  }
  return "";
}

class PolicyForm {
  constructor() {
    this.form = document.getElementById("policy-form");
    this.list = document.getElementById("policy-levels");
    this.template = document.getElementById("level-template");
    this.add = document.getElementById("policy-add");
    this.limit = document.getElementById("policy-limit");
    this.error = document.getElementById("policy-error");
    this.saved = document.getElementById("policy-saved");
    this.add.addEventListener("click", () => this.addLevel());
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action=remove-level]");
      if (button) this.removeLevel(button.closest("[data-level]"));
    });
    this.form.addEventListener("input", () => show(this.saved, ""));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.renumber();
  }

  rows() {
    return [...this.list.querySelectorAll("[data-level]")];
  }

  addLevel() {
    if (this.rows().length >= MAX_LEVELS) return;
    const row = this.template.content.firstElementChild.cloneNode(true);
    const last = this.levels().at(-1);
    const amount = row.querySelector("[name=amount]");
    // A sensible start: 30 minutes after the last level.
    amount.value = last ? String(Math.ceil(last.after_seconds / 60) + 30) : "10";
    row.querySelector("[name=notify]").value = "admins";
    this.list.append(row);
    this.renumber();
    amount.focus();
  }

  removeLevel(row) {
    if (this.rows().length <= 1) return;
    const index = this.rows().indexOf(row);
    row.remove();
    this.renumber();
    const rows = this.rows();
    (rows[Math.min(index, rows.length - 1)]?.querySelector("[name=amount]") || this.add).focus();
  }

  /** Legends, ids and labels follow the levels' order; add and remove follow the limits. */
  renumber() {
    const rows = this.rows();
    rows.forEach((row, i) => {
      const n = i + 1;
      row.querySelector("[data-level-legend]").textContent = `Level ${n}`;
      for (const name of ["amount", "unit", "notify"]) {
        const control = row.querySelector(`[name=${name}]`);
        control.id = `level-${n}-${name}`;
        row.querySelector(`[data-for=${name}]`).htmlFor = control.id;
      }
      row.querySelector("[data-remove-label]").textContent = ` level ${n}`;
      row.querySelector("[data-action=remove-level]").disabled = rows.length <= 1;
    });
    const full = rows.length >= MAX_LEVELS;
    this.add.disabled = full;
    this.limit.hidden = !full;
  }

  levels() {
    return this.rows().map((row) => {
      const raw = row.querySelector("[name=amount]").value.trim();
      const amount = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      const unit = row.querySelector("[name=unit]").value;
      return {
        after_seconds: unit === "minutes" ? amount * 60 : amount,
        notify: row.querySelector("[name=notify]").value,
      };
    });
  }

  async save() {
    show(this.saved, "");
    const levels = this.levels();
    const problem = checkLevels(levels);
    if (problem) {
      show(this.error, problem);
      return;
    }
    show(this.error, "");
    const button = this.form.querySelector("[type=submit]");
    button.disabled = true;
    try {
      await api("PUT", "/api/v1/escalation-policy", { levels });
      document.getElementById("policy-default").hidden = true;
      show(this.saved, "Saved. Escalations waiting now follow the new ladder.");
    } catch (error) {
      show(this.error, error.message);
    } finally {
      button.disabled = false;
    }
  }
}

const CHAT_PATH = "/api/v1/integrations/chat";

class ChatForm {
  constructor() {
    this.form = document.getElementById("chat-form");
    this.loading = document.getElementById("chat-loading");
    this.unavailable = document.getElementById("chat-unavailable");
    this.error = document.getElementById("chat-error");
    this.saved = document.getElementById("chat-saved");
    this.result = document.getElementById("chat-test-result");
    this.urlSet = document.getElementById("chat-url-set");
    this.urlLabel = document.getElementById("chat-url-label");
    this.url = document.getElementById("chat-url");
    this.current = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.form.addEventListener("input", () => show(this.saved, ""));
    document.getElementById("chat-test").addEventListener("click", () => this.test());
    this.load();
  }

  notAvailable(text) {
    this.loading.hidden = true;
    this.form.hidden = true;
    show(this.unavailable, text);
  }

  async load() {
    try {
      this.fill(await api("GET", CHAT_PATH));
      this.loading.hidden = true;
      this.form.hidden = false;
    } catch (error) {
      if (error.status === 404 || error.status === 405) {
        this.notAvailable("Chat integration is not available on this server yet.");
      } else {
        this.notAvailable(`Chat integration is not available: ${error.message}`);
      }
    }
  }

  fill(data) {
    this.current = data;
    this.form.elements.kind.value = data.kind || "none";
    this.form.elements.min_priority.value = data.min_priority || "normal";
    this.url.value = "";
    if (data.webhook_url_set) {
      show(this.urlSet, `A webhook URL is set for ${data.webhook_host || "its host"}. Leave the field empty to keep it.`);
      this.urlLabel.textContent = "Replace the webhook URL";
      this.url.placeholder = "A new https:// address, or leave empty";
    } else {
      show(this.urlSet, "");
      this.urlLabel.textContent = "Webhook URL";
    }
  }

  body() {
    const body = { kind: this.form.elements.kind.value, min_priority: this.form.elements.min_priority.value };
    const url = this.url.value.trim();
    if (url) body.webhook_url = url;
    return body;
  }

  check(body) {
    if (body.webhook_url && !/^https:\/\/[^\s/]+/i.test(body.webhook_url)) {
      return "The webhook URL must be an https:// address.";
    }
    if (body.kind !== "none" && !body.webhook_url && !this.current?.webhook_url_set) {
      return `Give the ${body.kind === "slack" ? "Slack" : "Teams"} webhook URL to send there.`;
    }
    return "";
  }

  async save() {
    show(this.saved, "");
    const body = this.body();
    const problem = this.check(body);
    show(this.error, problem);
    if (problem) return;
    const button = this.form.querySelector("[type=submit]");
    button.disabled = true;
    try {
      this.fill(await api("PUT", CHAT_PATH, body));
      show(this.saved, body.kind === "none" ? "Saved: no chat messages." : "Saved.");
    } catch (error) {
      show(this.error, error.status === 404 ? "Chat integration is not available on this server yet." : error.message);
    } finally {
      button.disabled = false;
    }
  }

  async test() {
    const button = document.getElementById("chat-test");
    button.disabled = true;
    show(this.result, "Sending a test message…");
    this.result.dataset.ok = "";
    try {
      const answer = await api("POST", `${CHAT_PATH}/test`);
      const code = answer.status_code ? ` (the channel answered ${answer.status_code})` : "";
      this.result.dataset.ok = String(Boolean(answer.ok));
      show(
        this.result,
        answer.ok
          ? `The test message was sent${code}. Check the channel.`
          : `The test message did not go through${code}: ${answer.error || "no reason given"}.`,
      );
    } catch (error) {
      this.result.dataset.ok = "false";
      show(this.result, error.status === 404 ? "Chat integration is not available on this server yet." : error.message);
    } finally {
      button.disabled = false;
    }
  }
}

export function initSettings() {
  if (document.getElementById("policy-form")) new PolicyForm();
  if (document.getElementById("chat-form")) new ChatForm();
}
