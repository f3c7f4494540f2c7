//! Gluing decrypted TCP segments back into super-packets for one GSO write
//! to the TUN, with the rules of the kernel's own TCP GRO: the same flow
//! (addresses, ports), identical IP and TCP headers except for lengths,
//! IPv4 ID and checksums, consecutive sequence numbers, equal-sized
//! segments (only the last may be shorter), plain ACK flags (PSH ends a
//! super-packet), and every segment's checksum verified first, because
//! the kernel trusts a GSO write's payload without checking it again.
//!
//! Only packets that already passed the engine's allowed-source check come
//! here, and only packets with identical addresses are merged, so a
//! super-packet carries nothing its first segment could not.

use super::bytes;
use super::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN, VnetHdr};
use super::{L3, TCP, checksum};

/// Super-packets held at once; more and the held ones are written first.
const MAX_HELD: usize = 16;
/// Segments in one super-packet (the kernel's own GRO limit).
const MAX_SEGMENTS: usize = 64;
/// The largest super-packet: the IPv4 total length field.
const MAX_LEN: usize = u16::MAX as usize;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// Where a decrypted packet should go: straight to the TUN, or held to be
/// written by [`Coalescer::flush`].
#[derive(Debug, Default)]
pub struct Coalescer {
    held: Vec<Held>,
    /// Buffers of written super-packets, for reuse.
    spare: Vec<Vec<u8>>,
}

/// A super-packet being built: a virtio header's room, then the packet.
#[derive(Debug)]
struct Held {
    buf: Vec<u8>,
    l3: L3,
    /// IP plus TCP header length.
    headers: usize,
    /// Payload bytes of the first segment; every other must match, the
    /// last may be shorter.
    gso_size: usize,
    segments: usize,
    next_seq: u32,
    /// Nothing more may be appended (PSH, a short segment, a packet we do
    /// not merge).
    closed: bool,
}

/// A decrypted TCP segment we may merge.
struct Segment<'p> {
    packet: &'p [u8],
    l3: L3,
    headers: usize,
    seq: u32,
    flags: u8,
}

impl<'p> Segment<'p> {
    /// `None` for anything but a well-formed TCP segment with payload,
    /// plain ACK (and maybe PSH) flags and a correct checksum.
    fn parse(packet: &'p [u8]) -> Option<Segment<'p>> {
        let l3 = L3::parse(packet).ok()?;
        if l3.proto != TCP || (!l3.v6 && l3.len != 20) {
            return None;
        }
        let claimed = if l3.v6 {
            usize::from(bytes::u16_at(packet, 4).ok()?) + 40
        } else {
            usize::from(bytes::u16_at(packet, 2).ok()?)
        };
        if claimed != packet.len() {
            return None;
        }
        let doff = usize::from(bytes::u8_at(packet, l3.len + 12).ok()? >> 4) * 4;
        let headers = l3.len + doff;
        let flags = bytes::u8_at(packet, l3.len + 13).ok()?;
        if doff < 20 || packet.len() <= headers || flags & !PSH != ACK {
            return None;
        }
        let l4_len = packet.len() - l3.len;
        let sum = checksum::sum(
            bytes::slice(packet, l3.len, l4_len).ok()?,
            l3.pseudo(packet, l4_len).ok()?,
        );
        if checksum::fold(sum) != 0xffff {
            return None;
        }
        Some(Segment {
            packet,
            l3,
            headers,
            seq: bytes::u32_at(packet, l3.len + 4).ok()?,
            flags,
        })
    }

    fn payload_len(&self) -> usize {
        self.packet.len() - self.headers
    }
}

impl Held {
    fn packet(&self) -> &[u8] {
        self.buf.get(VNET_HDR_LEN..).unwrap_or_default()
    }

    /// Whether `seg` continues this super-packet.
    fn takes(&self, seg: &Segment<'_>) -> bool {
        !self.closed
            && seg.l3 == self.l3
            && seg.headers == self.headers
            && seg.seq == self.next_seq
            && seg.payload_len() <= self.gso_size
            && self.segments < MAX_SEGMENTS
            && self.packet().len() + seg.payload_len() <= MAX_LEN
            && same_headers(self.packet(), seg)
    }

    fn append(&mut self, seg: &Segment<'_>) {
        let payload = seg.packet.get(seg.headers..).unwrap_or_default();
        self.buf.extend_from_slice(payload);
        self.segments += 1;
        self.next_seq = self.next_seq.wrapping_add(payload.len() as u32);
        if seg.flags & PSH != 0 {
            // PSH travels on the super-packet, as the kernel's GRO does.
            let at = VNET_HDR_LEN + self.l3.len + 13;
            if let Some(f) = self.buf.get_mut(at) {
                *f |= PSH;
            }
            self.closed = true;
        }
        if payload.len() < self.gso_size {
            self.closed = true;
        }
    }

    /// Fills in the virtio header, lengths and the partial checksum of a
    /// merged super-packet; a single segment goes out as it came.
    fn finish(&mut self) -> Option<()> {
        let hdr = if self.segments > 1 {
            let l4 = self.l3.len;
            let total = self.buf.len() - VNET_HDR_LEN;
            let packet = self.buf.get_mut(VNET_HDR_LEN..)?;
            let id = (!self.l3.v6).then(|| bytes::u16_at(packet, 4).ok()).flatten();
            self.l3.set_lengths(packet, total, id).ok()?;
            // With NEEDS_CSUM the field holds the pseudo-header sum, folded
            // and not complemented; the kernel adds the rest.
            let pseudo = checksum::fold(self.l3.pseudo(packet, total - l4).ok()?);
            bytes::set_u16(packet, l4 + 16, pseudo).ok()?;
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if self.l3.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: u16::try_from(self.headers).ok()?,
                gso_size: u16::try_from(self.gso_size).ok()?,
                csum_start: u16::try_from(l4).ok()?,
                csum_offset: 16,
            }
        } else {
            VnetHdr::default()
        };
        self.buf.get_mut(..VNET_HDR_LEN)?.copy_from_slice(&hdr.to_bytes());
        Some(())
    }
}

/// Addresses, TOS/traffic class, TTL/hop limit, DF, ports, ACK number,
/// window and TCP options all equal.
fn same_headers(held: &[u8], seg: &Segment<'_>) -> bool {
    let p = seg.packet;
    let eq = |at: usize, len: usize| match (bytes::slice(held, at, len), bytes::slice(p, at, len)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let ip_same = if seg.l3.v6 {
        eq(0, 4) && eq(6, 34)
    } else {
        eq(0, 2) && eq(6, 4) && eq(12, 8)
    };
    let l4 = seg.l3.len;
    ip_same && eq(l4, 4) && eq(l4 + 8, 4) && eq(l4 + 14, 2) && eq(l4 + 20, seg.headers - l4 - 20)
}

impl Coalescer {
    /// Takes one decrypted packet. Returns it back if it should be written
    /// now, as it is; otherwise holds it (merged or not) for [`Self::flush`].
    /// Only TCP is held: other protocols have no order to keep with it.
    pub fn push<'p>(&mut self, packet: &'p [u8], write: &mut impl FnMut(&[u8], &[u8])) -> Option<&'p [u8]> {
        let is_tcp = L3::parse(packet).is_ok_and(|l3| l3.proto == TCP);
        if !is_tcp {
            return Some(packet);
        }
        let seg = Segment::parse(packet);
        if let Some(seg) = &seg {
            // The flow's latest held packet is the only one it may extend:
            // anything else would reorder the flow.
            if let Some(held) = self.held.iter_mut().rev().find(|h| same_flow(h.packet(), seg))
                && held.takes(seg)
            {
                held.append(seg);
                return None;
            }
        }
        if self.held.len() == MAX_HELD {
            self.flush(write);
        }
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(VNET_HDR_LEN + MAX_LEN));
        buf.clear();
        buf.extend_from_slice(&[0; VNET_HDR_LEN]);
        buf.extend_from_slice(packet);
        self.held.push(match seg {
            Some(seg) => Held {
                buf,
                l3: seg.l3,
                headers: seg.headers,
                gso_size: seg.payload_len(),
                segments: 1,
                next_seq: seg.seq.wrapping_add(seg.payload_len() as u32),
                closed: seg.flags & PSH != 0,
            },
            // TCP we do not merge (SYN, FIN, pure ACKs, a bad checksum)
            // still waits its turn behind its flow's held data.
            None => Held {
                buf,
                l3: L3 {
                    v6: false,
                    len: 0,
                    proto: TCP,
                },
                headers: 0,
                gso_size: 0,
                segments: 1,
                next_seq: 0,
                closed: true,
            },
        });
        None
    }

    /// Writes everything held, in order: `write(virtio header, packet)`.
    /// Returns (super-packets of more than one segment, their segments).
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8], &[u8])) -> (u64, u64) {
        let (mut merged, mut segments) = (0, 0);
        for mut held in self.held.drain(..) {
            if held.finish().is_some() {
                let (hdr, packet) = held.buf.split_at(VNET_HDR_LEN);
                write(hdr, packet);
                if held.segments > 1 {
                    merged += 1;
                    segments += held.segments as u64;
                }
            }
            self.spare.push(held.buf);
        }
        (merged, segments)
    }
}

/// Same addresses and ports. A held packet we did not parse (a FIN, say)
/// can match too: it is closed, so what follows it in the flow starts a
/// new super-packet behind it rather than joining an earlier one.
fn same_flow(held: &[u8], seg: &Segment<'_>) -> bool {
    let (addrs_at, addrs_len) = if seg.l3.v6 { (8, 32) } else { (12, 8) };
    let l4 = seg.l3.len;
    held.first() == seg.packet.first()
        && bytes::slice(held, addrs_at, addrs_len).ok() == bytes::slice(seg.packet, addrs_at, addrs_len).ok()
        && bytes::slice(held, l4, 4).ok() == bytes::slice(seg.packet, l4, 4).ok()
}
