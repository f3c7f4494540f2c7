// First-admin setup and sign-in.

import * as api from "../api.js";
import { h, field, form } from "../ui.js";

/// The one-time setup: the token printed at first start (it arrives in the
/// URL fragment from the banner's link) and the first admin's credentials.
export function setupScreen(token, done) {
  return h(
    "div",
    { class: "card" },
    h("h1", {}, "Create the first admin"),
    h(
      "p",
      {},
      "Use the one-time setup token that ",
      h("code", {}, "rampart serve"),
      " printed at first start (also in ",
      h("code", {}, "DATA_DIR/setup-token"),
      ").",
    ),
    form(
      "First admin",
      [
        field("token", "Setup token", { value: token, autocomplete: "off", spellcheck: "false", required: true }),
        field("username", "Username", { value: "admin", autocomplete: "username", required: true }),
        field("password", "Password (12 characters or more)", {
          type: "password",
          autocomplete: "new-password",
          minlength: 12,
          required: true,
        }),
      ],
      async (values) => {
        await api.post("/api/v1/setup", values);
        done();
      },
      { submitText: "Create admin" },
    ),
  );
}

/// Sign-in. The TOTP field appears when the API says this admin needs one
/// (a 401 whose problem names `totp_code`).
export function loginScreen(signedIn, message) {
  const totp = field("totp_code", "Authenticator code", {
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6}",
    maxlength: 6,
  });
  totp.hidden = true;
  const el = form(
    "Sign in",
    [
      field("username", "Username", { autocomplete: "username", required: true }),
      field("password", "Password", { type: "password", autocomplete: "current-password", required: true }),
      totp,
    ],
    async (values, formEl) => {
      const body = { username: values.username, password: values.password };
      if (!totp.hidden && values.totp_code) body.totp_code = values.totp_code;
      try {
        signedIn(await api.login(body));
      } catch (err) {
        if (err.errors.some((e) => e.field === "totp_code") && totp.hidden) {
          totp.hidden = false;
          formEl.querySelector('[name="totp_code"]').focus();
        }
        throw err;
      }
    },
    { submitText: "Sign in" },
  );
  return h(
    "div",
    { class: "card" },
    h("h1", {}, "Sign in to Rampart"),
    message ? h("p", { class: "note", role: "status" }, message) : null,
    el,
  );
}
