//! What the tunnel supervisor reads: a server's interface settings, its
//! peers (all of them, or those of a few keys), and which (server, device
//! key) pairs a change touched.
//!
//! A peer is a `peers` row (the device's organization is attached to the
//! server) whose user is not disabled. "Touched" pairs are read inside the
//! change's own transaction — before a deletion, after an insertion — so
//! the supervisor learns exactly which peers to look at again, without
//! rescanning a server's whole peer list for one change.

use std::net::{Ipv4Addr, Ipv6Addr};

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::ServerState;
use schemas::values::{DeviceId, Ipv4Net, Ipv6Net, OrgId, ServerId, UserId, WgKey};

use super::users::parse;
use super::{Store, StoreError, servers};
use crate::keys::{psk_context, server_context};
use crate::sealed::HostKey;

/// (server, device public key) pairs whose peer a change may have added,
/// removed or altered.
pub type Touched = Vec<(ServerId, WgKey)>;

/// What the tunnel of a server is set up with.
#[derive(Clone)]
pub struct TunnelServer {
    /// The server.
    pub id: ServerId,
    /// Its private key, unsealed.
    pub private_key: WgKey,
    /// Its UDP port.
    pub port: u16,
    /// Its IPv4 network; the server's own address is the first host.
    pub network: Ipv4Net,
    /// Its IPv6 network, if any.
    pub network6: Option<Ipv6Net>,
    /// The wanted state.
    pub state: ServerState,
}

impl std::fmt::Debug for TunnelServer {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelServer")
            .field("id", &self.id)
            .field("port", &self.port)
            .field("network", &self.network)
            .field("network6", &self.network6)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// One peer of a tunnel, as the database says it should be.
#[derive(Clone)]
pub struct TunnelPeer {
    /// The device.
    pub device_id: DeviceId,
    /// Its user.
    pub user_id: UserId,
    /// Its public key.
    pub public_key: WgKey,
    /// Its IPv4 address on the server.
    pub address: Ipv4Addr,
    /// Its IPv6 address, when the server has an IPv6 network.
    pub address6: Option<Ipv6Addr>,
    /// The pair's preshared key, unsealed.
    pub preshared_key: WgKey,
}

impl std::fmt::Debug for TunnelPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelPeer")
            .field("device_id", &self.device_id)
            .field("public_key", &self.public_key)
            .field("address", &self.address)
            .field("address6", &self.address6)
            .finish_non_exhaustive()
    }
}

fn open_key(key: &HostKey, sealed: &str, context: &str) -> Result<WgKey, StoreError> {
    let bytes = key.open(sealed, context)?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| StoreError::Corrupt {
        column: "sealed key length",
        value: bytes.len().to_string(),
    })?;
    Ok(WgKey::from_bytes(&arr))
}

const PEER_SELECT: &str = "SELECT p.device_id, d.user_id, d.public_key, p.address, p.address6, p.psk_sealed
     FROM peers p JOIN devices d ON d.id = p.device_id JOIN users u ON u.id = d.user_id
     WHERE p.server_id = ?1 AND u.disabled = 0";

type PeerRow = (String, String, String, String, Option<String>, String);

fn read_peer(r: &rusqlite::Row<'_>) -> rusqlite::Result<PeerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn peer_from(key: &HostKey, server: &str, row: PeerRow) -> Result<TunnelPeer, StoreError> {
    let (device, user, public_key, address, address6, psk_sealed) = row;
    Ok(TunnelPeer {
        preshared_key: open_key(key, &psk_sealed, &psk_context(server, &device))?,
        device_id: parse("peers.device_id", &device)?,
        user_id: parse("devices.user_id", &user)?,
        public_key: parse("devices.public_key", &public_key)?,
        address: parse("peers.address", &address)?,
        address6: address6.as_deref().map(|a| parse("peers.address6", a)).transpose()?,
    })
}

fn touched(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Touched, StoreError> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(sql)?
        .query_map(args, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(s, k)| Ok((parse("peers.server_id", &s)?, parse("devices.public_key", &k)?)))
        .collect()
}

/// The pairs of one device.
pub(super) fn touched_device(conn: &Connection, device: DeviceId) -> Result<Touched, StoreError> {
    touched(
        conn,
        "SELECT p.server_id, d.public_key FROM peers p JOIN devices d ON d.id = p.device_id WHERE d.id = ?1",
        params![device.to_string()],
    )
}

/// The pairs of every device of a user.
pub(super) fn touched_user(conn: &Connection, user: UserId) -> Result<Touched, StoreError> {
    touched(
        conn,
        "SELECT p.server_id, d.public_key FROM peers p JOIN devices d ON d.id = p.device_id WHERE d.user_id = ?1",
        params![user.to_string()],
    )
}

/// The pairs of every device of an organization, on one server or all.
pub(super) fn touched_org(conn: &Connection, org: OrgId, server: Option<ServerId>) -> Result<Touched, StoreError> {
    touched(
        conn,
        "SELECT p.server_id, d.public_key FROM peers p JOIN devices d ON d.id = p.device_id
         JOIN users u ON u.id = d.user_id
         WHERE u.org_id = ?1 AND (?2 IS NULL OR p.server_id = ?2)",
        params![org.to_string(), server.map(|s| s.to_string())],
    )
}

impl Store {
    /// A server's tunnel settings, its private key unsealed.
    pub async fn tunnel_server(&self, id: ServerId, key: HostKey) -> Result<TunnelServer, StoreError> {
        self.db
            .read(move |c| {
                let server = servers::get(c, id)?;
                let sid = id.to_string();
                let sealed = servers::private_sealed(c, &sid)?;
                Ok(TunnelServer {
                    id,
                    private_key: open_key(&key, &sealed, &server_context(&sid))?,
                    port: server.port,
                    network: server.network,
                    network6: server.network6,
                    state: server.state,
                })
            })
            .await
    }

    /// Every peer of a server's tunnel.
    pub async fn tunnel_peers(&self, id: ServerId, key: HostKey) -> Result<Vec<TunnelPeer>, StoreError> {
        self.db
            .read(move |c| {
                let sid = id.to_string();
                let rows: Vec<PeerRow> = c
                    .prepare_cached(PEER_SELECT)?
                    .query_map(params![sid], read_peer)?
                    .collect::<Result<_, _>>()?;
                rows.into_iter().map(|row| peer_from(&key, &sid, row)).collect()
            })
            .await
    }

    /// The peers among `keys` that a server's tunnel should have now; a key
    /// not in the answer should not be a peer.
    pub async fn tunnel_peers_by_key(
        &self,
        id: ServerId,
        keys: Vec<WgKey>,
        key: HostKey,
    ) -> Result<Vec<TunnelPeer>, StoreError> {
        self.db
            .read(move |c| {
                let sid = id.to_string();
                let mut stmt = c.prepare_cached(&format!("{PEER_SELECT} AND d.public_key = ?2"))?;
                let mut out = Vec::with_capacity(keys.len());
                for k in &keys {
                    if let Some(row) = stmt.query_row(params![sid, k.as_str()], read_peer).optional()? {
                        out.push(peer_from(&key, &sid, row)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// The servers whose wanted state is running.
    pub async fn running_servers(&self) -> Result<Vec<ServerId>, StoreError> {
        self.db
            .read(|c| {
                let ids: Vec<String> = c
                    .prepare_cached("SELECT id FROM servers WHERE state = 'running' ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                ids.iter().map(|id| parse("servers.id", id)).collect()
            })
            .await
    }
}
