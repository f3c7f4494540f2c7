//! Admins through the edge: create, list, read, change, delete; the last
//! active admin stays; self-service passwords; disabling or deleting an
//! admin ends its sessions and tokens at once; bad input.

use harness::Rampart;
use harness::api::{self, Bearer, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_are_managed_and_the_last_admin_stays() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let me = s.login["admin"]["id"].as_str().unwrap().to_owned();

    // The last active admin cannot be demoted, disabled or deleted.
    let mine = format!("/api/v1/admins/{me}");
    let (status, body) = s.send(Method::PATCH, &mine, json!({"role": "operator"})).await;
    assert_eq!((status, fields(&body)), (StatusCode::CONFLICT, vec!["role"]), "{body}");
    let (status, body) = s.send(Method::PATCH, &mine, json!({"disabled": true})).await;
    assert_eq!(
        (status, fields(&body)),
        (StatusCode::CONFLICT, vec!["disabled"]),
        "{body}"
    );
    let r = s.request(Method::DELETE, &mine).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(fields(&body), vec!["id"]);

    // Create, conflict, list, read.
    let (status, created) = s
        .send(
            Method::POST,
            "/api/v1/admins",
            json!({"username": "olivia", "password": PASSWORD, "role": "operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["role"], "operator");
    assert_eq!(created["disabled"], false);
    assert_eq!(created["totp_enabled"], false);
    let olivia = created["id"].as_str().unwrap().to_owned();
    let (status, dup) = s
        .send(
            Method::POST,
            "/api/v1/admins",
            json!({"username": "olivia", "password": PASSWORD, "role": "auditor"}),
        )
        .await;
    assert_eq!((status, fields(&dup)), (StatusCode::CONFLICT, vec!["username"]));
    let (status, list) = s.get("/api/v1/admins").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Olivia reads and changes herself, but nothing else.
    let o = Session::login(&rampart, "olivia", PASSWORD).await;
    let hers = format!("/api/v1/admins/{olivia}");
    let (status, got) = o.get(&hers).await;
    assert_eq!((status, &got["username"]), (StatusCode::OK, &json!("olivia")));
    assert_eq!(o.get(&mine).await.0, StatusCode::FORBIDDEN);
    assert_eq!(o.get("/api/v1/admins").await.0, StatusCode::FORBIDDEN);
    let (status, _) = o.send(Method::PATCH, &hers, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no self-promotion");
    let new_password = "a much better passphrase";
    let (status, body) = o.send(Method::PATCH, &hers, json!({"password": new_password})).await;
    assert_eq!(
        (status, fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["current_password"])
    );
    let (status, _) = o
        .send(
            Method::PATCH,
            &hers,
            json!({"password": new_password, "current_password": "wrong"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = o
        .send(
            Method::PATCH,
            &hers,
            json!({"password": new_password, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(o.get(&hers).await.0, StatusCode::OK, "her own session survives");
    assert_eq!(
        api::login_raw(&rampart, "olivia", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // An admin resets another's password without the current one.
    let (status, _) = s.send(Method::PATCH, &hers, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        o.get(&hers).await.0,
        StatusCode::UNAUTHORIZED,
        "a reset ends her sessions"
    );
    let o = Session::login(&rampart, "olivia", PASSWORD).await;
    // Operators make no tokens (API.md: "not admins, tokens or settings").
    let (status, _) = o
        .send(
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "script", "role": "operator"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Disabling her ends her session at once, and she cannot sign in.
    let (status, body) = s.send(Method::PATCH, &hers, json!({"disabled": true})).await;
    assert_eq!((status, &body["disabled"]), (StatusCode::OK, &json!(true)));
    assert_eq!(o.get(&hers).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api::login_raw(&rampart, "olivia", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = s.send(Method::PATCH, &hers, json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK);

    // As an admin she makes tokens; disabling her ends them, and enabling
    // her does not revive them.
    let (status, _) = s.send(Method::PATCH, &hers, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    let o = Session::login(&rampart, "olivia", PASSWORD).await;
    let token = o.mint_token("script", "operator").await;
    let bearer = Bearer::new(&rampart, token["token"].as_str().unwrap());
    assert_eq!(bearer.get("/api/v1/orgs").await.0, StatusCode::OK);
    let (status, _) = s.send(Method::PATCH, &hers, json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bearer.get("/api/v1/orgs").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = s.send(Method::PATCH, &hers, json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bearer.get("/api/v1/orgs").await.0, StatusCode::UNAUTHORIZED);

    // A second admin makes the first one demotable; deleting ends sessions and tokens.
    let o = Session::login(&rampart, "olivia", PASSWORD).await;
    let token = o.mint_token("admin script", "admin").await;
    let bearer = Bearer::new(&rampart, token["token"].as_str().unwrap());
    assert_eq!(bearer.get("/api/v1/admins").await.0, StatusCode::OK);
    assert_eq!(s.call(Method::DELETE, &hers).await, StatusCode::NO_CONTENT);
    assert_eq!(o.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(bearer.get("/api/v1/admins").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.get(&hers).await.0, StatusCode::NOT_FOUND);

    // Every change is in the audit log.
    let (_, audit) = s.get("/api/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "success")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in ["admin.create", "admin.update", "admin.delete", "token.create"] {
        assert!(actions.contains(&expected), "{expected} not in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_admin_and_token_routes() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let me = s.login["admin"]["id"].as_str().unwrap().to_owned();

    for (method, path, body, field) in [
        (
            Method::POST,
            "/api/v1/admins".to_owned(),
            json!({"username": "Bad Name", "password": PASSWORD, "role": "admin"}),
            "username",
        ),
        (
            Method::POST,
            "/api/v1/admins".to_owned(),
            json!({"username": "shorty", "password": "short", "role": "admin"}),
            "password",
        ),
        (
            Method::POST,
            "/api/v1/admins".to_owned(),
            json!({"username": "robert", "password": PASSWORD, "role": "root"}),
            "role",
        ),
        (
            Method::POST,
            "/api/v1/admins".to_owned(),
            json!({"username": "robert", "password": PASSWORD, "role": "admin", "extra": 1}),
            "extra",
        ),
        (Method::PATCH, format!("/api/v1/admins/{me}"), json!({}), "role"),
        (
            Method::PATCH,
            format!("/api/v1/admins/{me}"),
            json!({"disabled": "yes"}),
            "disabled",
        ),
        (
            Method::POST,
            format!("/api/v1/admins/{me}/totp/confirm"),
            json!({"code": "12345"}),
            "code",
        ),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            json!({"name": "", "role": "admin"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            json!({"name": "x", "role": "admin", "expires_in": 5}),
            "expires_in",
        ),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            json!({"name": "x", "role": "admin", "expires_in": 999_999_999}),
            "expires_in",
        ),
    ] {
        let (status, body) = s.send(method.clone(), &path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} {body}");
        assert!(fields(&body).contains(&field), "{method} {path}: {body}");
    }

    // Query parameters are typed too, and unknown ones refused.
    for (path, field) in [
        ("/api/v1/admins?limit=0", "query.limit"),
        ("/api/v1/tokens?limit=9999", "query.limit"),
        ("/api/v1/tokens?owner=me", "query.owner"),
        ("/api/v1/audit/verify?deep=1", "query.deep"),
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(fields(&body).contains(&field), "{path}: {body}");
    }
    assert_eq!(
        s.call(Method::DELETE, "/api/v1/admins/123/totp").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call(Method::DELETE, "/api/v1/admins/123").await,
        StatusCode::NOT_FOUND
    );

    for path in [
        "/api/v1/admins/123",
        "/api/v1/admins/not-a-uuid/totp",
        "/api/v1/admins/0192f0c48c3e7a6b9a8b0123456789ab/totp/confirm",
        "/api/v1/tokens/xyz",
    ] {
        let method = if path.contains("totp") {
            Method::POST
        } else if path.contains("tokens") {
            Method::DELETE
        } else {
            Method::GET
        };
        assert_eq!(
            s.request(method, path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Well-formed ids of nothing are 404s from the core.
    let nobody = "0192f0c4-8c3e-7a6b-9a8b-0123456789ab";
    assert_eq!(
        s.get(&format!("/api/v1/admins/{nobody}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/v1/tokens/{nobody}")).await,
        StatusCode::NOT_FOUND
    );
    // A bearer credential that is not an API token is refused, cookie or not.
    let r = s
        .request(Method::GET, "/api/v1/orgs")
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
