//! The control protocol between the core and one tunnel process.
//!
//! The core starts `rampart-tunnel` with one end of a Unix stream socketpair
//! as its standard input (inherited, so no descriptor number to agree on and
//! no `unsafe` in the core). Every message is a frame: a
//! 4-byte big-endian length, then that many bytes of JSON. The core sends
//! [`Request`]s, each with an id; the tunnel answers each with exactly one
//! [`Reply`] carrying the same id, in order. The first request is always
//! [`Command::Setup`]: the tunnel creates its interface and binds its port,
//! then sandboxes itself, then answers [`Reply::Ready`]. Peers come after.
//!
//! The private key travels here, never on a command line (which any local
//! user can read in `/proc`).
//!
//! Nothing here does I/O; each side frames with [`encode_frame`] and
//! [`frame_len`].

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::values::{Cidr, WgKey};

/// The largest frame either side accepts: a batch of peers or a stats answer
/// for 100k peers fits; anything larger is a bug or an attack on the core.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// How many peers the core puts in one [`Command::UpsertPeers`] frame.
pub const PEER_BATCH: usize = 1024;

/// A request from the core.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Echoed in the reply.
    pub id: u64,
    /// What to do.
    pub command: Command,
}

/// What the core asks of the tunnel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Create the interface and the socket, then sandbox. Only as the first
    /// request.
    Setup(Setup),
    /// Add these peers, or replace the settings of peers with the same key.
    UpsertPeers {
        /// The peers.
        peers: Vec<PeerSpec>,
    },
    /// Remove the peers with these keys; unknown keys are ignored.
    RemovePeers {
        /// Their public keys.
        keys: Vec<WgKey>,
    },
    /// Report counters; see [`Reply::Stats`].
    Stats,
    /// Close the interface and exit.
    Shutdown,
}

/// The interface settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The TUN interface name (at most 15 bytes).
    pub interface: String,
    /// The server's private key, base64 as `wg` prints it.
    pub private_key: WgKey,
    /// The UDP port to listen on (IPv6 socket, dual-stack).
    pub listen_port: u16,
    /// The interface's own addresses with their prefix lengths.
    pub addresses: Vec<IfAddr>,
    /// The interface MTU.
    pub mtu: u16,
    /// Worker threads (each with its own TUN queue and UDP socket);
    /// 0: one per CPU.
    #[serde(default)]
    pub workers: u16,
    /// `SO_RCVBUF`/`SO_SNDBUF` for each UDP socket, in bytes; 0: the kernel
    /// default.
    #[serde(default)]
    pub socket_buffer: u32,
}

impl std::fmt::Debug for Setup {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("interface", &self.interface)
            .field("private_key", &"<redacted>")
            .field("listen_port", &self.listen_port)
            .field("addresses", &self.addresses)
            .field("mtu", &self.mtu)
            .field("workers", &self.workers)
            .field("socket_buffer", &self.socket_buffer)
            .finish()
    }
}

/// An address of the interface itself: host bits set, unlike a [`Cidr`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IfAddr {
    /// The address.
    pub address: IpAddr,
    /// The prefix length of the network it is on.
    pub prefix_len: u8,
}

impl IfAddr {
    /// Whether the prefix length fits the address family.
    pub fn is_valid(&self) -> bool {
        match self.address {
            IpAddr::V4(_) => self.prefix_len <= 32,
            IpAddr::V6(_) => self.prefix_len <= 128,
        }
    }
}

/// One peer (one device). `Debug` omits the preshared key.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// Its public key.
    pub public_key: WgKey,
    /// The pair's preshared key (sealed in the database), if any.
    #[serde(default)]
    pub preshared_key: Option<WgKey>,
    /// The addresses it may send from and that are routed to it.
    pub allowed_ips: Vec<Cidr>,
    /// Seconds between keepalives the server sends; none by default.
    #[serde(default)]
    pub persistent_keepalive: Option<u16>,
    /// Where to reach it before it has sent anything (site-to-site links,
    /// the benchmark's client end). A VPN client's endpoint is learnt from
    /// its first handshake instead.
    #[serde(default)]
    pub endpoint: Option<SocketAddr>,
}

impl std::fmt::Debug for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSpec")
            .field("public_key", &self.public_key)
            .field("preshared_key", &self.preshared_key.as_ref().map(|_| "<redacted>"))
            .field("allowed_ips", &self.allowed_ips)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The tunnel's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// Setup done; the process is sandboxed and serving.
    Ready {
        /// The request id.
        id: u64,
        /// The interface's index.
        ifindex: u32,
        /// How many workers run.
        workers: u16,
        /// What the sandbox enforces, for the core's log.
        sandbox: String,
    },
    /// The request was carried out.
    Done {
        /// The request id.
        id: u64,
    },
    /// Counters.
    Stats {
        /// The request id.
        id: u64,
        /// One entry per peer that has completed a handshake or sent data.
        peers: Vec<PeerStats>,
        /// Interface-wide counters.
        totals: Totals,
    },
    /// The request failed; the tunnel state is unchanged.
    Error {
        /// The request id.
        id: u64,
        /// Why.
        message: String,
    },
}

/// Counters for one peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerStats {
    /// Its public key.
    pub public_key: WgKey,
    /// Where its packets last came from.
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the Unix epoch of the last completed handshake.
    pub last_handshake: Option<u64>,
    /// Bytes of decrypted packets received from it.
    pub rx_bytes: u64,
    /// Bytes of packets sent to it, before encryption.
    pub tx_bytes: u64,
    /// Packets it sent from an address outside its allowed addresses
    /// (dropped).
    pub dropped_source: u64,
}

/// Counters for the whole interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Peers configured.
    pub peers: u64,
    /// Packets whose source was outside the sending peer's allowed addresses.
    pub dropped_source: u64,
    /// Packets from the interface with no peer for their destination.
    pub dropped_no_route: u64,
    /// Datagrams that were not valid WireGuard messages for any peer.
    pub dropped_invalid: u64,
    /// Handshake initiations answered with a cookie because of load.
    pub cookie_replies: u64,
}

/// Frames a message: length prefix, then JSON.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(msg)?;
    let mut out = Vec::with_capacity(4 + body.len());
    // A frame larger than MAX_FRAME is refused by the reader, so the cast
    // never truncates a frame anyone accepts.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length a frame header announces, or `None` if it exceeds
/// [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Option<usize> {
    let len = u32::from_be_bytes(header) as usize;
    (len <= MAX_FRAME).then_some(len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn frames_round_trip_and_keys_stay_out_of_debug() {
        let key = WgKey::from_bytes(&[7; 32]);
        let req = Request {
            id: 9,
            command: Command::Setup(Setup {
                interface: "rp0".into(),
                private_key: key.clone(),
                listen_port: 51820,
                addresses: vec![IfAddr {
                    address: "198.18.0.1".parse().expect("ip"),
                    prefix_len: 24,
                }],
                mtu: 1420,
                workers: 0,
                socket_buffer: 0,
            }),
        };
        let frame = encode_frame(&req).expect("encode");
        let len = frame_len(frame[..4].try_into().expect("4 bytes")).expect("len");
        let back: Request = serde_json::from_slice(&frame[4..4 + len]).expect("decode");
        assert_eq!(back, req);
        assert!(!format!("{req:?}").contains(key.as_str()));
        assert_eq!(frame_len((MAX_FRAME as u32 + 1).to_be_bytes()), None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"id":1,"command":{"op":"stats"},"extra":1}"#;
        assert!(serde_json::from_str::<Request>(bad).is_err());
    }
}
