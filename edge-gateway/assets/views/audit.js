// The audit log: newest first, filters, more pages, and the chain check.

import * as api from "../api.js";
import { h, fill, field, form, table, action, badge, section, when } from "../ui.js";

export async function auditScreen() {
  const list = h("div", {});
  const more = h("div", {});
  const verdict = h("p", { role: "status" });
  let filters = {};
  let rows = [];

  const query = (cursor) => {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (cursor) q.set("cursor", cursor);
    return `/api/v1/audit?${q}`;
  };
  const draw = (next) => {
    fill(
      list,
      table(
        "Audit entries, newest first",
        ["#", "Time", "Actor", "Action", "Target", "Outcome", "Client"],
        rows.map((e) => [
          String(e.id),
          when(e.time),
          e.actor,
          e.action,
          e.target || "—",
          badge(e.outcome, e.outcome === "success" ? "ok" : "bad"),
          e.client_addr || "—",
        ]),
        "No entries match.",
      ),
    );
    fill(more, next ? action("Load older entries", async () => load(next)) : null);
  };
  const load = async (cursor) => {
    const page = await api.get(query(cursor));
    rows = cursor ? rows.concat(page.items) : page.items;
    draw(page.next_cursor);
  };
  await load(null);

  return {
    title: "Audit log",
    node: h(
      "div",
      {},
      h("h1", {}, "Audit log"),
      section(
        "Chain",
        h("p", { class: "hint" }, "Every entry's hash covers the one before: an edited, removed or reordered entry breaks the chain there."),
        action("Verify chain", async () => {
          verdict.textContent = "Verifying…";
          const r = await api.get("/api/v1/audit/verify");
          verdict.className = r.ok ? "ok" : "bad";
          verdict.textContent = r.ok
            ? `Intact: ${r.entries} entries verified.`
            : `Broken at entry ${r.first_bad_id} (of ${r.entries}).`;
        }, { className: "" }),
        verdict,
      ),
      section(
        "Filter",
        form(
          "Filter the audit log",
          [
            field("actor", "Actor", { placeholder: "admin:alice" }),
            field("action", "Action", { placeholder: "device.create" }),
            field("since", "Since", { type: "datetime-local" }),
          ],
          async (values) => {
            filters = {
              actor: values.actor,
              action: values.action,
              since: values.since ? new Date(values.since).toISOString() : "",
            };
            await load(null);
          },
          { submitText: "Apply", className: "inline" },
        ),
      ),
      section("Entries", list, more),
    ),
    // Any change writes an entry; reload the first page unless filtered.
    kinds: ["org", "user", "device", "server", "admin", "token", "setting"],
    refresh: () => load(null),
  };
}
