//! Splitting a GSO super-packet from the TUN into plain IP packets, as the
//! kernel's own software GSO would: the payload cut at `gso_size`, each
//! piece behind a copy of the headers with its length, IPv4 ID, TCP
//! sequence number and flags adjusted and every checksum computed.

use super::bytes;
use super::vnet::{F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VnetHdr};
use super::{L3, OffloadError, TCP, UDP, checksum};

/// TCP flags that belong only to the last segment (FIN, PSH) or only to
/// the first (CWR).
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Hands each plain packet of `packet` (what followed `hdr` in a TUN read)
/// to `emit`, built in `scratch` when it needs changing. Returns how many.
/// `scratch` must hold the largest segment (headers plus `gso_size`).
pub fn segment(
    hdr: &VnetHdr,
    packet: &[u8],
    scratch: &mut [u8],
    emit: &mut impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE if hdr.flags & F_NEEDS_CSUM == 0 => {
            emit(packet);
            Ok(1)
        }
        GSO_NONE => {
            let out = scratch.get_mut(..packet.len()).ok_or(OffloadError::BadGsoSize)?;
            out.copy_from_slice(packet);
            finish_partial_checksum(out, hdr)?;
            emit(out);
            Ok(1)
        }
        gso @ (GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4) => {
            let l3 = L3::parse(packet)?;
            let want = match gso {
                GSO_TCPV4 if !l3.v6 => TCP,
                GSO_TCPV6 if l3.v6 => TCP,
                GSO_UDP_L4 => UDP,
                _ => return Err(OffloadError::BadGsoType(hdr.gso_type)),
            };
            if l3.proto != want {
                return Err(OffloadError::BadGsoType(hdr.gso_type));
            }
            Split::new(l3, packet, usize::from(hdr.gso_size))?.run(scratch, emit)
        }
        _ => Err(OffloadError::BadGsoType(hdr.gso_type)),
    }
}

/// Completes a checksum the kernel left partial: the field holds the
/// pseudo-header sum, the rest is summed from `csum_start` to the end.
fn finish_partial_checksum(p: &mut [u8], hdr: &VnetHdr) -> Result<(), OffloadError> {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > p.len() {
        return Err(OffloadError::BadChecksumOffset);
    }
    let sum = checksum::sum(bytes::slice(p, start, p.len() - start)?, 0);
    // As the kernel does: a computed 0 goes out as 0xffff (UDP reads 0 as
    // "no checksum"; for TCP both mean the same).
    let csum = match !checksum::fold(sum) {
        0 => 0xffff,
        c => c,
    };
    bytes::set_u16(p, field, csum)
}

/// One super-packet being split.
struct Split<'p> {
    l3: L3,
    packet: &'p [u8],
    /// IP and transport headers: the prefix every segment repeats.
    headers: usize,
    gso_size: usize,
}

impl<'p> Split<'p> {
    fn new(l3: L3, packet: &'p [u8], gso_size: usize) -> Result<Split<'p>, OffloadError> {
        let l4_len = match l3.proto {
            TCP => {
                let doff = usize::from(bytes::u8_at(packet, l3.len + 12)? >> 4) * 4;
                if doff < 20 {
                    return Err(OffloadError::BadTransport);
                }
                doff
            }
            _ => 8,
        };
        let headers = l3.len + l4_len;
        if packet.len() < headers {
            return Err(OffloadError::Truncated);
        }
        if gso_size == 0 || packet.len() > usize::from(u16::MAX) + l3.len {
            return Err(OffloadError::BadGsoSize);
        }
        Ok(Split {
            l3,
            packet,
            headers,
            gso_size,
        })
    }

    fn run(&self, scratch: &mut [u8], emit: &mut impl FnMut(&[u8])) -> Result<usize, OffloadError> {
        let payload = bytes::slice(self.packet, self.headers, self.packet.len() - self.headers)?;
        let count = payload.len().div_ceil(self.gso_size).max(1);
        let mut chunks = payload.chunks(self.gso_size);
        for i in 0..count {
            let chunk = chunks.next().unwrap_or_default();
            let len = self.headers + chunk.len();
            let out = scratch.get_mut(..len).ok_or(OffloadError::BadGsoSize)?;
            out[..self.headers].copy_from_slice(bytes::slice(self.packet, 0, self.headers)?);
            out[self.headers..].copy_from_slice(chunk);
            self.fix(out, i, i + 1 == count)?;
            emit(out);
        }
        Ok(count)
    }

    /// Headers and checksums of segment `i` (its bytes already in `out`).
    fn fix(&self, out: &mut [u8], i: usize, last: bool) -> Result<(), OffloadError> {
        let id = if self.l3.v6 {
            None
        } else {
            // IDs count up per segment, as the kernel's own GSO does.
            Some(bytes::u16_at(self.packet, 4)?.wrapping_add(i as u16))
        };
        self.l3.set_lengths(out, out.len(), id)?;
        let l4 = self.l3.len;
        let csum_at = if self.l3.proto == TCP {
            let seq = bytes::u32_at(self.packet, l4 + 4)?;
            // Sequence numbers wrap; so does the offset arithmetic.
            bytes::set_u32(out, l4 + 4, seq.wrapping_add((i * self.gso_size) as u32))?;
            let mut flags = bytes::u8_at(self.packet, l4 + 13)?;
            if !last {
                flags &= !(FIN | PSH);
            }
            if i > 0 {
                flags &= !CWR;
            }
            bytes::set_u8(out, l4 + 13, flags)?;
            l4 + 16
        } else {
            let len = u16::try_from(out.len() - l4).map_err(|_| OffloadError::BadGsoSize)?;
            bytes::set_u16(out, l4 + 4, len)?;
            l4 + 6
        };
        bytes::set_u16(out, csum_at, 0)?;
        let l4_len = out.len() - l4;
        let sum = checksum::sum(bytes::slice(out, l4, l4_len)?, self.l3.pseudo(out, l4_len)?);
        let csum = match !checksum::fold(sum) {
            0 if self.l3.proto == UDP => 0xffff,
            c => c,
        };
        bytes::set_u16(out, csum_at, csum)
    }
}
