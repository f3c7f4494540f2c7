// Settings (admins only): public address, ACME, the certificate's status.

import * as api from "../api.js";
import { h, fill, field, form, action, toast, section, when } from "../ui.js";

const CHALLENGES = [["http-01", "HTTP-01 (port 80)"], ["tls-alpn-01", "TLS-ALPN-01 (port 443)"], ["dns-01", "DNS-01 (hook)"]];

export async function settingsScreen() {
  const status = h("div", {});
  let settings = await api.get("/api/v1/settings");

  const drawStatus = () => {
    const c = settings.certificate;
    fill(
      status,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Names"), h("dd", {}, c.names.length ? c.names.join(", ") : "— (self-signed)"),
        h("dt", {}, "Expires"), h("dd", {}, when(c.not_after)),
        h("dt", {}, "Issuer"), h("dd", {}, c.issuer || "—"),
        h("dt", {}, "Last attempt"), h("dd", {}, when(c.last_attempt)),
        h("dt", {}, "Last error"), h("dd", { class: c.last_error ? "bad" : "" }, c.last_error || "none"),
        h("dt", {}, "Renewal requested"), h("dd", {}, c.renew_requested ? "yes" : "no"),
      ),
      action("Renew now", async () => {
        await api.post("/api/v1/settings/acme/renew");
        toast("Renewal requested; an edge starts within seconds.");
        await refresh();
      }, { className: "" }),
    );
  };
  const refresh = async () => {
    settings = await api.get("/api/v1/settings");
    drawStatus();
  };
  drawStatus();

  const edit = form(
    "Settings",
    [
      field("public_address", "Public address", { value: settings.public_address, hint: "The host name or address clients connect to (profiles' Endpoint, key links)." }),
      field("acme_domains", "ACME names (comma-separated; empty turns ACME off)", { value: settings.acme_domains.join(", ") }),
      field("acme_email", "ACME contact email", { type: "email", value: settings.acme_email || "" }),
      field("acme_directory", "ACME directory", { value: settings.acme_directory, hint: "letsencrypt, letsencrypt-staging or an https:// directory URL" }),
      field("acme_challenge", "Challenge", { options: CHALLENGES, value: settings.acme_challenge }),
    ],
    async (values) => {
      const body = {
        public_address: values.public_address,
        acme_domains: values.acme_domains.split(",").map((d) => d.trim()).filter(Boolean),
        acme_directory: values.acme_directory,
        acme_challenge: values.acme_challenge,
      };
      if (values.acme_email) body.acme_email = values.acme_email;
      settings = await api.patch("/api/v1/settings", body);
      drawStatus();
      toast("Saved.");
    },
  );

  return {
    title: "Settings",
    node: h("div", {}, h("h1", {}, "Settings"), section("Address and certificate", edit), section("Certificate", status)),
    kinds: ["setting", "settings"],
    refresh,
  };
}
