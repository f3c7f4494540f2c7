//! The core and the `schemas` route table agree: every route the table says
//! the core answers has a handler, and each role gets exactly the access the
//! table grants it.

use axum::http::StatusCode;
use schemas::routes::{Access, ROUTES, Route, ServedBy};
use schemas::values::Role;

use crate::support::{App, Session};

/// The core also serves the edge's three diagnostic routes on loopback.
fn served_by_core(route: &Route) -> bool {
    route.served_by == ServedBy::Core || matches!(route.operation, "health" | "ready" | "openapi")
}

/// A concrete path for a template: typed parameters get a valid value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.ends_with(":uuid}") {
                uuid::Uuid::now_v7().to_string()
            } else if seg.ends_with(":token}") {
                "A".repeat(43)
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_core_route_is_routed_and_access_matches_the_table() {
    let app = App::new().await;
    app.admin().await;
    let roles = [
        ("alice", Role::Admin),
        ("otto", Role::Operator),
        ("audrey", Role::Auditor),
    ];
    for (name, role) in &roles[1..] {
        app.session_with_role(name, *role).await;
    }
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| served_by_core(r)) {
        for (name, role) in roles {
            // A fresh session each time: one of the routes is logout.
            let session: Session = app.login(name, crate::support::PASSWORD).await;
            let path = concrete(route.path);
            let body = route.body.map(|_| serde_json::json!({}));
            let r = app.call(route.method.as_str(), &path, body, Some(&session)).await;
            let what = format!("{} {} as {}", route.method.as_str(), route.path, role.as_str());
            assert_ne!(r.body["detail"], "no such route", "{what}: no handler");
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
            if route.access.allows(role) {
                assert_ne!(r.status, StatusCode::FORBIDDEN, "{what}: {:?}", r.body);
                assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {:?}", r.body);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} route/role pairs checked");
}

#[tokio::test]
async fn non_public_routes_need_a_session() {
    let app = App::new().await;
    for route in ROUTES
        .iter()
        .filter(|r| served_by_core(r) && r.access != Access::Public)
    {
        let r = app.call(route.method.as_str(), &concrete(route.path), None, None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {}",
            route.method.as_str(),
            route.path
        );
    }
}
