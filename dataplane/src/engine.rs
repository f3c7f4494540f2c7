//! The sans-IO core: datagrams and TUN packets in, datagrams and TUN packets
//! out. No sockets, no threads, no syscalls; the I/O shell ([`crate::shell`])
//! owns those and calls in here, and the tests drive two engines into each
//! other in memory.
//!
//! The protocol itself (Noise IKpsk2, cookies, timers, rekeying, the replay
//! window) is boringtun's `noise` module; this file adds what a server with
//! many peers needs around it: finding the peer a datagram belongs to,
//! roaming endpoints, the allowed-address check on decrypted packets,
//! one shared handshake rate limiter (cookie replies under load) and counters.
//!
//! One departure from a pure sans-IO design: boringtun reads the monotonic
//! clock itself for its timers, so `now` is not a parameter of the packet
//! functions; only [`Engine::stats`] takes the wall clock, to turn "seconds
//! since the last handshake" into a timestamp.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use schemas::tunnel::{PeerSpec, PeerStats, Totals};
use schemas::values::WgKey;

use crate::peers::{Peer, PeerError, PeerTable};

/// Handshake initiations per second (both MAC checks count, see
/// [`View::from_network`]) before the server answers with cookies instead.
pub const DEFAULT_HANDSHAKE_LIMIT: u64 = 2000;

/// The smallest scratch buffer the packet functions accept: the largest
/// packet plus WireGuard's 32 bytes of overhead, and never less than a
/// handshake initiation.
pub const MIN_SCRATCH: usize = 65536 + 32;

/// The message type of a handshake response: when the engine emits one, the
/// initiation it answers was authenticated.
const HANDSHAKE_RESPONSE: u8 = 2;

/// Where the engine puts what it produces.
pub trait Sink {
    /// Send this datagram to this address.
    fn to_network(&mut self, to: SocketAddr, datagram: &[u8]);
    /// Write this IP packet to the interface.
    fn to_tun(&mut self, packet: &[u8]);
}

/// One interface's peers and protocol state.
pub struct Engine {
    private: StaticSecret,
    public: PublicKey,
    limiter: Arc<RateLimiter>,
    table: RwLock<PeerTable>,
    counters: Counters,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("public", &self.public.as_bytes())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Counters {
    dropped_source: AtomicU64,
    dropped_no_route: AtomicU64,
    dropped_invalid: AtomicU64,
    cookie_replies: AtomicU64,
}

impl Engine {
    /// An engine with this private key and no peers.
    pub fn new(private_key: [u8; 32], handshake_limit: u64) -> Engine {
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        let limiter = Arc::new(RateLimiter::new(&public, handshake_limit));
        Engine {
            private,
            public,
            limiter,
            table: RwLock::new(PeerTable::default()),
            counters: Counters::default(),
        }
    }

    /// The interface's public key.
    pub fn public_key(&self) -> [u8; 32] {
        *self.public.as_bytes()
    }

    /// Adds or updates peers. Refused as a whole if they would not fit.
    pub fn upsert(&self, specs: Vec<PeerSpec>) -> Result<(), PeerError> {
        let mut table = self.write();
        for spec in specs {
            table.upsert(spec)?;
        }
        Ok(())
    }

    /// Removes peers by key; returns how many existed.
    pub fn remove(&self, keys: &[WgKey]) -> usize {
        let mut table = self.write();
        keys.iter().filter(|k| table.remove(&k.to_bytes())).count()
    }

    /// A read view for a batch of packets: workers take it once per batch,
    /// so peer changes wait at most one batch.
    pub fn view(&self) -> View<'_> {
        View {
            engine: self,
            table: self.table.read().unwrap_or_else(|e| e.into_inner()),
            last_route: Cell::new(None),
        }
    }

    /// Forgets handshake counts; the shell calls it once a second.
    pub fn reset_rate_limit(&self) {
        self.limiter.reset_count();
    }

    /// Counters for every peer that has an endpoint, and for the interface.
    pub fn stats(&self, now: SystemTime) -> (Vec<PeerStats>, Totals) {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut peers = Vec::new();
        for peer in table.iter() {
            let Some(endpoint) = peer.endpoint() else { continue };
            let guard = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            let (since, tx, rx) = match guard.as_ref() {
                Some(tunn) => {
                    let (since, tx, rx, _, _) = tunn.stats();
                    (since, tx, rx)
                }
                None => (None, 0, 0),
            };
            peers.push(PeerStats {
                public_key: WgKey::from_bytes(&peer.key),
                endpoint: Some(canonical(endpoint)),
                last_handshake: since.map(|d| now_secs.saturating_sub(d.as_secs())),
                rx_bytes: rx as u64,
                tx_bytes: tx as u64,
                dropped_source: peer.dropped_source.load(Ordering::Relaxed),
            });
        }
        let c = &self.counters;
        let totals = Totals {
            peers: table.len() as u64,
            dropped_source: c.dropped_source.load(Ordering::Relaxed),
            dropped_no_route: c.dropped_no_route.load(Ordering::Relaxed),
            dropped_invalid: c.dropped_invalid.load(Ordering::Relaxed),
            cookie_replies: c.cookie_replies.load(Ordering::Relaxed),
        };
        (peers, totals)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, PeerTable> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The engine as one batch of packets sees it.
#[derive(Debug)]
pub struct View<'e> {
    engine: &'e Engine,
    table: RwLockReadGuard<'e, PeerTable>,
    /// The last address routed and the slot it routed to: the segments of
    /// one super-packet share their addresses, so most lookups repeat. Valid
    /// as long as the view, which holds the table still.
    last_route: Cell<Option<(IpAddr, Option<u32>)>>,
}

impl View<'_> {
    /// The peer an address routes to, remembering the last answer.
    fn route(&self, addr: IpAddr) -> Option<&Arc<Peer>> {
        if let Some((last, slot)) = self.last_route.get()
            && last == addr
        {
            return slot.and_then(|s| self.table.by_slot(s));
        }
        let peer = self.table.route(addr);
        self.last_route.set(Some((addr, peer.map(|p| p.slot))));
        peer
    }

    /// Handles one datagram from the network. `scratch` must hold at least
    /// [`MIN_SCRATCH`] bytes.
    pub fn from_network(&self, from: SocketAddr, datagram: &[u8], scratch: &mut [u8], sink: &mut impl Sink) {
        let counters = &self.engine.counters;
        let peer = match Tunn::parse_incoming_packet(datagram) {
            Err(_) => return drop_invalid(counters),
            Ok(Packet::HandshakeInit(init)) => {
                // Which peer is this? Only decrypting the initiator's static
                // key tells, and that costs a DH: check MAC1 and the load
                // (cookie) first so floods are cheap to refuse.
                match self
                    .engine
                    .limiter
                    .verify_packet(Some(from.ip().to_canonical()), datagram, scratch)
                {
                    Ok(_) => {}
                    Err(TunnResult::WriteToNetwork(cookie)) => {
                        counters.cookie_replies.fetch_add(1, Ordering::Relaxed);
                        sink.to_network(from, cookie);
                        return;
                    }
                    Err(_) => return drop_invalid(counters),
                }
                let Ok(half) = parse_handshake_anon(&self.engine.private, &self.engine.public, &init) else {
                    return drop_invalid(counters);
                };
                match self.table.by_key(&half.peer_static_public) {
                    Some(peer) => peer,
                    None => return drop_invalid(counters),
                }
            }
            Ok(Packet::HandshakeResponse(p)) => match self.table.by_index(p.receiver_idx) {
                Some(peer) => peer,
                None => return drop_invalid(counters),
            },
            Ok(Packet::PacketCookieReply(p)) => match self.table.by_index(p.receiver_idx) {
                Some(peer) => peer,
                None => return drop_invalid(counters),
            },
            Ok(Packet::PacketData(p)) => match self.table.by_index(p.receiver_idx) {
                Some(peer) => peer,
                None => return drop_invalid(counters),
            },
        };
        self.decapsulate(peer, from, datagram, scratch, sink);
    }

    fn decapsulate(&self, peer: &Peer, from: SocketAddr, datagram: &[u8], scratch: &mut [u8], sink: &mut impl Sink) {
        let counters = &self.engine.counters;
        let mut guard = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
        let tunn = guard.get_or_insert_with(|| peer.new_tunn(&self.engine.private, &self.engine.limiter));
        let mut result = tunn.decapsulate(Some(from.ip().to_canonical()), datagram, scratch);
        loop {
            match result {
                TunnResult::Done => {
                    // A keepalive or a cookie reply that checked out.
                    if !datagram.is_empty() {
                        peer.seen_at(from);
                    }
                    return;
                }
                TunnResult::Err(WireGuardError::UnderLoad | WireGuardError::DuplicateCounter) => return,
                TunnResult::Err(_) => return drop_invalid(counters),
                TunnResult::WriteToNetwork(out) => {
                    if out.first() == Some(&HANDSHAKE_RESPONSE) {
                        peer.seen_at(from);
                    } else if out.first() == Some(&3) {
                        counters.cookie_replies.fetch_add(1, Ordering::Relaxed);
                    }
                    sink.to_network(from, out);
                    // Packets queued while the handshake ran go out now.
                    result = tunn.decapsulate(None, &[], scratch);
                }
                TunnResult::WriteToTunnelV4(packet, src) => {
                    return self.deliver(peer, from, IpAddr::V4(src), packet, sink);
                }
                TunnResult::WriteToTunnelV6(packet, src) => {
                    return self.deliver(peer, from, IpAddr::V6(src), packet, sink);
                }
            }
        }
    }

    /// A decrypted packet reaches the interface only if its source is one
    /// of the sender's own allowed addresses: a peer cannot speak for another.
    fn deliver(&self, peer: &Peer, from: SocketAddr, src: IpAddr, packet: &[u8], sink: &mut impl Sink) {
        peer.seen_at(from);
        match self.route(src) {
            Some(owner) if owner.slot == peer.slot => sink.to_tun(packet),
            _ => {
                peer.count_dropped_source();
                self.engine.counters.dropped_source.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Encrypts one packet from the interface into `out` (at least
    /// [`MIN_SCRATCH`] bytes, or the packet's length plus 32 and at least
    /// 148). Returns where to send the result, or `None` when the packet is
    /// dropped or queued behind a handshake that cannot start yet.
    pub fn from_tun<'a>(&self, packet: &[u8], out: &'a mut [u8]) -> Option<(SocketAddr, &'a [u8])> {
        let counters = &self.engine.counters;
        let Some(peer) = Tunn::dst_address(packet).and_then(|dst| self.route(dst)) else {
            counters.dropped_no_route.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // The server learns a client's address from its first handshake;
        // until then there is nowhere to send.
        let Some(to) = peer.endpoint() else {
            counters.dropped_no_route.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let mut guard = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
        let tunn = guard.get_or_insert_with(|| peer.new_tunn(&self.engine.private, &self.engine.limiter));
        match tunn.encapsulate(packet, out) {
            TunnResult::WriteToNetwork(datagram) => Some((to, datagram)),
            _ => None,
        }
    }

    /// Runs every peer's timers (handshake retries, keepalives, rekeying,
    /// session expiry). The shell calls it every 250 ms, as boringtun expects.
    pub fn tick(&self, scratch: &mut [u8], sink: &mut impl Sink) {
        for peer in self.table.iter() {
            // A peer that never reached us has no timers that could send.
            let Some(to) = peer.endpoint() else { continue };
            let mut guard = peer.tunn.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tunn) = guard.as_mut() else { continue };
            if let TunnResult::WriteToNetwork(datagram) = tunn.update_timers(scratch) {
                sink.to_network(to, datagram);
            }
        }
    }

    /// Sets a peer's endpoint by hand: a client-side engine (tests, the
    /// benchmark) knows the server's address before any handshake.
    pub fn set_endpoint(&self, key: &[u8; 32], to: SocketAddr) -> bool {
        self.table.by_key(key).map(|p| p.seen_at(to)).is_some()
    }
}

fn drop_invalid(counters: &Counters) {
    counters.dropped_invalid.fetch_add(1, Ordering::Relaxed);
}

/// `::ffff:a.b.c.d` from a dual-stack socket, shown as the IPv4 address it is.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
