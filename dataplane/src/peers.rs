//! The peer table: who the peers are, which addresses route to whom, and the
//! index that maps a WireGuard receiver index back to a peer.
//!
//! boringtun's `Tunn` puts the index we give it in the upper 24 bits of every
//! session index it hands out, so a data packet's receiver index shifted right
//! by 8 is the peer's slot here: one array lookup per packet, whatever the
//! number of peers.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use boringtun::noise::Tunn;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey, StaticSecret};
use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;
use schemas::tunnel::PeerSpec;
use schemas::values::Cidr;

/// Slots are 24-bit (see the module docs).
const MAX_SLOTS: usize = 1 << 24;

/// Why a peer could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// Every slot is taken.
    #[error("the tunnel holds {MAX_SLOTS} peers, its maximum")]
    Full,
    /// An allowed address is not a valid network.
    #[error("allowed address {0} is not a network")]
    BadNetwork(String),
}

/// One peer and its protocol state.
pub struct Peer {
    /// Its slot in the table, also its boringtun index.
    pub(crate) slot: u32,
    /// Its public key.
    pub(crate) key: [u8; 32],
    /// What it was configured with (to tell whether an upsert changes
    /// anything the protocol state depends on).
    pub(crate) spec: PeerSpec,
    /// The protocol state machine, made on first use: an idle peer costs a
    /// few hundred bytes instead of boringtun's ~10 KiB of session slots
    /// (and its key agreement at load), which is what lets one process hold
    /// 100k peers. Once made it stays, and with it the handshake replay floor.
    pub(crate) tunn: Mutex<Option<Box<Tunn>>>,
    /// Where its authenticated packets last came from; `None` until the
    /// first handshake (the server never knows a client's address in advance).
    pub(crate) endpoint: Mutex<Option<SocketAddr>>,
    /// Packets it sent from outside its allowed addresses.
    pub(crate) dropped_source: AtomicU64,
}

impl std::fmt::Debug for Peer {
    // Keys and session state stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("slot", &self.slot).finish_non_exhaustive()
    }
}

impl Peer {
    /// The last endpoint, if any.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records where an authenticated packet came from (roaming).
    pub(crate) fn seen_at(&self, from: SocketAddr) {
        let mut endpoint = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if *endpoint != Some(from) {
            *endpoint = Some(from);
        }
    }

    /// A fresh protocol state for this peer (boxed: inline, even `None`
    /// would take the full ~11 KiB in every peer).
    pub(crate) fn new_tunn(&self, private: &StaticSecret, limiter: &Arc<RateLimiter>) -> Box<Tunn> {
        Box::new(Tunn::new(
            private.clone(),
            PublicKey::from(self.key),
            self.spec.preshared_key.as_ref().map(|k| k.to_bytes()),
            self.spec.persistent_keepalive,
            self.slot,
            Some(limiter.clone()),
        ))
    }

    pub(crate) fn count_dropped_source(&self) {
        self.dropped_source.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every peer of one interface.
pub struct PeerTable {
    slots: Vec<Option<Arc<Peer>>>,
    free: Vec<u32>,
    by_key: HashMap<[u8; 32], u32>,
    routes: IpNetworkTable<u32>,
}

impl std::fmt::Debug for PeerTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTable")
            .field("peers", &self.by_key.len())
            .finish_non_exhaustive()
    }
}

impl Default for PeerTable {
    fn default() -> Self {
        PeerTable {
            // Slot 0 is never used, so a zeroed receiver index finds nobody.
            slots: vec![None],
            free: Vec::new(),
            by_key: HashMap::new(),
            routes: IpNetworkTable::new(),
        }
    }
}

impl PeerTable {
    /// How many peers there are.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The peer a receiver index names.
    pub fn by_index(&self, receiver_idx: u32) -> Option<&Arc<Peer>> {
        self.slots.get((receiver_idx >> 8) as usize)?.as_ref()
    }

    /// The peer in this slot.
    pub fn by_slot(&self, slot: u32) -> Option<&Arc<Peer>> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The peer with this public key.
    pub fn by_key(&self, key: &[u8; 32]) -> Option<&Arc<Peer>> {
        self.slots.get(*self.by_key.get(key)? as usize)?.as_ref()
    }

    /// The peer an address routes to (longest prefix wins).
    pub fn route(&self, addr: IpAddr) -> Option<&Arc<Peer>> {
        let (_, slot) = self.routes.longest_match(addr)?;
        self.slots.get(*slot as usize)?.as_ref()
    }

    /// Every peer.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.slots.iter().flatten()
    }

    /// Adds a peer or updates one with the same key. The protocol state (its
    /// sessions) survives unless the preshared key or keepalive changed.
    pub fn upsert(&mut self, spec: PeerSpec) -> Result<(), PeerError> {
        let networks = spec.allowed_ips.iter().map(network).collect::<Result<Vec<_>, _>>()?;
        let key = spec.public_key.to_bytes();
        let slot = match self.by_key.get(&key) {
            Some(&slot) => {
                let Some(old) = self.slots.get(slot as usize).and_then(Option::clone) else {
                    return Err(PeerError::Full);
                };
                self.unroute(&old);
                // Same session keys: keep the live state (moved out of the
                // old entry, which a worker may still hold mid-packet; it
                // finds no state and drops that packet). New keys: start over.
                let same_keys = old.spec.preshared_key == spec.preshared_key
                    && old.spec.persistent_keepalive == spec.persistent_keepalive;
                let state = if same_keys {
                    old.tunn.lock().unwrap_or_else(|e| e.into_inner()).take()
                } else {
                    None
                };
                let updated = Peer {
                    slot,
                    key,
                    endpoint: Mutex::new(spec.endpoint.or(old.endpoint())),
                    spec,
                    tunn: Mutex::new(state),
                    dropped_source: AtomicU64::new(old.dropped_source.load(Ordering::Relaxed)),
                };
                self.slots[slot as usize] = Some(Arc::new(updated));
                slot
            }
            None => {
                let slot = self.allocate()?;
                self.slots[slot as usize] = Some(Arc::new(new_peer(slot, key, spec)));
                self.by_key.insert(key, slot);
                slot
            }
        };
        for net in networks {
            // As in WireGuard: the last peer to claim a network gets it.
            self.routes.insert(net, slot);
        }
        Ok(())
    }

    /// Removes a peer; `false` if there was none with this key.
    pub fn remove(&mut self, key: &[u8; 32]) -> bool {
        let Some(slot) = self.by_key.remove(key) else {
            return false;
        };
        if let Some(peer) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.unroute(&peer);
        }
        self.free.push(slot);
        true
    }

    fn allocate(&mut self) -> Result<u32, PeerError> {
        if let Some(slot) = self.free.pop() {
            return Ok(slot);
        }
        if self.slots.len() >= MAX_SLOTS {
            return Err(PeerError::Full);
        }
        self.slots.push(None);
        u32::try_from(self.slots.len() - 1).map_err(|_| PeerError::Full)
    }

    /// Drops the routes that still point at this peer (another peer may have
    /// claimed one since).
    fn unroute(&mut self, peer: &Peer) {
        for cidr in &peer.spec.allowed_ips {
            if let Ok(net) = network(cidr)
                && self.routes.exact_match(net) == Some(&peer.slot)
            {
                self.routes.remove(net);
            }
        }
    }
}

fn new_peer(slot: u32, key: [u8; 32], spec: PeerSpec) -> Peer {
    Peer {
        slot,
        key,
        endpoint: Mutex::new(spec.endpoint),
        spec,
        tunn: Mutex::new(None),
        dropped_source: AtomicU64::new(0),
    }
}

fn network(cidr: &Cidr) -> Result<IpNetwork, PeerError> {
    let (addr, len) = match cidr {
        Cidr::V4(n) => (IpAddr::V4(n.addr()), n.prefix()),
        Cidr::V6(n) => (IpAddr::V6(n.addr()), n.prefix()),
    };
    IpNetwork::new(addr, len).map_err(|_| PeerError::BadNetwork(cidr.to_string()))
}
