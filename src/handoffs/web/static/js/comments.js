// A handoff's comment thread, on the context screen and on the junior's session page: the
// server renders the first list (Markdown); comments that arrive live (or that this page posts)
// are added as plain text with their line breaks (textContent only, never HTML from a person).

import { api } from "./api.js";
import { ago, renderTimes } from "./time.js";

export class CommentThread {
  constructor({ root, stream, onChange }) {
    this.root = root;
    this.sessionId = root.dataset.sessionId;
    this.handoffId = root.dataset.handoffId;
    this.onChange = onChange || (() => {});
    this.form = root.querySelector("[data-comment-form]");

    stream.on("handoff_commented", (event) => {
      if (event.handoff_id === this.handoffId && event.comment) this.add(event.comment, { live: true });
    });
    if (this.form) {
      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.submit();
      });
      this.form.querySelector("[type=submit]").disabled = false; // the script handles it now
    }
  }

  get list() {
    return this.root.querySelector("[data-comments]");
  }

  has(id) {
    return Boolean(this.list.querySelector(`[data-comment-id="${CSS.escape(String(id))}"]`));
  }

  /** Append a comment once: the poster's own answer and its event name the same id. */
  add(comment, { live }) {
    if (this.has(comment.id)) return;
    const li = document.createElement("li");
    li.className = `comment${live ? " is-new" : ""}`;
    li.dataset.commentId = comment.id;
    const head = document.createElement("div");
    head.className = "comment-head";
    const author = document.createElement("strong");
    author.className = "comment-author";
    author.textContent = comment.author?.name || "Someone";
    const time = document.createElement("time");
    time.className = "ago";
    time.dateTime = comment.created_at;
    time.dataset.ago = "";
    time.textContent = ago(comment.created_at);
    head.append(author, " ", time);
    const body = document.createElement("p");
    body.className = "comment-body comment-text"; // white-space: pre-wrap keeps the line breaks
    body.textContent = comment.body;
    li.append(head, body);
    this.list.append(li);
    this.root.querySelector("[data-comments-empty]").hidden = true;
    renderTimes(li);
    this.onChange(comment);
  }

  async submit() {
    const form = this.form;
    const button = form.querySelector("[type=submit]");
    const error = form.querySelector(".form-error");
    const text = form.elements.body.value;
    if (!text.trim()) {
      error.textContent = "Write something first: a comment cannot be blank.";
      error.hidden = false;
      return;
    }
    button.disabled = true;
    error.hidden = true;
    try {
      const comment = await api(
        "POST",
        `/api/v1/ai-sessions/${this.sessionId}/handoffs/${this.handoffId}/comments`,
        { body: text },
      );
      this.add(comment, { live: true });
      form.reset();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
