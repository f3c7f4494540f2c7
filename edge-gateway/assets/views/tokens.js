// API tokens (admins only): the secret is shown once, with a copy button.

import * as api from "../api.js";
import { h, fill, field, form, table, action, confirm, section, when, copyButton } from "../ui.js";

export async function tokensScreen() {
  const list = h("div", {});
  const shown = h("div", { role: "status" });
  const refresh = async () => {
    const tokens = await api.all("/api/v1/tokens");
    fill(
      list,
      table(
        "API tokens",
        ["Name", "Role", "Created", "Expires", ""],
        tokens.map((t) => [
          t.name,
          t.role,
          when(t.created_at),
          when(t.expires_at),
          action("Revoke", async () => {
            if (!(await confirm(`Revoke ${t.name}? Scripts using it stop at once.`, "Revoke"))) return;
            await api.del(`/api/v1/tokens/${t.id}`);
            await refresh();
          }, { label: `Revoke ${t.name}`, className: "danger" }),
        ]),
        "No API tokens yet — create one for a script.",
      ),
    );
  };
  await refresh();
  return {
    title: "API tokens",
    node: h(
      "div",
      {},
      h("h1", {}, "API tokens"),
      section(
        "New token",
        form(
          "New API token",
          [
            field("name", "Name", { required: true, maxlength: 64 }),
            field("role", "Role", { options: [["operator", "operator"], ["auditor", "auditor"], ["admin", "admin"]], value: "operator" }),
            field("expires_in", "Valid for", { options: [["2592000", "30 days"], ["7776000", "90 days"], ["31536000", "1 year"]], value: "7776000" }),
          ],
          async (values, el) => {
            const created = await api.post("/api/v1/tokens", { name: values.name, role: values.role, expires_in: Number(values.expires_in) });
            el.reset();
            // The secret exists only in this answer; it is never stored
            // here and is gone when the screen changes.
            fill(
              shown,
              h("p", { class: "note" }, "Copy the token now: it is shown only once."),
              h("p", {}, h("code", { class: "secret" }, created.token), " ", copyButton(created.token, "Copy token")),
            );
            await refresh();
          },
          { submitText: "Create token" },
        ),
        shown,
      ),
      section("All tokens", list),
    ),
    kinds: ["token"],
    refresh,
  };
}
