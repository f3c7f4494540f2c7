// Admins and roles (admins only), and every role's own account: password
// and TOTP enrolment.

import * as api from "../api.js";
import { h, fill, field, form, table, action, confirm, toast, badge, section, when } from "../ui.js";

const ROLES = [["admin", "admin — everything"], ["operator", "operator — orgs, users, devices, servers"], ["auditor", "auditor — read-only, audit log"]];

export async function adminsScreen({ me }) {
  const list = h("div", {});
  const refresh = async () => {
    const admins = await api.all("/api/v1/admins");
    fill(
      list,
      table(
        "Admins",
        ["Username", "Role", "State", "TOTP", "Created", ""],
        admins.map((a) => {
          const role = h("select", { "aria-label": `Role of ${a.username}` }, ROLES.map(([v]) => h("option", { value: v }, v)));
          role.value = a.role;
          role.addEventListener("change", async () => {
            try {
              await api.patch(`/api/v1/admins/${a.id}`, { role: role.value });
              toast(`${a.username} is now ${role.value}.`);
            } catch (err) {
              role.value = a.role;
              toast(err.message, true);
            }
          });
          return [
            a.username + (a.id === me.id ? " (you)" : ""),
            role,
            a.disabled ? badge("disabled", "bad") : badge("active", "ok"),
            a.totp_enabled ? badge("on", "ok") : "off",
            when(a.created_at),
            h(
              "span",
              { class: "row-actions" },
              action(a.disabled ? "Enable" : "Disable", async () => {
                await api.patch(`/api/v1/admins/${a.id}`, { disabled: !a.disabled });
                await refresh();
              }, { label: `${a.disabled ? "Enable" : "Disable"} ${a.username}` }),
              a.totp_enabled &&
                action("Reset TOTP", async () => {
                  if (!(await confirm(`Remove ${a.username}'s authenticator? They sign in with the password only until they enrol again.`, "Reset"))) return;
                  await api.del(`/api/v1/admins/${a.id}/totp`);
                  await refresh();
                }, { label: `Reset TOTP of ${a.username}` }),
              action("Delete", async () => {
                if (!(await confirm(`Delete ${a.username}? Their sessions and tokens end.`))) return;
                await api.del(`/api/v1/admins/${a.id}`);
                await refresh();
              }, { label: `Delete ${a.username}`, className: "danger" }),
            ),
          ];
        }),
        "No admins.",
      ),
    );
  };
  await refresh();
  return {
    title: "Admins",
    node: h(
      "div",
      {},
      h("h1", {}, "Admins"),
      section("All admins", list),
      section(
        "New admin",
        form(
          "New admin",
          [
            field("username", "Username", { required: true, autocomplete: "off", hint: "3–32 characters: a–z, 0–9, . _ -" }),
            field("password", "Password (12 characters or more)", { type: "password", autocomplete: "new-password", required: true }),
            field("role", "Role", { options: ROLES, value: "operator" }),
          ],
          async (values, el) => {
            await api.post("/api/v1/admins", values);
            el.reset();
            toast(`Created ${values.username}.`);
            await refresh();
          },
          { submitText: "Create admin" },
        ),
      ),
    ),
    kinds: ["admin"],
    refresh,
  };
}

export async function accountScreen({ me }) {
  const detail = await api.get(`/api/v1/admins/${me.id}`);
  const totpBox = h("div", {});

  const enrol = async () => {
    const enrolment = await api.post(`/api/v1/admins/${me.id}/totp`);
    // The QR code is SVG text; it is shown through an image of a blob URL,
    // never parsed into the page.
    const url = URL.createObjectURL(new Blob([enrolment.qr_svg], { type: "image/svg+xml" }));
    fill(
      totpBox,
      h("p", {}, "Scan this with an authenticator app, or type the secret, then confirm with a code."),
      h("img", { src: url, alt: "TOTP enrolment QR code", width: 200, height: 200, class: "qr" }),
      h("p", {}, "Secret: ", h("code", { class: "secret" }, enrolment.secret)),
      form("Confirm TOTP", [field("code", "Code from the app", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6 })], async (values) => {
        await api.post(`/api/v1/admins/${me.id}/totp/confirm`, { code: values.code });
        URL.revokeObjectURL(url);
        fill(totpBox, h("p", { class: "note" }, "TOTP is on: sign-in now asks for a code."));
      }, { submitText: "Confirm" }),
    );
  };

  fill(
    totpBox,
    h("p", {}, detail.totp_enabled ? "TOTP is on." : "TOTP is off: sign-in needs only the password."),
    action(detail.totp_enabled ? "Enrol a new authenticator" : "Turn on TOTP", enrol, { className: "" }),
  );

  return {
    title: "My account",
    node: h(
      "div",
      {},
      h("h1", {}, "My account"),
      h("dl", { class: "facts" }, h("dt", {}, "Username"), h("dd", {}, detail.username), h("dt", {}, "Role"), h("dd", {}, detail.role)),
      section(
        "Password",
        form(
          "Change password",
          [
            field("current_password", "Current password", { type: "password", autocomplete: "current-password" }),
            field("password", "New password (12 characters or more)", { type: "password", autocomplete: "new-password" }),
          ],
          async (values, el) => {
            await api.patch(`/api/v1/admins/${me.id}`, values);
            el.reset();
            toast("Password changed.");
          },
          { submitText: "Change password" },
        ),
      ),
      section("Two-factor sign-in (TOTP)", totpBox),
    ),
    kinds: [],
  };
}
