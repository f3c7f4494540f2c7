//! Store tests: atomicity of change + audit, the chain under concurrency,
//! timestamps, LIKE escaping.
#![allow(clippy::unwrap_used)]

use jiff::Timestamp;
use schemas::api::{Org, Outcome};
use schemas::values::{Name, OrgId};

use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core").join("rampart.db")).await.unwrap();
    (dir, store)
}

fn record(action: &str) -> AuditRecord {
    AuditRecord {
        time: "2030-01-01T00:00:00Z".parse().unwrap(),
        actor: "admin:alice".into(),
        client_addr: Some("127.0.0.1:1".into()),
        request_id: Some("r".into()),
        action: action.into(),
        target: None,
        outcome: Outcome::Success,
        detail: None,
    }
}

fn org(name: &str) -> Org {
    Org {
        id: OrgId::new(),
        name: Name::try_from(name.to_owned()).unwrap(),
        created_at: Timestamp::UNIX_EPOCH,
    }
}

async fn count(store: &Store) -> usize {
    store
        .list_audit(AuditQuery {
            limit: 500,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn a_refused_change_leaves_no_audit_row_behind() {
    let (_dir, store) = store().await;
    store.create_org(org("Acme"), record("org.create")).await.unwrap();
    let err = store.create_org(org("ACME"), record("org.create")).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { field: "name" }));
    assert_eq!(
        count(&store).await,
        1,
        "the failed change's entry was rolled back with it"
    );
    let err = store.delete_org(OrgId::new(), record("org.delete")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    assert_eq!(count(&store).await, 1);
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    let (_dir, store) = store().await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append_audit(record(&format!("test.{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let report = store.verify_chain().await.unwrap();
    assert_eq!(
        report,
        AuditVerify {
            ok: true,
            entries: 32,
            first_bad_id: None
        }
    );
}

#[tokio::test]
async fn first_entry_starts_from_the_genesis_hash() {
    let (_dir, store) = store().await;
    store.append_audit(record("a")).await.unwrap();
    store.append_audit(record("b")).await.unwrap();
    let items = store
        .list_audit(AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(items[1].id, 1);
    assert_eq!(items[1].prev_hash, crate::audit::GENESIS_HASH);
    assert_eq!(items[0].prev_hash, items[1].hash);
}

#[test]
fn timestamps_are_fixed_width_and_round_trip() {
    let ts: Timestamp = "2030-01-01T00:00:00.5Z".parse().unwrap();
    assert_eq!(ts_to_sql(ts), "2030-01-01T00:00:00.500000Z");
    assert_eq!(ts_from_sql("t", &ts_to_sql(ts)).unwrap(), ts);
    assert!(ts_to_sql(ts) > ts_to_sql("2030-01-01T00:00:00Z".parse().unwrap()));
}

/// A search must not read every row of the organization from the table:
/// the plan walks `users_org_search`, whose entries carry the search keys,
/// in id order (no sort), for pages with and without a search.
#[test]
fn user_pages_walk_the_index_that_holds_the_search_keys() {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    migrations::migrate(&mut conn).unwrap();
    for search in [true, false] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", users::list_users_sql(search)))
            .unwrap()
            .query_map(rusqlite::params!["o", None::<String>, Some("%a%"), 101], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH users USING INDEX users_org_search (org_id=?)"],
            "search: {search}"
        );
    }
}

/// `.cargo/config.toml` builds SQLite without its process-wide page cache
/// (one mutex for every connection's pages, on which the readers queued)
/// and without counting memory under another global mutex. This fails if
/// the build loses those flags.
#[test]
fn sqlite_gives_each_connection_its_own_page_cache() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("SELECT compile_options FROM pragma_compile_options")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
    assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
}

#[test]
fn like_patterns_are_escaped() {
    assert_eq!(orgs::like_escape(r"50%_a\b"), r"50\%\_a\\b");
}

#[tokio::test]
async fn setup_state_follows_the_token() {
    let (_dir, store) = store().await;
    assert_eq!(
        store.setup_state().await.unwrap(),
        SetupState {
            token_hash: None,
            used: false,
            admin_exists: false
        }
    );
    store.issue_setup_token("h".repeat(64)).await.unwrap();
    assert_eq!(store.setup_state().await.unwrap().token_hash, Some("h".repeat(64)));
}

fn new_admin(name: &str, role: schemas::values::Role) -> NewAdmin {
    NewAdmin {
        admin: Admin {
            id: AdminId::new(),
            username: schemas::values::Username::try_from(name.to_owned()).unwrap(),
            role,
        },
        password_hash: "$argon2id$not-used".into(),
        created_at: Timestamp::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn the_last_active_admin_stays_and_refusals_leave_no_entry() {
    use schemas::values::Role;
    let (_dir, store) = store().await;
    let first = new_admin("alice", Role::Admin);
    let alice = first.admin.id;
    store.create_admin(first, record("admin.create")).await.unwrap();
    let before = count(&store).await;
    let demote = AdminChange {
        role: Some(Role::Operator),
        ..AdminChange::default()
    };
    let err = store
        .update_admin(alice, demote.clone(), record("admin.update"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LastAdmin { field: "role" }), "{err:?}");
    let disable = AdminChange {
        disabled: Some(true),
        ..AdminChange::default()
    };
    let err = store
        .update_admin(alice, disable, record("admin.update"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LastAdmin { field: "disabled" }), "{err:?}");
    let err = store.delete_admin(alice, record("admin.delete")).await.unwrap_err();
    assert!(matches!(err, StoreError::LastAdmin { field: "id" }), "{err:?}");
    assert_eq!(count(&store).await, before, "refused changes write nothing");

    // A disabled second admin does not count as active; an enabled one does.
    let second = new_admin("bob", Role::Admin);
    let bob = second.admin.id;
    store.create_admin(second, record("admin.create")).await.unwrap();
    let off = AdminChange {
        disabled: Some(true),
        ..AdminChange::default()
    };
    store.update_admin(bob, off, record("admin.update")).await.unwrap();
    assert!(
        store
            .update_admin(alice, demote.clone(), record("admin.update"))
            .await
            .is_err()
    );
    let on = AdminChange {
        disabled: Some(false),
        ..AdminChange::default()
    };
    store.update_admin(bob, on, record("admin.update")).await.unwrap();
    let changed = store.update_admin(alice, demote, record("admin.update")).await.unwrap();
    assert_eq!(changed.role, Role::Operator);
}

#[tokio::test]
async fn totp_steps_only_move_forward() {
    let (_dir, store) = store().await;
    let first = new_admin("alice", schemas::values::Role::Admin);
    let alice = first.admin.id;
    store.create_admin(first, record("admin.create")).await.unwrap();
    let ok = |step| store.db.write(move |tx| admins::accept_totp_step(tx, alice, step));
    ok(10).await.unwrap();
    assert!(matches!(ok(10).await, Err(StoreError::TotpReplay)));
    assert!(matches!(ok(9).await, Err(StoreError::TotpReplay)));
    ok(11).await.unwrap();
    assert_eq!(store.totp_state(alice).await.unwrap().last_step, Some(11));
}
