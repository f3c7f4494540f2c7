//! The audit log you can prove: the API and the offline `rampart audit`
//! commands agree that the chain is intact, and after one row is edited
//! directly in SQLite both name that row.

use std::process::Command;

use harness::api::Session;
use harness::{Rampart, bin};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn rampart_audit(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(bin("rampart"))
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_entry_is_named_by_the_api_and_the_cli() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    for name in ["One", "Two", "Three"] {
        let (status, _) = s.send(Method::POST, "/api/v1/orgs", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    let (status, verdict) = s.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["ok"], true, "{verdict}");
    let entries = verdict["entries"].as_u64().unwrap();
    assert!(entries >= 5, "{verdict}");
    assert!(verdict.get("first_bad_id").is_none());

    let out = rampart_audit(&["verify"], &rampart.data_dir);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));

    // Export: one JSON entry per line, in chain order, each linked to the last.
    let file = rampart.data_dir.join("audit.jsonl");
    let out = rampart_audit(&["export", "--output", file.to_str().unwrap()], &rampart.data_dir);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() as u64 >= entries);
    for (i, pair) in lines.windows(2).enumerate() {
        assert_eq!(pair[0]["id"], i as u64 + 1);
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let out = rampart_audit(&["export"], &rampart.data_dir);
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= lines.len());

    // Someone with the file drops the append-only triggers and rewrites an entry.
    let victim = lines
        .iter()
        .find(|e| e["action"] == "org.create")
        .and_then(|e| e["id"].as_i64())
        .unwrap();
    let db = rusqlite::Connection::open(rampart.data_dir.join("core/rampart.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    let changed = db
        .execute("UPDATE audit SET actor = 'admin:mallory' WHERE id = ?1", [victim])
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let (status, verdict) = s.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["first_bad_id"], victim, "{verdict}");

    let out = rampart_audit(&["verify"], &rampart.data_dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("first_bad_id={victim}")), "{stdout}");
}
