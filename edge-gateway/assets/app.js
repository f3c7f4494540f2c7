// The console's start: find the session, draw the shell, route by the URL
// fragment (#/orgs, #/users/<id>, …) and keep the open screen live.

import * as api from "./api.js";
import { h, fill, toast } from "./ui.js";
import { setupScreen, loginScreen } from "./views/auth.js";
import { dashboard } from "./views/dashboard.js";
import { orgsScreen, orgScreen, userScreen } from "./views/orgs.js";
import { serversScreen, serverScreen } from "./views/servers.js";
import { adminsScreen, accountScreen } from "./views/admins.js";
import { tokensScreen } from "./views/tokens.js";
import { auditScreen } from "./views/audit.js";
import { settingsScreen } from "./views/settings.js";

const main = document.getElementById("main");

/// What each role may do; the API enforces it anyway, the console only
/// hides what would be refused.
function abilities(role) {
  return {
    role,
    manage: role === "admin" || role === "operator",
    audit: role === "admin" || role === "auditor",
    admin: role === "admin",
  };
}

// [fragment, title, screen, who sees it in the menu]
const SECTIONS = [
  ["dashboard", "Dashboard", dashboard, () => true],
  ["orgs", "Organizations", orgsScreen, () => true],
  ["servers", "Servers", serversScreen, () => true],
  ["admins", "Admins", adminsScreen, (can) => can.admin],
  ["tokens", "API tokens", tokensScreen, (can) => can.admin],
  ["audit", "Audit log", auditScreen, (can) => can.audit],
  ["settings", "Settings", settingsScreen, (can) => can.admin],
  ["account", "My account", accountScreen, () => true],
];
const DETAIL = { orgs: orgScreen, users: userScreen, servers: serverScreen };

let session = null;
let current = null; // the open screen: { title, node, kinds, refresh, tick? }
let renderSeq = 0;

async function route() {
  if (!session) return;
  const [name = "dashboard", id] = location.hash.replace(/^#\/?/, "").split("/");
  const can = abilities(session.admin.role);
  const entry = SECTIONS.find(([key, , , visible]) => key === name && visible(can));
  const screen = id ? DETAIL[name] : entry && entry[2];
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.key === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearTimeout(pending);
  current = null;
  if (!screen) {
    fill(main, h("h1", {}, "Not here"), h("p", { class: "empty" }, "This page does not exist or your role cannot see it."));
    return;
  }
  const seq = ++renderSeq;
  fill(main, h("p", { class: "progress", role: "status" }, "Loading…"));
  try {
    const view = await screen({ can, me: session.admin, id });
    if (seq !== renderSeq) return; // another navigation won
    current = view;
    fill(main, view.node);
    document.title = `${view.title} — Rampart`;
  } catch (err) {
    if (seq !== renderSeq) return;
    fill(main, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, err.message));
  }
}

// Changes from other consoles (and this one): the open screen reloads its
// data when a kind it shows changed; bursts are folded into one reload.
let pending = null;
api.onChange((change) => {
  if (!current || !current.refresh) return;
  if (change.kind !== "*" && !current.kinds.includes(change.kind)) return;
  clearTimeout(pending);
  const view = current;
  pending = setTimeout(() => {
    // The screen may have changed meanwhile; the new one loaded fresh data.
    if (current === view) view.refresh().catch((err) => toast(err.message, true));
  }, 150);
});

// Counters that change without an API call (tunnel sessions: handshakes,
// traffic) are polled while their screen is open and the tab is visible.
setInterval(() => {
  if (current && current.tick && document.visibilityState === "visible") {
    current.tick().catch(() => {});
  }
}, 5000);

function shell() {
  const can = abilities(session.admin.role);
  document.getElementById("top").hidden = false;
  fill(document.getElementById("who"), `${session.admin.username} (${session.admin.role})`);
  fill(
    document.getElementById("nav"),
    SECTIONS.filter(([, , , visible]) => visible(can)).map(([key, title]) =>
      h("li", {}, h("a", { href: `#/${key}`, "data-key": key }, title)),
    ),
  );
  const live = document.getElementById("live");
  api.openEvents((on) => {
    live.textContent = on ? "live" : "offline";
    live.classList.toggle("on", on);
  });
}

function signedOut(message) {
  session = null;
  current = null;
  document.getElementById("top").hidden = true;
  fill(document.getElementById("nav"));
  document.title = "Sign in — Rampart";
  fill(main, loginScreen(signedIn, message));
  main.querySelector("input")?.focus();
}

function signedIn(newSession) {
  session = newSession;
  shell();
  if (!location.hash) location.hash = "#/dashboard";
  else route();
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api.logout();
  } catch {
    // Signed out here either way; the server forgets it at expiry.
  }
  signedOut("You are signed out.");
});

api.whenSignedOut(() => signedOut("Your session ended; please sign in again."));
window.addEventListener("hashchange", route);

async function start() {
  if (location.pathname === "/setup") {
    const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
    // The token came in the fragment (never sent to a server); keep it out
    // of the history too.
    history.replaceState(null, "", "/setup");
    document.title = "First admin — Rampart";
    fill(main, setupScreen(token, () => {
      history.replaceState(null, "", "/");
      signedOut("The first admin exists. Sign in.");
    }));
    return;
  }
  try {
    const restored = await api.restore();
    if (restored) signedIn(restored);
    else signedOut();
  } catch (err) {
    fill(main, h("p", { class: "error", role: "alert" }, err.message));
  }
}

start();
