//! The roles matrix, generated from the route table: who may call what.
//!
//! The README carries it between two markers; a test fails when it is
//! stale (`RAMPART_UPDATE_OPENAPI=1 cargo test -p schemas` rewrites it along
//! with `docs/openapi.json`). The end-to-end test `roles::*` checks the same
//! table against the running processes.

use super::{Access, ROUTES, ServedBy};
use crate::values::Role;

/// The marker lines around the matrix in the README.
pub const BEGIN: &str = "<!-- roles-matrix:begin (generated from the route table; do not edit) -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- roles-matrix:end -->";

fn cell(access: Access, role: Role) -> &'static str {
    if access.allows(role) {
        "yes"
    } else if access == Access::SelfOrAdmin {
        "self"
    } else {
        "—"
    }
}

/// The matrix as a Markdown table of the API's routes (the edge's static
/// files, all public, are left out).
pub fn markdown() -> String {
    let mut out = String::from("| method | path | access | admin | operator | auditor |\n|---|---|---|---|---|---|\n");
    for route in ROUTES {
        if matches!(route.served_by, ServedBy::Asset { .. }) {
            continue;
        }
        let cells: Vec<&str> = Role::ALL.iter().map(|r| cell(route.access, *r)).collect();
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            route.method.as_str(),
            super::openapi_path(route.path),
            route.access.as_str(),
            cells.join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// The README's copy of the matrix between the markers.
    #[test]
    fn readme_matrix_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
            panic!("README.md lacks the roles-matrix markers");
        };
        let current = &readme[start + BEGIN.len()..end];
        let generated = format!("\n{}", markdown());
        if current != generated && std::env::var_os("RAMPART_UPDATE_OPENAPI").is_some() {
            let updated = format!("{}{BEGIN}{generated}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).unwrap();
            return;
        }
        assert!(
            current == generated,
            "the roles matrix in README.md is stale: run RAMPART_UPDATE_OPENAPI=1 cargo test -p schemas"
        );
    }

    #[test]
    fn self_service_shows_as_self() {
        assert_eq!(cell(Access::SelfOrAdmin, Role::Operator), "self");
        assert_eq!(cell(Access::SelfOrAdmin, Role::Admin), "yes");
        assert_eq!(cell(Access::Manage, Role::Auditor), "—");
    }
}
