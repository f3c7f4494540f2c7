//! Segmentation and coalescing against hand-built packets: every segment's
//! checksums verified independently, malformed headers refused, and
//! coalescing only where the kernel's GRO would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::checksum::{fold, sum};
use super::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use super::*;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;

/// A TCP packet with the given flags and payload, checksums valid.
fn tcp(v6: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_ports(v6, 40000, seq, flags, payload)
}

fn tcp_ports(v6: bool, sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    // A timestamp option, as Linux sends: 12 bytes, doff 8.
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&5201u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&77u32.to_be_bytes());
    t.extend_from_slice(&[8 << 4, flags, 0x01, 0xf5, 0, 0, 0, 0]);
    t.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    t.extend_from_slice(payload);
    ip(v6, TCP, t, 16)
}

fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&5000u16.to_be_bytes());
    u.extend_from_slice(&5001u16.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ip(v6, UDP, u, 6)
}

/// Wraps a transport segment in an IP header and fills in its checksum.
fn ip(v6: bool, proto: u8, l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let mut p = if v6 {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        h.extend_from_slice(&[proto, 64]);
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h
    } else {
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        h.extend_from_slice(&[198, 18, 100, 2, 198, 18, 100, 1]);
        h
    };
    let l3 = L3::parse(&p).unwrap();
    let header_sum = (!v6).then(|| !fold(sum(&p, 0)));
    if let Some(c) = header_sum {
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&l4);
    let len = l4.len();
    let c = !fold(sum(&l4, l3.pseudo(&p, len).unwrap()));
    p[l3.len + csum_at..l3.len + csum_at + 2].copy_from_slice(&c.to_be_bytes());
    p
}

/// Checks what a receiving stack checks: IP header checksum, lengths and
/// the transport checksum.
fn assert_valid(p: &[u8]) {
    let l3 = L3::parse(p).expect("IP header");
    if l3.v6 {
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])) + 40, p.len());
    } else {
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(fold(sum(&p[..l3.len], 0)), 0xffff, "IPv4 header checksum");
    }
    let l4_len = p.len() - l3.len;
    assert_eq!(
        fold(sum(&p[l3.len..], l3.pseudo(p, l4_len).unwrap())),
        0xffff,
        "transport checksum"
    );
}

/// The payload of a TCP packet.
fn tcp_payload(p: &[u8]) -> &[u8] {
    let l3 = L3::parse(p).unwrap();
    &p[l3.len + usize::from(p[l3.len + 12] >> 4) * 4..]
}

fn gso(v6: bool, gso_size: u16, flags: u8, payload: &[u8]) -> (VnetHdr, Vec<u8>) {
    let p = tcp(v6, 0xffff_f000, flags, payload);
    let l3 = L3::parse(&p).unwrap();
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (l3.len + 32) as u16,
        gso_size,
        csum_start: l3.len as u16,
        csum_offset: 16,
    };
    (hdr, p)
}

fn split(hdr: &VnetHdr, packet: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut out = Vec::new();
    let mut scratch = vec![0; 70000];
    segment(hdr, packet, &mut scratch, &mut |p| out.push(p.to_vec()))?;
    Ok(out)
}

#[test]
fn tcp_super_packets_split_into_valid_segments() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    for v6 in [false, true] {
        let (hdr, packet) = gso(v6, 1368, ACK | PSH | FIN, &payload);
        let segs = split(&hdr, &packet).unwrap();
        assert_eq!(segs.len(), 10_000usize.div_ceil(1368));
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert_valid(s);
            let l3 = L3::parse(s).unwrap();
            let seq = u32::from_be_bytes(s[l3.len + 4..l3.len + 8].try_into().unwrap());
            // The sequence number wraps past 2^32 midway.
            assert_eq!(seq, 0xffff_f000u32.wrapping_add(i as u32 * 1368));
            let flags = s[l3.len + 13];
            let last = i + 1 == segs.len();
            assert_eq!(flags, if last { ACK | PSH | FIN } else { ACK }, "segment {i}");
            if !v6 {
                assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16, "IPv4 ID");
            }
            let body = tcp_payload(s);
            assert!(body.len() == 1368 || last);
            joined.extend_from_slice(body);
        }
        assert_eq!(joined, payload);
    }
}

#[test]
fn udp_super_packets_split_with_udp_lengths() {
    for v6 in [false, true] {
        let p = udp(v6, &[9u8; 3000]);
        let l3 = L3::parse(&p).unwrap();
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: (l3.len + 8) as u16,
            gso_size: 1400,
            csum_start: l3.len as u16,
            csum_offset: 6,
        };
        let segs = split(&hdr, &p).unwrap();
        assert_eq!(
            segs.iter().map(|s| s.len() - l3.len - 8).collect::<Vec<_>>(),
            [1400, 1400, 200]
        );
        for s in &segs {
            assert_valid(s);
            assert_eq!(
                usize::from(u16::from_be_bytes([s[l3.len + 4], s[l3.len + 5]])),
                s.len() - l3.len
            );
        }
    }
}

#[test]
fn a_partial_checksum_is_completed_and_plain_packets_pass_untouched() {
    let good = tcp(false, 1, ACK, b"hello");
    let mut partial = good.clone();
    // What the kernel hands over with NEEDS_CSUM: the pseudo-header sum.
    let l4_len = partial.len() - 20;
    let pseudo = fold(L3::parse(&partial).unwrap().pseudo(&partial, l4_len).unwrap());
    partial[36..38].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert_eq!(split(&hdr, &partial).unwrap(), vec![good.clone()]);
    assert_eq!(split(&VnetHdr::default(), &good).unwrap(), vec![good]);
}

#[test]
fn malformed_headers_are_refused() {
    let (hdr, packet) = gso(false, 1368, ACK, &[1; 4000]);
    let bad = |h: VnetHdr, p: &[u8]| split(&h, p).unwrap_err();
    // A TCPv6 type on an IPv4 packet, and a type we never enabled (UFO).
    assert!(matches!(
        bad(
            VnetHdr {
                gso_type: GSO_TCPV6,
                ..hdr
            },
            &packet
        ),
        OffloadError::BadGsoType(_)
    ));
    assert!(matches!(
        bad(VnetHdr { gso_type: 3, ..hdr }, &packet),
        OffloadError::BadGsoType(_)
    ));
    assert_eq!(bad(VnetHdr { gso_size: 0, ..hdr }, &packet), OffloadError::BadGsoSize);
    // Cut inside the TCP header, and an empty read.
    assert_eq!(bad(hdr, &packet[..30]), OffloadError::Truncated);
    assert_eq!(bad(hdr, &[]), OffloadError::Truncated);
    // A TCP data offset below 5 words.
    let mut short_doff = packet.clone();
    short_doff[32] = 4 << 4;
    assert_eq!(bad(hdr, &short_doff), OffloadError::BadTransport);
    // An IPv4 fragment, an IPv4 IHL below 5, not IP at all.
    let mut frag = packet.clone();
    frag[6] = 0x20;
    assert_eq!(bad(hdr, &frag), OffloadError::BadIp);
    let mut ihl = packet.clone();
    ihl[0] = 0x44;
    assert_eq!(bad(hdr, &ihl), OffloadError::BadIp);
    assert_eq!(bad(hdr, &[0x70; 60]), OffloadError::BadIp);
    // A UDP type on a TCP packet.
    assert!(matches!(
        bad(
            VnetHdr {
                gso_type: GSO_UDP_L4,
                ..hdr
            },
            &packet
        ),
        OffloadError::BadGsoType(_)
    ));
    // A checksum request pointing past the end.
    let plain = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_NONE,
        csum_start: 60,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert_eq!(bad(plain, &packet[..70]), OffloadError::BadChecksumOffset);
    // Segments that do not fit the scratch buffer.
    let mut out = 0;
    let r = segment(
        &VnetHdr { gso_size: 60000, ..hdr },
        &packet,
        &mut [0; 1500],
        &mut |_| out += 1,
    );
    assert_eq!((r, out), (Err(OffloadError::BadGsoSize), 0));
}

#[test]
fn random_garbage_never_panics() {
    // A small xorshift: deterministic, no dependency.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (_, template) = gso(false, 1000, ACK, &[3; 3000]);
    let mut scratch = vec![0; 2000];
    let mut c = Coalescer::default();
    for _ in 0..20_000 {
        let mut buf = template.clone();
        for _ in 0..(next() % 8) {
            let i = (next() as usize) % buf.len();
            buf[i] = next() as u8;
        }
        buf.truncate((next() as usize) % (buf.len() + 1));
        if let Ok((hdr, p)) = VnetHdr::split(&buf) {
            let _ = segment(&hdr, p, &mut scratch, &mut |_| {});
        }
        let _ = c.push(&buf, &mut |_, _| {});
    }
    c.flush(&mut |_, _| {});
}

/// Pushes packets through a coalescer; returns what it wrote, in order,
/// plus what it passed straight through (as a plain header).
fn coalesce(packets: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut c = Coalescer::default();
    let mut write = |h: &[u8], p: &[u8]| out.push((VnetHdr::split(h).unwrap().0, p.to_vec()));
    for p in packets {
        if let Some(now) = c.push(p, &mut write) {
            write(&[0; VNET_HDR_LEN], now);
        }
    }
    c.flush(&mut write);
    out
}

/// Splits a coalesced super-packet the way the kernel would, using the
/// header it carries.
fn resplit(hdr: &VnetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    split(hdr, packet).unwrap()
}

#[test]
fn consecutive_segments_coalesce_and_split_back_identically() {
    for v6 in [false, true] {
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let (hdr, big) = gso(v6, 1368, ACK | PSH, &payload);
        let segs = split(&hdr, &big).unwrap();
        let out = coalesce(&segs);
        assert_eq!(out.len(), 1, "one super-packet");
        let (h, p) = &out[0];
        assert_eq!(h.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        assert_eq!(usize::from(h.gso_size), 1368);
        assert_eq!(h.flags, F_NEEDS_CSUM);
        assert_eq!(tcp_payload(p), &payload[..]);
        // PSH travels on the super-packet and a split puts it on the last
        // segment only; IPv4 IDs count up from the first segment's: so the
        // segments come back byte for byte.
        assert_eq!(resplit(h, p), segs);
    }
}

#[test]
fn only_legal_neighbours_coalesce() {
    let seg = |seq: u32, flags: u8| tcp(false, seq, flags, &[5; 1000]);
    let count = |packets: &[Vec<u8>]| {
        coalesce(packets)
            .iter()
            .map(|(h, p)| {
                if h.gso_size == 0 {
                    1
                } else {
                    tcp_payload(p).len().div_ceil(usize::from(h.gso_size))
                }
            })
            .collect::<Vec<_>>()
    };
    // Consecutive: one super-packet of three.
    assert_eq!(count(&[seg(0, ACK), seg(1000, ACK), seg(2000, ACK)]), [3]);
    // A gap in the sequence numbers starts a new one.
    assert_eq!(count(&[seg(0, ACK), seg(1000, ACK), seg(3000, ACK)]), [2, 1]);
    // PSH ends one; nothing joins after it.
    assert_eq!(count(&[seg(0, ACK | PSH), seg(1000, ACK)]), [1, 1]);
    // SYN, FIN are never merged, and keep their place in the flow.
    let out = coalesce(&[seg(0, ACK), seg(1000, ACK | FIN), seg(2000, ACK)]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[1].1[33], ACK | FIN);
    assert_eq!(count(&[seg(0, SYN), seg(1000, ACK)]), [1, 1]);
    // A short segment ends one (only the last may be shorter).
    let short = tcp(false, 1000, ACK, &[5; 10]);
    assert_eq!(count(&[seg(0, ACK), short, seg(1010, ACK)]), [2, 1]);
    // A bad checksum is not merged (the kernel must see and drop it).
    let mut bad = seg(1000, ACK);
    bad[60] ^= 1;
    assert_eq!(count(&[seg(0, ACK), bad.clone(), seg(2000, ACK)]), [1, 1, 1]);
    // A different ACK number, window or option.
    for (at, v) in [(28, 1u8), (34, 9), (50, 3)] {
        let mut other = seg(1000, ACK);
        other[at] ^= v;
        let other = tcp_fix(other);
        assert_eq!(count(&[seg(0, ACK), other]), [1, 1], "byte {at}");
    }
    // Another flow is held apart but does not break the first.
    let other_flow = tcp_ports(false, 40001, 1000, ACK, &[5; 1000]);
    let out = coalesce(&[seg(0, ACK), other_flow, seg(1000, ACK)]);
    assert_eq!(out.len(), 2);
    assert_eq!(tcp_payload(&out[0].1).len(), 2000);
    // Another source address (what a spoofed segment would have) never
    // joins: every segment of a super-packet has the source that the
    // engine's allowed-source check passed.
    let mut spoofed = seg(1000, ACK);
    spoofed[15] ^= 7;
    let spoofed = ip_fix(tcp_fix(spoofed));
    assert_valid(&spoofed);
    assert_eq!(count(&[seg(0, ACK), spoofed, seg(1000, ACK)]), [2, 1]);
    // IPv4 and IPv6 never mix.
    assert_eq!(count(&[seg(0, ACK), tcp(true, 1000, ACK, &[5; 1000])]), [1, 1]);
}

/// Recomputes the header checksum of an edited IPv4 packet.
fn ip_fix(mut p: Vec<u8>) -> Vec<u8> {
    p[10..12].copy_from_slice(&[0, 0]);
    let c = !fold(sum(&p[..20], 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// Recomputes the TCP checksum of an edited IPv4 packet.
fn tcp_fix(mut p: Vec<u8>) -> Vec<u8> {
    p[36..38].copy_from_slice(&[0, 0]);
    let l4_len = p.len() - 20;
    let c = !fold(sum(&p[20..], L3::parse(&p).unwrap().pseudo(&p, l4_len).unwrap()));
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

#[test]
fn non_tcp_goes_straight_through_and_lone_segments_go_out_plain() {
    let u = udp(false, b"dns?");
    assert_eq!(coalesce(std::slice::from_ref(&u)), vec![(VnetHdr::default(), u)]);
    let t = tcp(true, 7, ACK, b"one");
    assert_eq!(coalesce(std::slice::from_ref(&t)), vec![(VnetHdr::default(), t)]);
}

#[test]
fn super_packets_stop_at_64_kib_and_64_segments() {
    let segs: Vec<Vec<u8>> = (0..100u32).map(|i| tcp(false, i * 1000, ACK, &[1; 1000])).collect();
    let out = coalesce(&segs);
    assert!(out.iter().all(|(_, p)| p.len() <= 65535));
    assert_eq!(out.iter().map(|(_, p)| tcp_payload(p).len()).sum::<usize>(), 100_000);
    let big: Vec<Vec<u8>> = (0..100u32).map(|i| tcp(false, i * 100, ACK, &[1; 100])).collect();
    assert_eq!(coalesce(&big).len(), 2);
}
