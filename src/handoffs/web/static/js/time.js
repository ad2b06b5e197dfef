// Times relative to the server's clock ("waiting 3 min", "2 s ago"), and clock times in the
// browser's own time zone and locale ("9:05 AM EST"); the server writes those in UTC, saying so.

let skew = 0;

/** Align with the server's clock (the page carries its time), so a wrong local clock reads right. */
export function setServerNow(iso) {
  const at = Date.parse(iso);
  if (!Number.isNaN(at)) skew = at - Date.now();
}

export function now() {
  return Date.now() + skew;
}

export function secondsSince(iso) {
  const at = Date.parse(iso);
  return Number.isNaN(at) ? 0 : Math.max(0, (now() - at) / 1000);
}

/** The same steps as the server's `duration` filter: 45 s, 3 min, 2 h 5 min, 3 d. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours < 24) return rest ? `${hours} h ${rest} min` : `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

export function ago(iso) {
  return `${formatDuration(secondsSince(iso))} ago`;
}

const sameDay = (a, b) =>
  a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

// One formatter per shape; `undefined` locale and zone: the browser's own.
const formats = new Map();
function formatter(options) {
  const key = JSON.stringify(options);
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(undefined, options));
  return formats.get(key);
}
const TIME = { hour: "numeric", minute: "2-digit", timeZoneName: "short" };
const FULL = { dateStyle: "full", timeStyle: "long" };

/** "9:05 AM EST" today; "Mar 2, 9:05 AM EST" another day; the year too when it is not this one. */
export function formatClock(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const today = new Date(now());
  if (sameDay(at, today)) return formatter(TIME).format(at);
  const options = { month: "short", day: "numeric", ...TIME };
  if (at.getFullYear() !== today.getFullYear()) options.year = "numeric";
  return formatter(options).format(at);
}

/** "Nov 3" (the browser's order and words: "3 Nov" in en-GB); the year too when it is not this one. */
export function formatDay(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const options = { month: "short", day: "numeric" };
  if (at.getFullYear() !== new Date(now()).getFullYear()) options.year = "numeric";
  return formatter(options).format(at);
}

/** "Monday, March 2, 2026 at 9:05:12 AM EST": the hover text of every time. */
export function formatFull(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : formatter(FULL).format(at);
}

/** Write every `<time data-clock>` under `root` in the browser's zone (the server wrote UTC). */
export function renderClocks(root = document) {
  for (const el of root.querySelectorAll("time[data-clock]")) {
    const text = formatClock(el.dateTime);
    if (!text) continue;
    el.textContent = text;
    el.title = formatFull(el.dateTime);
    el.dataset.clock = "local";
  }
}

/** Write every `<time data-day>` under `root` as the browser's day (the server wrote the UTC one). */
export function renderDays(root = document) {
  for (const el of root.querySelectorAll("time[data-day]")) {
    const text = formatDay(el.dateTime);
    if (!text) continue;
    el.textContent = text;
    el.title = formatFull(el.dateTime);
    el.dataset.day = "local";
  }
}

/** Keep every `<time data-ago>` under `root` current; its hover text is the time in the browser's zone. */
export function refreshAgo(root = document) {
  for (const el of root.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(el.dateTime);
    if (!el.title) el.title = formatFull(el.dateTime);
  }
}

/** Every time under `root`: clock times and days in the browser's zone, relative ones current. */
export function renderTimes(root = document) {
  renderClocks(root);
  renderDays(root);
  refreshAgo(root);
}

export function firstName(name) {
  return (name || "").trim().split(/\s+/)[0] || "Someone";
}
