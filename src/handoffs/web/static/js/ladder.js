// Where a waiting escalation is on the account's ladder, for its queue card: calm (before the
// next level's last fifth), due (within it), overdue (a level has fired). The same rules as
// handoffs.domain.escalation_policy.ladder: delays count from `startedAt` (the creation or the
// last release), urgent ones are halved, low ones and parked ones never step up.

import { formatDuration, now } from "./time.js";

/** The last part of a level's wait that reads as "due": 20%. */
export const DUE_FRACTION = 0.2;

export const STATE_WORDS = { calm: "On time", due: "Due", overdue: "Overdue" };

export function stepsUp(intent, priority) {
  return intent === "escalate" && priority !== "low";
}

function delayMs(levels, index, priority) {
  return (levels[index].after_seconds * 1000) / (priority === "urgent" ? 2 : 1);
}

/**
 * The card's ladder state, or null when the card is not on the ladder (parked, low, resolved).
 *
 * `info`: {startedAt, next, nextAt, level, lastAt, lastNotify} (views.ConsoleViews.ladder);
 * `policy`: {levels: [{after_seconds, notify}], labels: {seniors: "the seniors", ...}}.
 * Returns {state, text} where text says it in words (the colour is never the only sign).
 */
export function ladderState(info, { intent, priority }, policy, at = now()) {
  if (!info || !policy || !stepsUp(intent, priority)) return null;
  const levels = policy.levels || [];
  const labels = policy.labels || {};
  const started = Date.parse(info.startedAt);
  if (Number.isNaN(started)) return null;
  const next = info.next ?? 0;
  let due = info.nextAt ? Date.parse(info.nextAt) : null;
  if (due === null && next < levels.length) due = started + delayMs(levels, next, priority);
  const from = next > 0 && next - 1 < levels.length ? started + delayMs(levels, next - 1, priority) : started;
  const nextWho = next < levels.length ? labels[levels[next].notify] || levels[next].notify : "";

  if ((info.level || 0) > 0) {
    const who = labels[info.lastNotify] || info.lastNotify || "more people";
    const when = info.lastAt ? ` ${formatDuration(Math.max(0, (at - Date.parse(info.lastAt)) / 1000))} ago` : "";
    let text = `Overdue · stepped up to ${who}${when}`;
    if (due !== null && nextWho) {
      const left = (due - at) / 1000;
      text += left >= 1 ? ` · ${nextWho} in ${formatDuration(left)}` : ` · ${nextWho} now`;
    }
    return { state: "overdue", text };
  }
  if (due === null) return null; // a policy with no level left
  const left = (due - at) / 1000;
  const windowMs = Math.max(0, due - from) * DUE_FRACTION;
  if (due - at <= windowMs) {
    const text = left >= 1 ? `Due · steps up to ${nextWho} in ${formatDuration(left)}` : `Due · stepping up to ${nextWho} now`;
    return { state: "due", text };
  }
  return { state: "calm", text: `On time · steps up to ${nextWho} in ${formatDuration(left)}` };
}

/** The ladder of a card that arrived live (`handoff_created`) or was re-read: it starts now. */
export function freshLadder(startedAt, level = 0) {
  return { startedAt, next: 0, nextAt: null, level, lastAt: null, lastNotify: "" };
}

/** After a `handoff_escalated` event: one more step fired, the next level is due from the policy. */
export function stepped(info, event) {
  return {
    ...info,
    level: event.level,
    next: (info.next ?? 0) + 1,
    nextAt: null,
    lastAt: event.at || new Date(now()).toISOString(),
    lastNotify: event.notify || info.lastNotify,
  };
}
