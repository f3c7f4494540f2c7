//! Two engines wired into each other in memory: the sans-IO core without a
//! socket, a TUN device or a clock of its own.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::time::SystemTime;

use dataplane::engine::{Engine, MIN_SCRATCH, Sink};
use schemas::tunnel::PeerSpec;
use schemas::values::WgKey;

const SERVER_KEY: [u8; 32] = [1; 32];
const CLIENT_KEY: [u8; 32] = [2; 32];

#[derive(Default)]
struct Out {
    net: Vec<(SocketAddr, Vec<u8>)>,
    tun: Vec<Vec<u8>>,
}

impl Sink for Out {
    fn to_network(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.net.push((to, datagram.to_vec()));
    }
    fn to_tun(&mut self, packet: &[u8]) {
        self.tun.push(packet.to_vec());
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn public(private: [u8; 32]) -> WgKey {
    WgKey::from_bytes(&Engine::new(private, 100).public_key())
}

fn peer(key: WgKey, allowed: &[&str]) -> PeerSpec {
    PeerSpec {
        public_key: key,
        preshared_key: None,
        allowed_ips: allowed.iter().map(|a| a.parse().expect("cidr")).collect(),
        persistent_keepalive: None,
        endpoint: None,
    }
}

/// An IPv4 packet with a valid header length field (what boringtun checks).
fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

struct Pair {
    server: Engine,
    client: Engine,
    server_at: SocketAddr,
    client_at: SocketAddr,
}

impl Pair {
    fn new(limit: u64) -> Pair {
        let server = Engine::new(SERVER_KEY, limit);
        let client = Engine::new(CLIENT_KEY, 100);
        server
            .upsert(vec![peer(public(CLIENT_KEY), &["198.18.100.2/32"])])
            .expect("server peer");
        client
            .upsert(vec![peer(public(SERVER_KEY), &["0.0.0.0/0"])])
            .expect("client peer");
        let server_at = addr("198.18.1.1:51820");
        assert!(client.view().set_endpoint(&public(SERVER_KEY).to_bytes(), server_at));
        Pair {
            server,
            client,
            server_at,
            client_at: addr("198.18.1.2:40000"),
        }
    }

    /// Client sends `packet` from its TUN; datagrams bounce until quiet.
    /// Returns what reached the server's TUN.
    fn client_sends(&self, packet: &[u8], from: SocketAddr) -> Vec<Vec<u8>> {
        let mut buf = vec![0; MIN_SCRATCH];
        let first = self
            .client
            .view()
            .from_tun(packet, &mut buf)
            .map(|(to, d)| (to, d.to_vec()));
        let Some((to, datagram)) = first else { return Vec::new() };
        assert_eq!(to, self.server_at);
        self.bounce(datagram, from)
    }

    /// Delivers a client datagram to the server and relays replies both ways.
    fn bounce(&self, datagram: Vec<u8>, from: SocketAddr) -> Vec<Vec<u8>> {
        let mut scratch = vec![0; MIN_SCRATCH];
        let mut to_server = vec![datagram];
        let mut at_server = Vec::new();
        for _ in 0..8 {
            let mut server_out = Out::default();
            for d in to_server.drain(..) {
                self.server.view().from_network(from, &d, &mut scratch, &mut server_out);
            }
            at_server.extend(server_out.tun);
            let mut client_out = Out::default();
            for (to, d) in server_out.net {
                assert_eq!(to, from, "the server answers where the client is");
                self.client
                    .view()
                    .from_network(self.server_at, &d, &mut scratch, &mut client_out);
            }
            to_server = client_out.net.into_iter().map(|(_, d)| d).collect();
            if to_server.is_empty() {
                break;
            }
        }
        at_server
    }
}

#[test]
fn handshake_then_data_both_ways() {
    let pair = Pair::new(100);
    let packet = ipv4([198, 18, 100, 2], [198, 18, 100, 1], b"hello");
    // The first packet waits behind the handshake and arrives once it is done.
    assert_eq!(pair.client_sends(&packet, pair.client_at), vec![packet.clone()]);
    assert_eq!(pair.client_sends(&packet, pair.client_at), vec![packet.clone()]);

    // The server now knows where the client is and can answer.
    let reply = ipv4([198, 18, 100, 1], [198, 18, 100, 2], b"world");
    let mut buf = vec![0; MIN_SCRATCH];
    let (to, datagram) = pair.server.view().from_tun(&reply, &mut buf).expect("encrypted");
    assert_eq!(to, pair.client_at);
    let mut out = Out::default();
    let mut scratch = vec![0; MIN_SCRATCH];
    pair.client
        .view()
        .from_network(pair.server_at, datagram, &mut scratch, &mut out);
    assert_eq!(out.tun, vec![reply]);

    let (stats, totals) = pair.server.stats(SystemTime::now());
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].endpoint, Some(pair.client_at));
    assert!(stats[0].last_handshake.is_some());
    assert!(stats[0].rx_bytes > 0 && stats[0].tx_bytes > 0);
    assert_eq!(totals.dropped_source, 0);
}

#[test]
fn a_source_outside_the_allowed_addresses_is_dropped_and_counted() {
    let pair = Pair::new(100);
    let good = ipv4([198, 18, 100, 2], [198, 18, 100, 1], b"ok");
    assert_eq!(pair.client_sends(&good, pair.client_at).len(), 1);
    let spoofed = ipv4([198, 18, 100, 9], [198, 18, 100, 1], b"spoof");
    assert!(pair.client_sends(&spoofed, pair.client_at).is_empty());
    let (stats, totals) = pair.server.stats(SystemTime::now());
    assert_eq!(totals.dropped_source, 1);
    assert_eq!(stats[0].dropped_source, 1);
}

#[test]
fn a_client_that_moves_is_followed() {
    let pair = Pair::new(100);
    let packet = ipv4([198, 18, 100, 2], [198, 18, 100, 1], b"x");
    assert_eq!(pair.client_sends(&packet, pair.client_at).len(), 1);
    let moved = addr("198.18.2.7:50000");
    assert_eq!(pair.client_sends(&packet, moved).len(), 1);
    let reply = ipv4([198, 18, 100, 1], [198, 18, 100, 2], b"y");
    let mut buf = vec![0; MIN_SCRATCH];
    let (to, _) = pair.server.view().from_tun(&reply, &mut buf).expect("encrypted");
    assert_eq!(to, moved);
}

#[test]
fn a_removed_peer_gets_nothing_through() {
    let pair = Pair::new(100);
    let packet = ipv4([198, 18, 100, 2], [198, 18, 100, 1], b"x");
    assert_eq!(pair.client_sends(&packet, pair.client_at).len(), 1);
    assert_eq!(pair.server.remove(&[public(CLIENT_KEY)]), 1);
    assert!(pair.client_sends(&packet, pair.client_at).is_empty());
    let reply = ipv4([198, 18, 100, 1], [198, 18, 100, 2], b"y");
    let mut buf = vec![0; MIN_SCRATCH];
    assert!(pair.server.view().from_tun(&reply, &mut buf).is_none());
}

#[test]
fn under_load_initiations_get_a_cookie_not_a_handshake() {
    // A limit of 0: every initiation counts as over the limit.
    let pair = Pair::new(0);
    let packet = ipv4([198, 18, 100, 2], [198, 18, 100, 1], b"x");
    let mut buf = vec![0; MIN_SCRATCH];
    let (_, init) = pair.client.view().from_tun(&packet, &mut buf).expect("initiation");
    let mut out = Out::default();
    let mut scratch = vec![0; MIN_SCRATCH];
    pair.server
        .view()
        .from_network(pair.client_at, init, &mut scratch, &mut out);
    assert_eq!(out.net.len(), 1);
    assert_eq!(out.net[0].1[0], 3, "a cookie reply");
    assert!(out.tun.is_empty());
    assert_eq!(pair.server.stats(SystemTime::now()).1.cookie_replies, 1);
}

#[test]
fn garbage_is_counted_not_fatal() {
    let pair = Pair::new(100);
    let mut scratch = vec![0; MIN_SCRATCH];
    let mut out = Out::default();
    let from = pair.client_at;
    let mut junk: Vec<Vec<u8>> = vec![vec![], vec![1], vec![4, 0, 0, 0], vec![0xff; 2000]];
    for kind in 1u8..=4 {
        for len in [4usize, 32, 64, 92, 148, 200] {
            let mut d = vec![0x5a; len];
            d[..4].copy_from_slice(&[kind, 0, 0, 0]);
            junk.push(d);
        }
    }
    for d in &junk {
        pair.server.view().from_network(from, d, &mut scratch, &mut out);
    }
    assert!(out.tun.is_empty() && out.net.is_empty());
    assert!(pair.server.stats(SystemTime::now()).1.dropped_invalid >= junk.len() as u64 - 1);
    // Packets to nobody are counted too.
    let nowhere = ipv4([198, 18, 100, 1], [198, 19, 0, 1], b"");
    assert!(pair.server.view().from_tun(&nowhere, &mut scratch).is_none());
    assert_eq!(pair.server.stats(SystemTime::now()).1.dropped_no_route, 1);
}

#[test]
fn peers_update_in_place_and_routes_follow() {
    let server = Engine::new(SERVER_KEY, 100);
    let key = public(CLIENT_KEY);
    server
        .upsert(vec![peer(key.clone(), &["198.18.100.2/32"])])
        .expect("add");
    server
        .upsert(vec![peer(key.clone(), &["198.18.100.3/32"])])
        .expect("update");
    assert!(server.view().set_endpoint(&key.to_bytes(), addr("198.18.1.2:1")));
    let mut buf = vec![0; MIN_SCRATCH];
    let to_old = ipv4([198, 18, 100, 1], [198, 18, 100, 2], b"");
    let to_new = ipv4([198, 18, 100, 1], [198, 18, 100, 3], b"");
    assert!(
        server.view().from_tun(&to_old, &mut buf).is_none(),
        "the old address no longer routes"
    );
    assert!(
        server.view().from_tun(&to_new, &mut buf).is_some(),
        "the new one starts a handshake"
    );
    let (_, totals) = server.stats(SystemTime::now());
    assert_eq!(totals.peers, 1);
    assert_eq!(totals.dropped_no_route, 1);
}
