//! VPN servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::{Page, field_error};
use crate::values::{Cidr, DeviceId, Ipv4Net, Ipv6Net, Name, OrgId, ServerId, UserId, WgKey};

/// The longest IPv4 prefix a server's network may have: a /30 holds the
/// network and broadcast addresses, the gateway and one device.
pub const MAX_PREFIX_V4: u8 = 30;
/// The longest IPv6 prefix: a /126 holds the network address (never handed
/// out, for symmetry with IPv4), the gateway and two devices.
pub const MAX_PREFIX_V6: u8 = 126;
/// The shortest IPv4 prefix: a /8 already holds 16 million devices; anything
/// wider is a mistake (a `0.0.0.0/0` pool would claim every address).
pub const MIN_PREFIX_V4: u8 = 8;
/// The shortest IPv6 prefix.
pub const MIN_PREFIX_V6: u8 = 32;

fn network_has_room(net: &Ipv4Net) -> Result<(), ValidationError> {
    if !(MIN_PREFIX_V4..=MAX_PREFIX_V4).contains(&net.prefix()) {
        return Err(ValidationError::new("prefix").with_message("must be a /8 to /30 network".into()));
    }
    Ok(())
}

fn network6_has_room(net: &Ipv6Net) -> Result<(), ValidationError> {
    if !(MIN_PREFIX_V6..=MAX_PREFIX_V6).contains(&net.prefix()) {
        return Err(ValidationError::new("prefix").with_message("must be a /32 to /126 network".into()));
    }
    Ok(())
}

/// `POST /api/v1/servers`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCreate {
    /// The server's name, unique.
    pub name: Name,
    /// The IPv4 network devices get addresses from; its first host is the
    /// server's own tunnel address.
    #[validate(custom(function = "network_has_room"))]
    pub network: Ipv4Net,
    /// An IPv6 network, when devices should also get IPv6 addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "network6_has_room"))]
    pub network6: Option<Ipv6Net>,
    /// The UDP port it listens on.
    #[validate(range(min = 1, message = "must be 1 to 65535"))]
    pub port: u16,
    /// DNS servers pushed to devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 8, message = "at most 8 servers"))]
    pub dns: Option<Vec<IpAddr>>,
    /// Networks devices route through the tunnel; default: the server's own
    /// networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 64, message = "at most 64 routes"))]
    pub routes: Option<Vec<Cidr>>,
}

/// `PATCH /api/v1/servers/{id}`: the fields to change. Changing a network
/// is refused (409) while devices hold addresses on the server.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "server_patch_not_empty"))]
pub struct ServerPatch {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// A new IPv4 network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "network_has_room"))]
    pub network: Option<Ipv4Net>,
    /// A new IPv6 network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "network6_has_room"))]
    pub network6: Option<Ipv6Net>,
    /// A new port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, message = "must be 1 to 65535"))]
    pub port: Option<u16>,
    /// New DNS servers (replacing the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 8, message = "at most 8 servers"))]
    pub dns: Option<Vec<IpAddr>>,
    /// New routes (replacing the list; empty means the server's networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 64, message = "at most 64 routes"))]
    pub routes: Option<Vec<Cidr>>,
}

fn server_patch_not_empty(p: &ServerPatch) -> Result<(), ValidationError> {
    if p.name.is_none()
        && p.network.is_none()
        && p.network6.is_none()
        && p.port.is_none()
        && p.dns.is_none()
        && p.routes.is_none()
    {
        return Err(field_error(
            "body",
            "empty_patch",
            "nothing to change: give at least one field",
        ));
    }
    Ok(())
}

/// Whether a server's tunnel is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Not serving.
    Stopped,
    /// Serving.
    Running,
}

impl ServerState {
    /// The state's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Stopped => "stopped",
            ServerState::Running => "running",
        }
    }
}

/// A VPN server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The id.
    pub id: ServerId,
    /// The name.
    pub name: Name,
    /// The IPv4 network.
    pub network: Ipv4Net,
    /// The IPv6 network, if any.
    #[serde(default)]
    pub network6: Option<Ipv6Net>,
    /// The UDP port.
    pub port: u16,
    /// DNS servers pushed to devices.
    pub dns: Vec<IpAddr>,
    /// Routes pushed to devices (empty: the server's networks).
    pub routes: Vec<Cidr>,
    /// Whether it is serving.
    pub state: ServerState,
    /// The organizations attached to it.
    pub orgs: Vec<OrgId>,
    /// Its WireGuard public key.
    pub public_key: WgKey,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A page of servers.
pub type ServerPage = Page<Server>;

/// `GET /api/v1/servers/{id}/sessions`: the live peers of a running server,
/// as its tunnel last reported them (polled every few seconds).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSessions {
    /// One entry per device that has completed a handshake or sent data
    /// since the tunnel started, ordered by device id.
    pub items: Vec<Session>,
    /// When the tunnel answered the poll these come from; absent while the
    /// server is stopped or its tunnel has not answered yet.
    #[serde(default)]
    pub polled_at: Option<Timestamp>,
}

/// One device's session on a server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The device.
    pub device_id: DeviceId,
    /// Its user.
    pub user_id: UserId,
    /// Its IPv4 address on the server.
    pub address: Ipv4Addr,
    /// Its IPv6 address, when the server has an IPv6 network.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// Where its packets last came from.
    #[serde(default)]
    pub endpoint: Option<SocketAddr>,
    /// The last completed handshake.
    #[serde(default)]
    pub last_handshake: Option<Timestamp>,
    /// Bytes received from it (decrypted).
    pub rx_bytes: u64,
    /// Bytes sent to it (before encryption).
    pub tx_bytes: u64,
    /// Packets it sent from an address that is not its own (dropped).
    pub dropped_source: u64,
}
