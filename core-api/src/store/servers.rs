//! VPN servers and the organizations attached to them.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::{Server, ServerState};
use schemas::values::{Cidr, Ipv4Net, Ipv6Net, OrgId, ServerId};

use super::conn::Cached;
use super::resources::NewServer;
use super::users::parse;
use super::{Listed, StoreError, pool, ts_from_sql, ts_to_sql};
use crate::sealed::HostKey;

const COLUMNS: &str = "id, name, network, network6, port, dns, routes, state, public_key, created_at";

type Row = (
    String,
    String,
    String,
    Option<String>,
    u16,
    String,
    String,
    String,
    String,
    String,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn json_list<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> Result<Vec<T>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt {
        column,
        value: text.to_owned(),
    })
}

fn to_json<T: serde::Serialize>(items: &[T]) -> String {
    // A list of IPs or CIDR strings always serializes.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn server_from(conn: &Connection, row: Row) -> Result<Server, StoreError> {
    let (id, name, network, network6, port, dns, routes, state, public_key, created_at) = row;
    let orgs = conn
        .prepare_cached("SELECT org_id FROM server_orgs WHERE server_id = ?1 ORDER BY org_id")?
        .query_map(params![id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|o| parse::<OrgId>("server_orgs.org_id", o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Server {
        id: parse("servers.id", &id)?,
        name: parse("servers.name", &name)?,
        network: parse("servers.network", &network)?,
        network6: network6.as_deref().map(|n| parse("servers.network6", n)).transpose()?,
        port,
        dns: json_list::<IpAddr>("servers.dns", &dns)?,
        routes: json_list::<Cidr>("servers.routes", &routes)?,
        state: match state.as_str() {
            "running" => ServerState::Running,
            "stopped" => ServerState::Stopped,
            _ => {
                return Err(StoreError::Corrupt {
                    column: "servers.state",
                    value: state,
                });
            }
        },
        orgs,
        public_key: parse("servers.public_key", &public_key)?,
        created_at: ts_from_sql("servers.created_at", &created_at)?,
    })
}

pub(super) fn list(conn: &Connection, after: Option<ServerId>, limit: u32) -> Result<Listed<Server>, StoreError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM servers WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2"
        ))?
        .query_map(params![after.map(|a| a.to_string()), i64::from(limit) + 1], read_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = rows
        .into_iter()
        .map(|r| server_from(conn, r))
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Listed { items, more })
}

pub(super) fn get(conn: &Connection, id: ServerId) -> Result<Server, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM servers WHERE id = ?1"))?
        .query_row(params![id.to_string()], read_row)
        .optional()?
        .ok_or(StoreError::NotFound)?;
    server_from(conn, row)
}

fn name_taken(conn: &Connection, name: &str, except: Option<ServerId>) -> Result<bool, StoreError> {
    Ok(conn.row(
        "SELECT EXISTS (SELECT 1 FROM servers WHERE name_key = ?1 AND (?2 IS NULL OR id <> ?2))",
        params![name.to_lowercase(), except.map(|id| id.to_string())],
        |r| r.get(0),
    )?)
}

/// Whether two networks share an address: one contains the other's base.
fn overlap(a_base: u128, a_prefix: u8, b_base: u128, b_prefix: u8, bits: u8) -> bool {
    let shorter = a_prefix.min(b_prefix);
    let host_bits = u32::from(bits - shorter);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    (a_base & mask) == (b_base & mask)
}

/// Refuses what would clash with another server on this host: its UDP port
/// (the tunnel could not bind) or an overlapping network (routes to two
/// tunnels for one address).
fn check_clashes(conn: &Connection, s: &Server) -> Result<(), StoreError> {
    let others: Vec<(String, String, Option<String>, u16)> = conn
        .prepare_cached("SELECT id, network, network6, port FROM servers WHERE id <> ?1")?
        .query_map(params![s.id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (_, network, network6, port) in others {
        if port == s.port {
            return Err(StoreError::Conflict {
                field: "port",
                message: "another server listens on this port",
            });
        }
        let network: Ipv4Net = parse("servers.network", &network)?;
        if overlap(
            u128::from(network.base()),
            network.prefix(),
            u128::from(s.network.base()),
            s.network.prefix(),
            32,
        ) {
            return Err(StoreError::Conflict {
                field: "network",
                message: "overlaps another server's network",
            });
        }
        if let (Some(theirs), Some(ours)) = (network6, s.network6) {
            let theirs: Ipv6Net = parse("servers.network6", &theirs)?;
            if overlap(theirs.base(), theirs.prefix(), ours.base(), ours.prefix(), 128) {
                return Err(StoreError::Conflict {
                    field: "network6",
                    message: "overlaps another server's network",
                });
            }
        }
    }
    Ok(())
}

pub(super) fn insert(conn: &Connection, new: &NewServer) -> Result<(), StoreError> {
    let s = &new.server;
    if name_taken(conn, s.name.as_str(), None)? {
        return Err(StoreError::Duplicate { field: "name" });
    }
    check_clashes(conn, s)?;
    conn.exec(
        "INSERT INTO servers (id, name, name_key, network, network6, port, dns, routes, state, public_key,
                              private_key_sealed, next_host4, next_host6, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
        params![
            s.id.to_string(),
            s.name.as_str(),
            s.name.as_str().to_lowercase(),
            s.network.to_string(),
            s.network6.map(|n| n.to_string()),
            s.port,
            to_json(&s.dns),
            to_json(&s.routes),
            s.state.as_str(),
            s.public_key.as_str(),
            new.private_key_sealed,
            pool::FIRST_HOST,
            ts_to_sql(s.created_at),
        ],
    )?;
    Ok(())
}

/// Writes a changed server. A network change is refused while any device
/// holds an address on the server: renumbering live peers would silently
/// break every profile handed out, so the operator detaches first.
pub(super) fn update(conn: &Connection, changed: &Server) -> Result<(), StoreError> {
    let old = get(conn, changed.id)?;
    if name_taken(conn, changed.name.as_str(), Some(changed.id))? {
        return Err(StoreError::Duplicate { field: "name" });
    }
    let v4_changed = old.network != changed.network;
    let v6_changed = old.network6 != changed.network6;
    if v4_changed || v6_changed {
        if pool::peer_count(conn, &changed.id.to_string())? > 0 {
            return Err(StoreError::Conflict {
                field: if v4_changed { "network" } else { "network6" },
                message: "devices hold addresses on this server: detach its organizations before changing its network",
            });
        }
        pool::reset(conn, &changed.id.to_string())?;
    }
    check_clashes(conn, changed)?;
    conn.exec(
        "UPDATE servers SET name = ?2, name_key = ?3, network = ?4, network6 = ?5, port = ?6, dns = ?7,
                            routes = ?8, state = ?9
         WHERE id = ?1",
        params![
            changed.id.to_string(),
            changed.name.as_str(),
            changed.name.as_str().to_lowercase(),
            changed.network.to_string(),
            changed.network6.map(|n| n.to_string()),
            changed.port,
            to_json(&changed.dns),
            to_json(&changed.routes),
            changed.state.as_str(),
        ],
    )?;
    Ok(())
}

pub(super) fn delete(conn: &Connection, id: ServerId) -> Result<(), StoreError> {
    let n = conn.exec("DELETE FROM servers WHERE id = ?1", params![id.to_string()])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    // The cascade's trigger put the peers' hosts on the free list.
    conn.exec("DELETE FROM free_hosts WHERE server_id = ?1", params![id.to_string()])?;
    Ok(())
}

pub(super) fn attach(conn: &Connection, key: &HostKey, id: ServerId, org: OrgId) -> Result<(), StoreError> {
    get(conn, id)?;
    super::orgs::get(conn, org)?;
    conn.exec(
        "INSERT OR IGNORE INTO server_orgs (server_id, org_id) VALUES (?1, ?2)",
        params![id.to_string(), org.to_string()],
    )?;
    // Idempotent: devices that already have a peer keep their addresses.
    pool::add_org_peers(conn, key, &id.to_string(), &org.to_string())
}

pub(super) fn detach(conn: &Connection, id: ServerId, org: OrgId) -> Result<(), StoreError> {
    get(conn, id)?;
    let n = conn.exec(
        "DELETE FROM server_orgs WHERE server_id = ?1 AND org_id = ?2",
        params![id.to_string(), org.to_string()],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    pool::remove_org_peers(conn, &id.to_string(), &org.to_string())
}

/// The sealed private key of a server.
pub(super) fn private_sealed(conn: &Connection, id: &str) -> Result<String, StoreError> {
    conn.prepare_cached("SELECT private_key_sealed FROM servers WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn overlapping_networks() {
        let v4 = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
        assert!(overlap(v4([10, 0, 0, 0]), 8, v4([10, 1, 0, 0]), 16, 32));
        assert!(overlap(v4([10, 1, 0, 0]), 16, v4([10, 0, 0, 0]), 8, 32));
        assert!(!overlap(v4([10, 1, 0, 0]), 16, v4([10, 2, 0, 0]), 16, 32));
        assert!(overlap(v4([0, 0, 0, 0]), 0, v4([192, 0, 2, 0]), 24, 32));
        assert!(!overlap(0xfd00 << 112, 64, (0xfd00 << 112) | (1 << 64), 64, 128));
    }
}
