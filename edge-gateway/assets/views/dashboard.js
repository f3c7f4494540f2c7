// The dashboard: servers and their state, with live session counts where
// the server reports them.

import * as api from "../api.js";
import { h, fill, table, badge, link, section } from "../ui.js";

/// The number of live sessions of a running server; null for a stopped one.
export async function sessionCount(server) {
  if (server.state !== "running") return null;
  const page = await api.get(`/api/v1/servers/${server.id}/sessions`);
  return page.items.length;
}

export async function dashboard({ can }) {
  const body = h("div", {});
  const refresh = async () => {
    const [servers, orgs] = await Promise.all([api.all("/api/v1/servers"), api.all("/api/v1/orgs")]);
    const counts = await Promise.all(servers.map((s) => sessionCount(s).catch(() => null)));
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
    tick: refresh,
  };
}
