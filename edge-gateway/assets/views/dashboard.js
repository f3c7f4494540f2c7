// The dashboard: servers and their state, with live session counts where
// the server reports them.

import * as api from "../api.js";
import { h, fill, table, badge, link, section } from "../ui.js";

// GET /api/v1/servers/{id}/sessions may not exist yet on this build; once
// it answered 404 the console stops asking.
let sessionsRoute = true;

/// The number of live sessions, or null when the server does not say.
export async function sessionCount(serverId) {
  if (!sessionsRoute) return null;
  try {
    const page = await api.get(`/api/v1/servers/${serverId}/sessions`);
    return page.items.length;
  } catch (err) {
    if (err.status === 404) {
      sessionsRoute = false;
      return null;
    }
    throw err;
  }
}

export async function dashboard({ can }) {
  const body = h("div", {});
  const refresh = async () => {
    const [servers, orgs] = await Promise.all([api.all("/api/v1/servers"), api.all("/api/v1/orgs")]);
    const counts = await Promise.all(servers.map((s) => sessionCount(s.id).catch(() => null)));
    const running = servers.filter((s) => s.state === "running").length;
    fill(
      body,
      h(
        "ul",
        { class: "stats" },
        h("li", {}, h("strong", {}, String(servers.length)), " servers"),
        h("li", {}, h("strong", {}, String(running)), " running"),
        h("li", {}, h("strong", {}, String(orgs.length)), " organizations"),
      ),
      section(
        "Servers",
        table(
          "Servers and their state",
          ["Server", "State", "Network", "Port", "Sessions"],
          servers.map((s, i) => [
            link(`servers/${s.id}`, s.name),
            badge(s.state, s.state === "running" ? "ok" : ""),
            s.network,
            String(s.port),
            counts[i] === null ? "—" : String(counts[i]),
          ]),
          can.manage ? "No servers yet — create one under Servers." : "No servers yet.",
        ),
      ),
    );
  };
  await refresh();
  return {
    title: "Dashboard",
    node: h("div", {}, h("h1", {}, "Dashboard"), body),
    kinds: ["server", "org"],
    refresh,
  };
}
