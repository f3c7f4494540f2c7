//! Static addresses: each device gets one IPv4 (and one IPv6 when the
//! server has an IPv6 network) on every server its organization is attached
//! to.
//!
//! Allocation is O(log n), never a scan of the pool: a released host number
//! (in `free_hosts`, filled by a trigger) is reused first, lowest first;
//! otherwise the server's `next_host4`/`next_host6` counter hands out the
//! next never-used one. Host 0 (the network address) and host 1 (the
//! gateway: the server's own tunnel address) are never handed out, nor the
//! IPv4 broadcast address. `UNIQUE (server_id, address)` makes a double
//! allocation a failed transaction rather than two devices on one address.

use std::net::{Ipv4Addr, Ipv6Addr};

use rusqlite::{Connection, OptionalExtension, params};
use schemas::values::{Ipv4Net, Ipv6Net};

use super::StoreError;
use super::conn::Cached;
use crate::keys::{preshared_key, psk_context};
use crate::sealed::HostKey;

/// The first host number handed to a device: 0 is the network, 1 the gateway.
pub(super) const FIRST_HOST: i64 = 2;

/// The refusal when a pool has no address left.
const EXHAUSTED: &str = "the server's address pool is exhausted: use a larger network or remove devices";

/// One address family's pool of a server.
#[derive(Debug, Clone, Copy)]
enum Pool {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl Pool {
    fn family(self) -> i64 {
        match self {
            Pool::V4(_) => 4,
            Pool::V6(_) => 6,
        }
    }

    fn counter(self) -> &'static str {
        match self {
            Pool::V4(_) => "next_host4",
            Pool::V6(_) => "next_host6",
        }
    }

    /// The highest host number a device may get.
    fn last(self) -> i64 {
        match self {
            // The broadcast address is size - 1.
            Pool::V4(net) => i64::from(net.size()) - 2,
            // IPv6 has no broadcast; pools beyond i64 are capped, which no
            // deployment will ever reach.
            Pool::V6(net) => i64::try_from(net.size() - 1).unwrap_or(i64::MAX),
        }
    }

    /// The address text of host number `host` (in range by construction).
    fn address(self, host: i64) -> String {
        match self {
            Pool::V4(net) => {
                let offset = u32::try_from(host).unwrap_or(0);
                Ipv4Addr::from(net.base().wrapping_add(offset)).to_string()
            }
            Pool::V6(net) => {
                let offset = u128::try_from(host).unwrap_or(0);
                Ipv6Addr::from(net.base().wrapping_add(offset)).to_string()
            }
        }
    }
}

/// Takes one host number from `pool` of `server_id`.
fn allocate(conn: &Connection, server_id: &str, pool: Pool) -> Result<(i64, String), StoreError> {
    let family = pool.family();
    let freed: Option<i64> = conn
        .prepare_cached("SELECT host FROM free_hosts WHERE server_id = ?1 AND family = ?2 ORDER BY host LIMIT 1")?
        .query_row(params![server_id, family], |r| r.get(0))
        .optional()?;
    let host = match freed {
        Some(host) => {
            conn.prepare_cached("DELETE FROM free_hosts WHERE server_id = ?1 AND family = ?2 AND host = ?3")?
                .execute(params![server_id, family, host])?;
            host
        }
        None => {
            let sql = format!("SELECT {} FROM servers WHERE id = ?1", pool.counter());
            let next: i64 = conn
                .prepare_cached(&sql)?
                .query_row(params![server_id], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            if next > pool.last() {
                return Err(StoreError::Conflict {
                    field: "network",
                    message: EXHAUSTED,
                });
            }
            let sql = format!("UPDATE servers SET {0} = {0} + 1 WHERE id = ?1", pool.counter());
            conn.prepare_cached(&sql)?.execute(params![server_id])?;
            next
        }
    };
    Ok((host, pool.address(host)))
}

/// A server's networks, as allocation needs them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Networks {
    pub(super) v4: Ipv4Net,
    pub(super) v6: Option<Ipv6Net>,
}

/// Reads a server's networks.
pub(super) fn networks(conn: &Connection, server_id: &str) -> Result<Networks, StoreError> {
    let (v4, v6): (String, Option<String>) = conn
        .prepare_cached("SELECT network, network6 FROM servers WHERE id = ?1")?
        .query_row(params![server_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
        column,
        value: value.to_owned(),
    };
    Ok(Networks {
        v4: v4.parse().map_err(|_| corrupt("servers.network", &v4))?,
        v6: v6
            .as_deref()
            .map(|t| t.parse().map_err(|_| corrupt("servers.network6", t)))
            .transpose()?,
    })
}

/// Gives `device_id` its addresses and preshared key on `server_id`.
pub(super) fn add_peer(
    conn: &Connection,
    key: &HostKey,
    server_id: &str,
    nets: Networks,
    device_id: &str,
) -> Result<(), StoreError> {
    let (host4, address) = allocate(conn, server_id, Pool::V4(nets.v4))?;
    let (host6, address6) = match nets.v6 {
        Some(v6) => {
            let (h, a) = allocate(conn, server_id, Pool::V6(v6))?;
            (Some(h), Some(a))
        }
        None => (None, None),
    };
    let psk = preshared_key();
    let sealed = key.seal(psk.as_slice(), &psk_context(server_id, device_id));
    conn.prepare_cached(
        "INSERT INTO peers (server_id, device_id, host4, address, host6, address6, psk_sealed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![server_id, device_id, host4, address, host6, address6, sealed])?;
    Ok(())
}

/// Gives every device of `org_id` without one a peer on `server_id`.
pub(super) fn add_org_peers(conn: &Connection, key: &HostKey, server_id: &str, org_id: &str) -> Result<(), StoreError> {
    let nets = networks(conn, server_id)?;
    let devices: Vec<String> = conn
        .prepare_cached(
            "SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id
             WHERE u.org_id = ?1
               AND NOT EXISTS (SELECT 1 FROM peers p WHERE p.server_id = ?2 AND p.device_id = d.id)
             ORDER BY d.id",
        )?
        .query_map(params![org_id, server_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for device in devices {
        add_peer(conn, key, server_id, nets, &device)?;
    }
    Ok(())
}

/// Gives a new device a peer on every server its organization is attached to.
pub(super) fn add_device_peers(
    conn: &Connection,
    key: &HostKey,
    device_id: &str,
    org_id: &str,
) -> Result<(), StoreError> {
    let servers: Vec<String> = conn
        .prepare_cached("SELECT server_id FROM server_orgs WHERE org_id = ?1 ORDER BY server_id")?
        .query_map(params![org_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for server in servers {
        let nets = networks(conn, &server)?;
        add_peer(conn, key, &server, nets, device_id)?;
    }
    Ok(())
}

/// Removes the peers of `org_id`'s devices on `server_id`; the trigger
/// puts their host numbers on the free list.
pub(super) fn remove_org_peers(conn: &Connection, server_id: &str, org_id: &str) -> Result<(), StoreError> {
    conn.exec(
        "DELETE FROM peers WHERE server_id = ?1
           AND device_id IN (SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id WHERE u.org_id = ?2)",
        params![server_id, org_id],
    )?;
    Ok(())
}

/// How many peers a server has.
pub(super) fn peer_count(conn: &Connection, server_id: &str) -> Result<i64, StoreError> {
    Ok(conn.row(
        "SELECT count(*) FROM peers WHERE server_id = ?1",
        params![server_id],
        |r| r.get(0),
    )?)
}

/// Starts a server's pools afresh (after a network change, which is only
/// allowed while it has no peers).
pub(super) fn reset(conn: &Connection, server_id: &str) -> Result<(), StoreError> {
    conn.exec("DELETE FROM free_hosts WHERE server_id = ?1", params![server_id])?;
    conn.exec(
        "UPDATE servers SET next_host4 = ?2, next_host6 = ?2 WHERE id = ?1",
        params![server_id, FIRST_HOST],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
