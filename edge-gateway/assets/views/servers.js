// VPN servers: create and edit (networks checked as you type), attach
// organizations, start and stop, live sessions.

import * as api from "../api.js";
import { h, fill, field, form, table, action, confirm, toast, badge, link, section, when } from "../ui.js";

// --- network checks, the same rules the API applies ------------------------

function ipv4(text) {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return null;
    n = n * 256 + Number(p);
  }
  return n;
}

function ipv6(text) {
  if (!/^[0-9a-fA-F:]+$/.test(text) || (text.match(/::/g) || []).length > 1) return null;
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const a = head ? head.split(":") : [];
  const b = tail ? tail.split(":") : [];
  if (tail === null && a.length !== 8) return null;
  if (tail !== null && a.length + b.length > 7) return null;
  const groups = [...a, ...Array(8 - a.length - b.length).fill("0"), ...b];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/// Why `text` is not a network of `family` ("4", "6" or "any"), or "".
export function networkError(text, family) {
  if (!text) return "";
  const [addr, prefix, extra] = text.split("/");
  if (prefix === undefined || extra !== undefined || !/^[0-9]{1,3}$/.test(prefix)) return "write it as address/prefix, e.g. 198.18.0.0/24";
  const bits = Number(prefix);
  const v4 = ipv4(addr);
  if (v4 !== null && family !== "6") {
    if (family === "4" && (bits < 8 || bits > 30)) return "the prefix must be /8 to /30";
    if (bits > 32) return "the prefix must be at most /32";
    const host = bits === 32 ? 0 : v4 % 2 ** (32 - bits);
    return host === 0 ? "" : "host bits must be zero (the network's first address)";
  }
  const v6 = ipv6(addr);
  if (v6 !== null && family !== "4") {
    if (family === "6" && (bits < 32 || bits > 126)) return "the prefix must be /32 to /126";
    if (bits > 128) return "the prefix must be at most /128";
    const mask = (1n << BigInt(128 - bits)) - 1n;
    return (v6 & mask) === 0n ? "" : "host bits must be zero (the network's first address)";
  }
  return family === "4" ? "not an IPv4 network" : family === "6" ? "not an IPv6 network" : "not an IP network";
}

/// Checks a field on every keystroke; `list` fields hold comma-separated networks.
function liveCheck(wrap, family, list = false) {
  const input = wrap.querySelector("input");
  const error = wrap.querySelector(".error");
  input.addEventListener("input", () => {
    const values = list ? input.value.split(",").map((v) => v.trim()).filter(Boolean) : [input.value.trim()];
    const bad = values.map((v) => [v, networkError(v, family)]).find(([, e]) => e);
    error.textContent = bad ? (list ? `${bad[0]}: ${bad[1]}` : bad[1]) : "";
    if (bad) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  });
  return wrap;
}

const split = (text) => text.split(",").map((v) => v.trim()).filter(Boolean);

/// The server form's fields; `server` fills them for an edit.
function serverFields(server = {}) {
  return [
    field("name", "Name", { required: true, maxlength: 64, value: server.name || "" }),
    liveCheck(field("network", "IPv4 network", { required: true, placeholder: "198.18.0.0/24", value: server.network || "", spellcheck: "false" }), "4"),
    liveCheck(field("network6", "IPv6 network (optional)", { placeholder: "2001:db8::/64", value: server.network6 || "", spellcheck: "false" }), "6"),
    field("port", "UDP port", { type: "number", min: 1, max: 65535, required: true, value: String(server.port || 51820) }),
    field("dns", "DNS servers (optional, comma-separated)", { value: (server.dns || []).join(", "), spellcheck: "false" }),
    liveCheck(field("routes", "Routes (optional, comma-separated networks)", { value: (server.routes || []).join(", "), spellcheck: "false", hint: "Empty: the server's own networks." }), "any", true),
  ];
}

/// The request body; for an edit (`was` is the server) only what changed,
/// so an unchanged network is not sent while devices hold addresses on it.
function serverBody(values, was = null) {
  const body = { name: values.name, network: values.network, port: Number(values.port) };
  if (values.network6) body.network6 = values.network6;
  if (values.dns || was) body.dns = split(values.dns);
  if (values.routes || was) body.routes = split(values.routes);
  if (was) {
    if (body.network === was.network) delete body.network;
    if (body.network6 === (was.network6 || undefined)) delete body.network6;
  }
  return body;
}

export async function serversScreen({ can }) {
  const list = h("div", {});
  const refresh = async () => {
    const servers = await api.all("/api/v1/servers");
    fill(
      list,
      table(
        "Servers",
        ["Server", "State", "IPv4", "IPv6", "Port", "Organizations"],
        servers.map((s) => [
          link(`servers/${s.id}`, s.name),
          badge(s.state, s.state === "running" ? "ok" : ""),
          s.network,
          s.network6 || "—",
          String(s.port),
          String(s.orgs.length),
        ]),
        can.manage ? "No servers yet — create one." : "No servers yet.",
      ),
    );
  };
  await refresh();
  const create = can.manage
    ? section(
        "New server",
        form("New server", serverFields(), async (values, el) => {
          const server = await api.post("/api/v1/servers", serverBody(values));
          el.reset();
          toast(`Created ${server.name}.`);
          await refresh();
        }, { submitText: "Create server" }),
      )
    : null;
  return {
    title: "Servers",
    node: h("div", {}, h("h1", {}, "Servers"), section("All servers", list), create),
    kinds: ["server"],
    refresh,
  };
}

export async function serverScreen({ can, id }) {
  const head = h("div", {});
  const orgsBox = h("div", {});
  const sessions = h("div", {});
  let server = await api.get(`/api/v1/servers/${id}`);

  const refresh = async () => {
    server = await api.get(`/api/v1/servers/${id}`);
    const orgs = await api.all("/api/v1/orgs");
    const names = new Map(orgs.map((o) => [o.id, o.name]));
    const running = server.state === "running";
    fill(
      head,
      h("h1", {}, server.name, " ", badge(server.state, running ? "ok" : "")),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Networks"), h("dd", {}, [server.network, server.network6].filter(Boolean).join(", ")),
        h("dt", {}, "Port"), h("dd", {}, String(server.port)),
        h("dt", {}, "Public key"), h("dd", {}, h("code", { class: "key" }, server.public_key)),
        h("dt", {}, "Created"), h("dd", {}, when(server.created_at)),
      ),
      can.manage &&
        h(
          "div",
          { class: "actions" },
          action(running ? "Stop" : "Start", async () => {
            server = await api.post(`/api/v1/servers/${id}/${running ? "stop" : "start"}`);
            await refresh();
          }, { className: running ? "secondary" : "" }),
          action("Delete server", async () => {
            if (!(await confirm(`Delete ${server.name}? Every profile for it stops working.`))) return;
            await api.del(`/api/v1/servers/${id}`);
            location.hash = "#/servers";
          }, { className: "danger" }),
        ),
    );
    const attached = server.orgs.map((o) => [
      names.get(o) || o,
      can.manage &&
        action("Detach", async () => {
          if (!(await confirm(`Detach ${names.get(o) || o}? Its devices lose their addresses on this server.`, "Detach"))) return;
          await api.del(`/api/v1/servers/${id}/orgs/${o}`);
          await refresh();
        }, { label: `Detach ${names.get(o) || o}` }),
    ].filter((c) => c !== false));
    const free = orgs.filter((o) => !server.orgs.includes(o.id));
    fill(
      orgsBox,
      table("Attached organizations", can.manage ? ["Organization", ""] : ["Organization"], attached, "No organization attached: no device can connect yet."),
      can.manage && free.length
        ? form(
            "Attach an organization",
            [field("org", "Organization", { options: free.map((o) => [o.id, o.name]) })],
            async (values) => {
              await api.put(`/api/v1/servers/${id}/orgs/${values.org}`);
              await refresh();
            },
            { submitText: "Attach" },
          )
        : null,
    );
    await loadSessions();
  };

  const loadSessions = async () => {
    const page = await api.get(`/api/v1/servers/${id}/sessions`);
    fill(
      sessions,
      table(
        "Live sessions",
        ["Device", "Address", "Endpoint", "Last handshake", "Received", "Sent"],
        page.items.map((s) => [s.device_id, s.address, s.endpoint || "—", when(s.last_handshake), bytes(s.rx_bytes), bytes(s.tx_bytes)]),
        "No live sessions.",
      ),
    );
  };

  await refresh();
  const edit = can.manage
    ? section(
        "Edit",
        h("p", { class: "hint" }, "A network can change only while no device holds an address on it."),
        form("Edit server", serverFields(server), async (values) => {
          server = await api.patch(`/api/v1/servers/${id}`, serverBody(values, server));
          toast("Saved.");
          await refresh();
        }),
      )
    : null;
  return {
    title: server.name,
    node: h(
      "div",
      {},
      h("p", { class: "crumbs" }, link("servers", "Servers"), " / "),
      head,
      section("Organizations", orgsBox),
      section("Sessions", sessions),
      edit,
    ),
    kinds: ["server", "org", "device"],
    refresh,
    tick: loadSessions,
  };
}

function bytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
