//! Static files compiled into the binary: the edge reads nothing from disk
//! to serve them, and nothing but these can be served.

/// The embedded file for an asset route's path.
pub fn get(path: &str) -> Option<&'static [u8]> {
    Some(match path {
        "/setup" => include_bytes!("../assets/setup.html"),
        "/assets/setup.js" => include_bytes!("../assets/setup.js"),
        "/assets/console.css" => include_bytes!("../assets/console.css"),
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
}
