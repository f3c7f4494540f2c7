#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::*;
use crate::store::migrations;

const SERVER: &str = "server-1";

fn db(network: &str, network6: Option<&str>) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    migrations::migrate(&mut conn).unwrap();
    conn.execute_batch(
        "INSERT INTO orgs (id, name, name_key, created_at) VALUES ('org', 'Org', 'org', 't');
         INSERT INTO users (id, org_id, name, name_key, created_at) VALUES ('user', 'org', 'U', 'u', 't');",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO servers (id, name, name_key, network, network6, port, dns, routes, state, public_key,
                              private_key_sealed, next_host4, next_host6, created_at)
         VALUES (?1, 's', 's', ?2, ?3, 51820, '[]', '[]', 'stopped', 'pk', 'sealed', 2, 2, 't')",
        params![SERVER, network, network6],
    )
    .unwrap();
    conn
}

fn add_devices(conn: &Connection, n: usize) -> Vec<String> {
    let mut stmt = conn
        .prepare("INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES (?1, 'user', 'd', ?1, 't')")
        .unwrap();
    (0..n)
        .map(|i| {
            let id = format!("dev-{i:06}");
            stmt.execute(params![id]).unwrap();
            id
        })
        .collect()
}

fn address_of(conn: &Connection, device: &str) -> String {
    conn.query_row(
        "SELECT address FROM peers WHERE server_id = ?1 AND device_id = ?2",
        params![SERVER, device],
        |r| r.get(0),
    )
    .unwrap()
}

/// 65,000 devices in a /16: all distinct, none the network, gateway or
/// broadcast address; a released address is the next one handed out.
#[test]
fn a_slash_16_hands_out_65000_unique_addresses_and_reuses_freed_ones() {
    let mut conn = db("198.18.0.0/16", None);
    let key = HostKey::from_bytes(&[1; 32]);
    let tx = conn.transaction().unwrap();
    let devices = add_devices(&tx, 65_001);
    let nets = networks(&tx, SERVER).unwrap();
    for device in &devices[..65_000] {
        add_peer(&tx, &key, SERVER, nets, device).unwrap();
    }
    let addresses: Vec<String> = tx
        .prepare("SELECT address FROM peers WHERE server_id = ?1")
        .unwrap()
        .query_map(params![SERVER], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(addresses.len(), 65_000);
    let unique: HashSet<&String> = addresses.iter().collect();
    assert_eq!(unique.len(), 65_000, "an address was handed out twice");
    for excluded in ["198.18.0.0", "198.18.0.1", "198.18.255.255"] {
        assert!(!unique.contains(&excluded.to_owned()), "{excluded} was handed out");
    }
    assert!(addresses.iter().all(|a| a.starts_with("198.18.")));

    // Free one in the middle: the next device gets exactly that address.
    let freed = address_of(&tx, &devices[1234]);
    tx.execute("DELETE FROM devices WHERE id = ?1", params![devices[1234]])
        .unwrap();
    add_peer(&tx, &key, SERVER, nets, &devices[65_000]).unwrap();
    assert_eq!(address_of(&tx, &devices[65_000]), freed);
    tx.commit().unwrap();
}

#[test]
fn a_small_pool_runs_out_with_a_conflict_and_never_hands_out_reserved_addresses() {
    let conn = db("192.0.2.0/30", Some("fd00::/126"));
    let key = HostKey::from_bytes(&[1; 32]);
    let devices = add_devices(&conn, 2);
    let nets = networks(&conn, SERVER).unwrap();
    add_peer(&conn, &key, SERVER, nets, &devices[0]).unwrap();
    assert_eq!(address_of(&conn, &devices[0]), "192.0.2.2");
    let v6: String = conn.query_row("SELECT address6 FROM peers", [], |r| r.get(0)).unwrap();
    assert_eq!(v6, "fd00::2");
    // .3 is the broadcast address: the /30 holds one device.
    let err = add_peer(&conn, &key, SERVER, nets, &devices[1]).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { field: "network", .. }), "{err:?}");
}
