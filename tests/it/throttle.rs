//! Failed sign-ins are throttled per account (core) and per client address
//! (edge), with 429 and `Retry-After`.

use harness::Rampart;
use harness::api::{self, ADMIN, PASSWORD, Session};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_for_a_while() {
    let rampart = Rampart::start().await;
    Session::admin(&rampart).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api::login_raw(&rampart, ADMIN, "wrong password!").await.status());
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    // Even the right password waits out the lock.
    let r = api::login_raw(&rampart, ADMIN, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Unknown accounts are throttled the same way, so locking says nothing
    // about which names exist.
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = api::login_raw(&rampart, "nobody", "wrong password!").await.status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_spray_many_accounts() {
    let rampart = Rampart::start_with(|cmd| {
        cmd.env("RAMPART_LOGIN_ATTEMPTS_PER_MINUTE", "4");
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(api::login_raw(&rampart, &format!("user{i}"), "wrong password!").await);
    }
    let codes: Vec<StatusCode> = statuses.iter().map(reqwest::Response::status).collect();
    assert_eq!(&codes[..4], &[StatusCode::UNAUTHORIZED; 4]);
    assert_eq!(codes[4], StatusCode::TOO_MANY_REQUESTS);
    assert!(statuses[4].headers().contains_key("retry-after"));
}
