// Times relative to the server's clock: "waiting 3 min", "2 s ago".

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

/** Keep every `<time data-ago>` under `root` current. */
export function refreshAgo(root = document) {
  for (const el of root.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(el.dateTime);
  }
}

export function firstName(name) {
  return (name || "").trim().split(/\s+/)[0] || "Someone";
}
