// Desktop notifications, opt-in per computer: "Notify me on this computer" asks the browser's
// permission; once granted (and the choice is kept in localStorage), an urgent arrival, one
// raised for me, and a ladder step that tells me show a system notification, with a short beep
// for urgent ones (synthesised with the Web Audio API: no sound file). Never while this tab is
// the one being looked at: the page itself shows it then.

const KEY = "handoffs.desktopNotifications";

function storedChoice() {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the choice lasts for this page only
  }
}

function storeChoice(value) {
  try {
    localStorage.setItem(KEY, value);
  } catch {
    /* see storedChoice */
  }
}

export function tabIsFocused() {
  return document.visibilityState === "visible" && document.hasFocus();
}

export class DesktopNotifier {
  constructor({ stream, userId, button, toast }) {
    this.userId = userId;
    this.button = button;
    this.toast = toast;
    this.choice = storedChoice();
    this.shown = new Set();
    this.audio = null;
    if (!button || !("Notification" in window)) return; // no API: no button, nothing to offer
    button.hidden = false;
    button.addEventListener("click", () => this.toggle());
    this.render();
    stream.on("handoff_created", (event) => this.created(event));
    stream.on("handoff_escalated", (event) => this.escalated(event));
  }

  get enabled() {
    return this.choice === "on" && window.Notification.permission === "granted";
  }

  render() {
    const permission = window.Notification.permission;
    this.button.setAttribute("aria-pressed", String(this.enabled));
    this.button.dataset.permission = permission;
    this.button.title =
      permission === "denied"
        ? "This browser blocks notifications from this site: allow them in its site settings."
        : this.enabled
          ? "On: urgent handoffs, ones raised for you and ladder steps that tell you pop up while you are in another window. Click to turn off."
          : "Pop up urgent handoffs, ones raised for you and ladder steps that tell you while you are in another window.";
  }

  async toggle() {
    if (this.enabled) {
      this.choice = "off";
      storeChoice("off");
      this.render();
      this.toast?.("Desktop notifications are off on this computer.");
      return;
    }
    this.unlockAudio(); // inside the click: browsers let a page make sound after a gesture
    let permission = window.Notification.permission;
    if (permission === "default") {
      try {
        permission = await window.Notification.requestPermission();
      } catch {
        permission = window.Notification.permission;
      }
    }
    this.choice = permission === "granted" ? "on" : "off";
    storeChoice(this.choice);
    this.render();
    this.toast?.(
      permission === "granted"
        ? "Desktop notifications are on for this computer."
        : "The browser did not allow notifications; allow them in its site settings to turn this on.",
    );
  }

  created(event) {
    if (event.created_by?.id === this.userId) return;
    const urgent = event.priority === "urgent";
    const forMe = event.target_user_id === this.userId;
    if (!urgent && !forMe) return;
    const who = event.created_by?.name || "a colleague";
    const what = event.intent === "park" ? "Parked" : "Escalation";
    const title = `${urgent ? "Urgent: " : ""}${what} from ${who}${forMe ? " for you" : ""}`;
    this.show(`created:${event.handoff_id}`, title, event.problem_summary || event.title || "", event, urgent);
  }

  escalated(event) {
    if (!(event.recipient_ids || []).includes(this.userId)) return;
    const card = document.querySelector(`.card[data-id="${CSS.escape(event.handoff_id || "")}"]`);
    const urgent = card?.dataset.priority === "urgent";
    this.show(
      `escalated:${event.handoff_id}:${event.level}`,
      "Nobody has picked this up",
      event.title || "An escalation is still waiting.",
      event,
      urgent,
    );
  }

  show(key, title, body, event, urgent) {
    if (!this.enabled || tabIsFocused() || this.shown.has(key)) return;
    this.shown.add(key);
    let note;
    try {
      note = new window.Notification(title, { body, tag: key, renotify: false });
    } catch (error) {
      console.warn("desktop notification failed", error);
      return;
    }
    const url = `/sessions/${event.session_id}/handoffs/${event.handoff_id}`;
    note.onclick = () => {
      window.focus();
      location.assign(url);
      note.close?.();
    };
    if (urgent) this.beep();
  }

  unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      this.audio ??= new Context();
      if (this.audio.state === "suspended") this.audio.resume().catch(() => {});
    } catch {
      this.audio = null;
    }
    return this.audio;
  }

  /** A 200 ms 880 Hz sine with a quick fade in and out, so it does not click. */
  beep() {
    const audio = this.unlockAudio();
    if (!audio) return;
    try {
      const start = audio.currentTime + 0.01;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(880, start);
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(start);
      osc.stop(start + 0.21);
    } catch (error) {
      console.warn("beep failed", error);
    }
  }
}
