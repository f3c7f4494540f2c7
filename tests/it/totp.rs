//! TOTP through the edge: enrolment, confirmation, sign-in that needs the
//! code, wrong and replayed codes refused, and the seed nowhere on disk in
//! the clear.

use core_api::totp;
use harness::Rampart;
use harness::api::{self, ADMIN, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn now_step() -> i64 {
    totp::step_of(jiff::Timestamp::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_sign_in_replay_and_secrets_at_rest() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let me = s.login["admin"]["id"].as_str().unwrap().to_owned();

    // Confirming before enrolling is a conflict.
    let (status, body) = s
        .send(
            Method::POST,
            &format!("/api/v1/admins/{me}/totp/confirm"),
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let r = s
        .request(Method::POST, &format!("/api/v1/admins/{me}/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let enrolment: Value = r.json().await.unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Rampart:admin?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")));
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let seed = totp::from_base32(&secret).unwrap();
    assert_eq!(seed.len(), totp::SEED_LEN);

    // Pending: sign-in still works without a code.
    assert_eq!(api::login_raw(&rampart, ADMIN, PASSWORD).await.status(), StatusCode::OK);

    // A wrong code does not confirm; the right one does.
    let confirm = format!("/api/v1/admins/{me}/totp/confirm");
    let step = now_step();
    let wrong = format!(
        "{:06}",
        (totp::code_at(&seed, step).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let (status, body) = s.send(Method::POST, &confirm, json!({"code": wrong})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .send(Method::POST, &confirm, json!({"code": totp::code_at(&seed, step)}))
        .await;
    assert_eq!(
        (status, &body["totp_enabled"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );

    // Now sign-in needs the code.
    let r = api::login_totp(&rampart, ADMIN, PASSWORD, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "totp_code", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("TOTP"));
    let r = api::login_totp(&rampart, ADMIN, PASSWORD, Some(&wrong)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The code of the step already used at confirmation is refused...
    let r = api::login_totp(&rampart, ADMIN, PASSWORD, Some(&totp::code_at(&seed, step))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "replay of the confirmation code");
    // ...the next step's is accepted once, and only once.
    let next = totp::code_at(&seed, step + 1);
    let r = api::login_totp(&rampart, ADMIN, PASSWORD, Some(&next)).await;
    let fresh = Session::from_login(r, rampart.client(), rampart.url("")).await;
    assert_eq!(fresh.get("/api/v1/auth/me").await.0, StatusCode::OK);
    let r = api::login_totp(&rampart, ADMIN, PASSWORD, Some(&next)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "replay");

    // Wrong codes were audited as failed sign-ins.
    let (_, audit) = fresh.get("/api/v1/audit?action=auth.login").await;
    let denied: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(denied.iter().any(|e| e["detail"] == "wrong TOTP code"), "{audit}");

    // Only an admin removes TOTP (a lost authenticator); then the password suffices.
    assert_eq!(
        fresh.call(Method::DELETE, &format!("/api/v1/admins/{me}/totp")).await,
        StatusCode::NO_CONTENT
    );
    let (_, me_now) = fresh.get(&format!("/api/v1/admins/{me}")).await;
    assert_eq!(me_now["totp_enabled"], false);
    assert_eq!(api::login_raw(&rampart, ADMIN, PASSWORD).await.status(), StatusCode::OK);

    // The seed is on disk only sealed: neither its base32 nor its bytes
    // appear in the database or its write-ahead log.
    let core = rampart.data_dir.join("core");
    let mut checked = 0;
    for name in ["rampart.db", "rampart.db-wal"] {
        let Ok(bytes) = std::fs::read(core.join(name)) else {
            continue;
        };
        checked += 1;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "base32 seed in {name}"
        );
        assert!(
            !bytes.windows(seed.len()).any(|w| w == seed.as_slice()),
            "raw seed in {name}"
        );
    }
    assert!(checked >= 1, "no database file found in {}", core.display());
}
