//! Static files compiled into the binary: the edge reads nothing from disk
//! to serve them, and nothing but these can be served.
//!
//! The console is one page (`/`, and `/setup` for the first-admin link the
//! banner prints) plus hand-written ES modules and one style sheet: no
//! build step, so what is served is what is in `edge-gateway/assets/`.

/// The embedded file for an asset route's path.
pub fn get(path: &str) -> Option<&'static [u8]> {
    Some(match path {
        "/" | "/setup" => include_bytes!("../assets/index.html"),
        "/assets/console.css" => include_bytes!("../assets/console.css"),
        "/assets/icon.svg" => include_bytes!("../assets/icon.svg"),
        "/assets/app.js" => include_bytes!("../assets/app.js"),
        "/assets/api.js" => include_bytes!("../assets/api.js"),
        "/assets/ui.js" => include_bytes!("../assets/ui.js"),
        "/assets/views/auth.js" => include_bytes!("../assets/views/auth.js"),
        "/assets/views/dashboard.js" => include_bytes!("../assets/views/dashboard.js"),
        "/assets/views/orgs.js" => include_bytes!("../assets/views/orgs.js"),
        "/assets/views/servers.js" => include_bytes!("../assets/views/servers.js"),
        "/assets/views/admins.js" => include_bytes!("../assets/views/admins.js"),
        "/assets/views/tokens.js" => include_bytes!("../assets/views/tokens.js"),
        "/assets/views/audit.js" => include_bytes!("../assets/views/audit.js"),
        "/assets/views/settings.js" => include_bytes!("../assets/views/settings.js"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use schemas::routes::{ROUTES, ServedBy};

    #[test]
    fn every_asset_route_has_a_file() {
        for route in ROUTES {
            if let ServedBy::Asset { .. } = route.served_by {
                assert!(super::get(route.path).is_some(), "{}", route.path);
            }
        }
    }

    /// The CSP allows no inline code: no file may carry any, and the
    /// scripts build pages from nodes only (Trusted Types refuses HTML
    /// strings), so none may use an HTML sink either, nor keep anything in
    /// web storage.
    #[test]
    fn no_inline_code_and_no_html_sinks() {
        for route in ROUTES {
            let (ServedBy::Asset { .. }, Some(bytes)) = (route.served_by, super::get(route.path)) else {
                continue;
            };
            let text = String::from_utf8_lossy(bytes);
            for banned in [
                "<script>",
                " style=",
                "<style",
                "javascript:",
                "onclick=",
                "onload=",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "localStorage",
                "sessionStorage",
                // No other origin: nothing loaded from or sent to one.
                "src=\"http",
                "href=\"http",
                "fetch(\"http",
                "url(http",
                "@import",
                "EventSource(\"http",
            ] {
                assert!(!text.contains(banned), "{} contains {banned:?}", route.path);
            }
        }
    }
}
