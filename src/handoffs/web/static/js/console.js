// The console's entry point: reads the page's data, then starts what the page needs.

import { api, fragment } from "./api.js";
import { Bell } from "./bell.js";
import { HandoffScreen } from "./handoff.js";
import { DesktopNotifier } from "./notify.js";
import { Queue } from "./queue.js";
import { initNewSession, initSessionPage } from "./session.js";
import { initSettings } from "./settings.js";
import { LiveStream, NoStream } from "./stream.js";
import { refreshAgo, renderTimes, setServerNow } from "./time.js";
import { UnseenTitle } from "./title.js";

const data = JSON.parse(document.getElementById("page-data").textContent);
setServerNow(data.serverNow);

const stream = data.stream
  ? new LiveStream({ lastEventId: data.lastEventId, statusEl: document.getElementById("live-status") })
  : new NoStream();

function toast(text) {
  const region = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = "toast";
  item.textContent = text;
  region.append(item);
  setTimeout(() => item.remove(), 6000);
}

function announce(text) {
  const el = document.getElementById("queue-announcer");
  if (el) el.textContent = text;
}

document.getElementById("logout").addEventListener("click", async () => {
  // Signing out ends this session's stream (access_ended), whose reload would race the move to /login.
  stream.leave?.();
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    location.assign("/login");
  }
});

new Bell({ stream, userId: data.user.id, unread: data.unread });
if (data.stream) {
  new DesktopNotifier({ stream, userId: data.user.id, button: document.getElementById("desktop-notify"), toast });
}
initNewSession();

// The sidebar follows its sessions' status (escalated, claimed, released) and gains the ones
// this user picks up: re-rendered by the server, at most one request in flight.
const sidebar = document.getElementById("sidebar-list");
let sidebarBusy = null;
let sidebarAgain = false;
function refreshSidebar() {
  if (sidebarBusy) {
    sidebarAgain = true;
    return;
  }
  const current = data.sessionId || data.handoff?.sessionId || "";
  sidebarBusy = fragment(`/parts/sidebar${current ? `?current=${current}` : ""}`)
    .then((html) => {
      sidebar.innerHTML = html;
    })
    .catch((error) => console.warn("sidebar refresh failed", error))
    .finally(() => {
      sidebarBusy = null;
      if (sidebarAgain) {
        sidebarAgain = false;
        refreshSidebar();
      }
    });
}
function touchesSidebar(event) {
  const shown = sidebar.querySelector(`[data-session-id="${CSS.escape(event.session_id || "")}"]`);
  const me = data.user.id;
  return Boolean(shown) || [event.claimed_by, event.created_by, event.to_user].some((who) => who?.id === me);
}
for (const type of ["handoff_created", "handoff_claimed", "handoff_released", "handoff_reassigned", "handoff_resolved"]) {
  stream.on(type, (event) => touchesSidebar(event) && refreshSidebar());
}
stream.on("resync", refreshSidebar);

if (data.page === "console" && document.getElementById("queue")) {
  new Queue({
    stream,
    userId: data.user.id,
    people: data.people,
    items: data.queue || [],
    unseen: new UnseenTitle(),
    announce,
    policy: data.policy,
    ladder: data.ladder,
  });
}
if (data.page === "session") initSessionPage({ stream, sessionId: data.sessionId });
if (data.page === "settings") initSettings();
if (data.page === "handoff") {
  new HandoffScreen({ stream, handoff: data.handoff, userId: data.user.id, streaming: data.stream, toast });
}

setInterval(() => refreshAgo(), 15000);
renderTimes();
stream.start();
