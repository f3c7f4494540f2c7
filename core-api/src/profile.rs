//! What a device takes home: the wg-quick profile, the same as a QR code,
//! and the key link page that shows them all.
//!
//! The profile is built only from validated values (addresses, keys,
//! networks, ports, names without control characters), so no field can
//! break a line and inject a directive. The HTML page escapes every value
//! anyway and has no script or style of its own: it runs under the edge's
//! `default-src 'self'`.

use std::fmt::Write as _;

use qrcode::QrCode;
use qrcode::render::svg;
use schemas::values::{Cidr, Ipv4Net, Ipv6Net};

use crate::store::PeerProfile;

/// WireGuard's keepalive for peers behind NAT, in seconds.
const KEEPALIVE: u16 = 25;

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("QR code: {0}")]
pub struct QrError(qrcode::types::QrError);

/// The routes a device sends through the tunnel: the server's pushed routes,
/// or its own networks when it pushes none.
fn allowed_ips(p: &PeerProfile) -> Vec<String> {
    if !p.server.routes.is_empty() {
        return p.server.routes.iter().map(Cidr::to_string).collect();
    }
    let mut out = vec![Ipv4Net::to_string(&p.server.network)];
    out.extend(p.server.network6.as_ref().map(Ipv6Net::to_string));
    out
}

/// `host:port`, with an IPv6 literal in brackets.
fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The wg-quick profile text.
pub(crate) fn config_text(p: &PeerProfile) -> String {
    let mut out = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# Rampart: device {} on server {}", p.device.name, p.server.name);
    out.push_str("[Interface]\n");
    match &p.private_key {
        Some(key) => {
            let _ = writeln!(out, "PrivateKey = {}", key.as_str());
        }
        None => out.push_str("# PrivateKey = (this device's own private key)\n"),
    }
    let mut addresses = vec![format!("{}/32", p.address)];
    addresses.extend(p.address6.as_ref().map(|a| format!("{a}/128")));
    let _ = writeln!(out, "Address = {}", addresses.join(", "));
    if !p.server.dns.is_empty() {
        let dns: Vec<String> = p.server.dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "DNS = {}", dns.join(", "));
    }
    out.push_str("\n[Peer]\n");
    let _ = writeln!(out, "PublicKey = {}", p.server.public_key);
    let _ = writeln!(out, "PresharedKey = {}", p.preshared_key.as_str());
    let _ = writeln!(out, "AllowedIPs = {}", allowed_ips(p).join(", "));
    let _ = writeln!(out, "Endpoint = {}", endpoint(&p.public_address, p.server.port));
    let _ = writeln!(out, "PersistentKeepalive = {KEEPALIVE}");
    out
}

/// `text` as an SVG QR code (without an XML declaration, so it can also be
/// inlined into HTML).
pub(crate) fn qr_svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(QrError)?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    Ok(match image.find("<svg") {
        Some(start) => image[start..].to_owned(),
        None => image,
    })
}

/// Escapes text for HTML element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The key link page: every profile, as text and as a QR code.
pub(crate) fn key_page(user_name: &str, profiles: &[PeerProfile]) -> Result<String, QrError> {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>Your VPN profiles</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/console.css\">\n</head>\n<body>\n<main>\n",
    );
    let _ = writeln!(out, "<h1>VPN profiles for {}</h1>", escape(user_name));
    if profiles.is_empty() {
        out.push_str("<p>You have no device on any server yet.</p>\n");
    } else {
        out.push_str(
            "<p>Import a profile into the WireGuard app: scan its QR code, or save the text as a \
             <code>.conf</code> file. This page works only a limited number of times; keep the \
             profiles private.</p>\n",
        );
    }
    for p in profiles {
        let text = config_text(p);
        let _ = writeln!(
            out,
            "<section>\n<h2>{} on {}</h2>\n<pre>{}</pre>\n<figure>{}</figure>\n</section>",
            escape(p.device.name.as_str()),
            escape(p.server.name.as_str()),
            escape(&text),
            qr_svg(&text)?,
        );
    }
    out.push_str("</main>\n</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<b a="1">&'"#), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("vpn.example.com", 51820), "vpn.example.com:51820");
        assert_eq!(endpoint("2001:db8::1", 51820), "[2001:db8::1]:51820");
    }

    #[test]
    fn qr_is_an_svg_without_script_or_style() {
        let svg = qr_svg("[Interface]\nAddress = 10.0.0.2/32\n").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(!svg.contains("<script") && !svg.contains("style="));
    }
}
