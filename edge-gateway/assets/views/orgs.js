// Organizations → users → devices, profiles, QR codes and key links.

import * as api from "../api.js";
import { h, fill, field, form, table, action, confirm, toast, badge, link, section, when, copyButton } from "../ui.js";

export async function orgsScreen({ can }) {
  const list = h("div", {});
  const refresh = async () => {
    const orgs = await api.all("/api/v1/orgs");
    fill(
      list,
      table(
        "Organizations",
        can.manage ? ["Name", "Created", ""] : ["Name", "Created"],
        orgs.map((o) => [
          link(`orgs/${o.id}`, o.name),
          when(o.created_at),
          can.manage &&
            action("Delete", async () => {
              if (!(await confirm(`Delete ${o.name}, its users and their devices?`))) return;
              await api.del(`/api/v1/orgs/${o.id}`);
              toast(`Deleted ${o.name}.`);
              await refresh();
            }, { label: `Delete ${o.name}` }),
        ].filter((c) => c !== false)),
        can.manage ? "No organizations yet — create one." : "No organizations yet.",
      ),
    );
  };
  await refresh();
  const create = can.manage
    ? section(
        "New organization",
        form("New organization", [field("name", "Name", { required: true, maxlength: 64 })], async (values, el) => {
          await api.post("/api/v1/orgs", { name: values.name });
          el.reset();
          toast(`Created ${values.name}.`);
          await refresh();
        }, { submitText: "Create organization" }),
      )
    : null;
  return {
    title: "Organizations",
    node: h("div", {}, h("h1", {}, "Organizations"), create, section("All organizations", list)),
    kinds: ["org"],
    refresh,
  };
}

export async function orgScreen({ can, id }) {
  const org = await api.get(`/api/v1/orgs/${id}`);
  const list = h("div", {});
  const search = h("input", { type: "search", id: "user-search", "aria-label": "Search users", placeholder: "Search by name or email" });
  const refresh = async () => {
    const q = search.value.trim();
    const users = await api.all(`/api/v1/orgs/${id}/users${q ? `?search=${encodeURIComponent(q)}` : ""}`);
    fill(
      list,
      table(
        `Users of ${org.name}`,
        can.manage ? ["Name", "Email", "State", ""] : ["Name", "Email", "State"],
        users.map((u) => [
          link(`users/${u.id}`, u.name),
          u.email || "—",
          u.disabled ? badge("disabled", "bad") : badge("active", "ok"),
          can.manage &&
            h(
              "span",
              { class: "row-actions" },
              action(u.disabled ? "Enable" : "Disable", async () => {
                await api.patch(`/api/v1/users/${u.id}`, { disabled: !u.disabled });
                await refresh();
              }, { label: `${u.disabled ? "Enable" : "Disable"} ${u.name}` }),
              action("Delete", async () => {
                if (!(await confirm(`Delete ${u.name} and their devices?`))) return;
                await api.del(`/api/v1/users/${u.id}`);
                await refresh();
              }, { label: `Delete ${u.name}`, className: "danger" }),
            ),
        ].filter((c) => c !== false)),
        q ? "No user matches." : can.manage ? "No users yet — add one." : "No users yet.",
      ),
    );
  };
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch((err) => toast(err.message, true)), 250);
  });
  await refresh();
  const create = can.manage
    ? section(
        "New user",
        form(
          "New user",
          [field("name", "Name", { required: true, maxlength: 64 }), field("email", "Email (optional)", { type: "email" })],
          async (values, el) => {
            const body = { name: values.name };
            if (values.email) body.email = values.email;
            await api.post(`/api/v1/orgs/${id}/users`, body);
            el.reset();
            toast(`Added ${values.name}.`);
            await refresh();
          },
          { submitText: "Add user" },
        ),
      )
    : null;
  return {
    title: org.name,
    node: h(
      "div",
      {},
      h("p", { class: "crumbs" }, link("orgs", "Organizations"), " / "),
      h("h1", {}, org.name),
      create,
      section("Users", h("label", { for: "user-search", class: "visually-hidden" }, "Search users"), search, list),
    ),
    kinds: ["user", "org"],
    refresh,
  };
}

/// One device's row: its addresses per server, and (for roles that may
/// read profiles) the profile download and QR code for each.
function deviceRow(device, servers, can, refresh) {
  const profiles = device.addresses.map((a) => {
    const server = servers.get(a.server_id);
    const name = server ? server.name : a.server_id;
    const base = `/api/v1/devices/${device.id}`;
    const q = `?server=${a.server_id}`;
    const qr = h("div", { class: "qr", hidden: true });
    return h(
      "div",
      { class: "profile" },
      h("span", {}, `${name}: ${a.address}${a.address6 ? `, ${a.address6}` : ""}`),
      can.manage &&
        h(
          "span",
          { class: "row-actions" },
          h("a", { class: "button secondary", href: `${base}/config${q}`, download: `${device.name}-${name}.conf` }, "Download profile"),
          action("QR code", async () => {
            if (qr.hidden) {
              // The image is the API's own answer (same origin); the
              // browser sends the session cookie with it.
              fill(qr, h("img", { src: `${base}/qr${q}`, alt: `QR code of ${device.name}'s profile for ${name}`, width: 240, height: 240 }));
            }
            qr.hidden = !qr.hidden;
          }, { label: `QR code for ${device.name} on ${name}` }),
        ),
      qr,
    );
  });
  return [
    device.name,
    h("code", { class: "key" }, device.public_key),
    profiles.length ? profiles : h("span", { class: "muted" }, "No server yet: attach the organization to a server."),
    can.manage &&
      action("Delete", async () => {
        if (!(await confirm(`Delete the device ${device.name}? Its profiles stop working.`))) return;
        await api.del(`/api/v1/devices/${device.id}`);
        await refresh();
      }, { label: `Delete ${device.name}`, className: "danger" }),
  ].filter((c) => c !== false);
}

export async function userScreen({ can, id }) {
  const user = await api.get(`/api/v1/users/${id}`);
  const org = await api.get(`/api/v1/orgs/${user.org_id}`);
  const list = h("div", {});
  const created = h("div", { role: "status" });
  const refresh = async () => {
    const [devices, servers] = await Promise.all([api.all(`/api/v1/users/${id}/devices`), api.all("/api/v1/servers")]);
    const byId = new Map(servers.map((s) => [s.id, s]));
    fill(
      list,
      table(
        `Devices of ${user.name}`,
        can.manage ? ["Device", "Public key", "Profiles", ""] : ["Device", "Public key", "Addresses"],
        devices.map((d) => deviceRow(d, byId, can, refresh)),
        can.manage ? "No devices yet — add one." : "No devices yet.",
      ),
    );
  };
  await refresh();

  const manage = can.manage
    ? [
        section(
          "New device",
          form(
            "New device",
            [
              field("name", "Name", { required: true, maxlength: 64 }),
              field("public_key", "Public key (optional)", {
                hint: "Leave empty and Rampart generates the key pair; the private key is then only in the profile.",
                autocomplete: "off",
                spellcheck: "false",
              }),
            ],
            async (values, el) => {
              const body = { name: values.name };
              if (values.public_key) body.public_key = values.public_key;
              const device = await api.post(`/api/v1/users/${id}/devices`, body);
              el.reset();
              fill(created, h("p", { class: "note" }, `Added ${device.name}. Download its profile below.`));
              await refresh();
            },
            { submitText: "Add device" },
          ),
          created,
        ),
        keyLinkSection(id),
      ]
    : null;
  return {
    title: user.name,
    node: h(
      "div",
      {},
      h("p", { class: "crumbs" }, link("orgs", "Organizations"), " / ", link(`orgs/${org.id}`, org.name), " / "),
      h("h1", {}, user.name, " ", user.disabled ? badge("disabled", "bad") : null),
      h("p", {}, user.email || ""),
      section("Devices", list),
      manage,
    ),
    kinds: ["device", "user", "server"],
    refresh,
  };
}

/// A key link: a temporary URL where the user downloads their profiles.
function keyLinkSection(userId) {
  const out = h("div", { role: "status" });
  return section(
    "Key link",
    h("p", { class: "hint" }, "A temporary page where the user downloads their own profiles. Anyone with the link can open it until it expires or is used up."),
    form(
      "New key link",
      [
        field("expires_in", "Valid for", {
          options: [["3600", "1 hour"], ["86400", "1 day"], ["604800", "7 days"]],
          value: "86400",
        }),
        field("max_uses", "Uses", { type: "number", min: 1, max: 100, value: "1" }),
      ],
      async (values) => {
        const linkValue = await api.post(`/api/v1/users/${userId}/links`, {
          expires_in: Number(values.expires_in),
          max_uses: Number(values.max_uses),
        });
        fill(
          out,
          h("p", {}, "Send this link to the user (shown only now):"),
          h("p", {}, h("code", { class: "secret" }, linkValue.url), " ", copyButton(linkValue.url, "Copy link")),
          h("p", { class: "hint" }, `Expires ${when(linkValue.expires_at)}; ${linkValue.max_uses} use(s).`),
        );
      },
      { submitText: "Create key link" },
    ),
    out,
  );
}
