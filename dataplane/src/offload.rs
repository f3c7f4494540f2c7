//! TUN offloads, sans-IO: what the kernel hands us with `IFF_VNET_HDR` and
//! TSO/USO enabled, and what we hand back.
//!
//! - [`segment`]: a TUN read is a `virtio_net_hdr` and up to 64 KiB of one
//!   TCP (or UDP) flow; split it into MTU-sized packets with valid headers
//!   and checksums, each then encrypted on its own (WireGuard carries IP
//!   packets, not super-packets).
//! - [`coalesce`]: decrypted TCP segments of one flow that follow each other
//!   are glued back into one super-packet with a GSO header, so the kernel
//!   runs its TCP receive path once per 64 KiB instead of once per segment.
//!
//! Everything here reads packet bytes through bounds-checked accessors
//! ([`bytes`]): nothing from the network can make it panic.
#![forbid(unsafe_code)]

mod bytes;
pub mod checksum;
pub mod coalesce;
pub mod segment;
pub mod vnet;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

pub use coalesce::Coalescer;
pub use segment::segment;
pub use vnet::{VNET_HDR_LEN, VnetHdr};

/// Why a packet from the TUN was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Shorter than the headers it claims.
    #[error("truncated packet")]
    Truncated,
    /// Not IPv4 or IPv6, or an IP header we do not segment (options
    /// lengths out of range, fragments, IPv6 extension headers).
    #[error("unsupported IP header")]
    BadIp,
    /// The GSO type does not match the packet, or is one we never enabled.
    #[error("GSO type {0:#x} does not fit the packet")]
    BadGsoType(u8),
    /// A GSO packet with a zero segment size, or segments larger than a
    /// packet can be.
    #[error("bad GSO segment size")]
    BadGsoSize,
    /// A transport header whose length fields are out of range.
    #[error("bad transport header")]
    BadTransport,
    /// A checksum request pointing outside the packet.
    #[error("checksum offset outside the packet")]
    BadChecksumOffset,
}

/// Offload counters, process-wide (the workers add, `stats` logs them).
#[derive(Debug, Default)]
pub struct Counters {
    /// TUN reads that were GSO super-packets and were split.
    pub segmented: AtomicU64,
    /// Packets those splits produced.
    pub segments_out: AtomicU64,
    /// Super-packets written to the TUN that carry more than one segment.
    pub coalesced: AtomicU64,
    /// Segments those carried.
    pub segments_in: AtomicU64,
    /// TUN reads refused for a malformed virtio header or packet.
    pub malformed: AtomicU64,
}

/// The process's offload counters.
pub static COUNTERS: Counters = Counters {
    segmented: AtomicU64::new(0),
    segments_out: AtomicU64::new(0),
    coalesced: AtomicU64::new(0),
    segments_in: AtomicU64::new(0),
    malformed: AtomicU64::new(0),
};

impl Counters {
    /// A snapshot, for the log: (segmented, segments out, coalesced,
    /// segments in, malformed).
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.segmented.load(Ordering::Relaxed),
            self.segments_out.load(Ordering::Relaxed),
            self.coalesced.load(Ordering::Relaxed),
            self.segments_in.load(Ordering::Relaxed),
            self.malformed.load(Ordering::Relaxed),
        ]
    }
}

/// IP protocol numbers we look at.
pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// Where the IP header ends and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L3 {
    pub v6: bool,
    /// Header length: where the transport header starts.
    pub len: usize,
    pub proto: u8,
}

impl L3 {
    /// Parses an IPv4 header without fragmentation (options allowed) or an
    /// IPv6 header with no extension headers.
    pub(crate) fn parse(p: &[u8]) -> Result<L3, OffloadError> {
        let first = bytes::u8_at(p, 0)?;
        match first >> 4 {
            4 => {
                let len = usize::from(first & 0x0f) * 4;
                if len < 20 || p.len() < len {
                    return Err(OffloadError::BadIp);
                }
                // More-fragments or a fragment offset: not ours to segment.
                if bytes::u16_at(p, 6)? & 0x3fff != 0 {
                    return Err(OffloadError::BadIp);
                }
                Ok(L3 {
                    v6: false,
                    len,
                    proto: bytes::u8_at(p, 9)?,
                })
            }
            6 => {
                if p.len() < 40 {
                    return Err(OffloadError::Truncated);
                }
                Ok(L3 {
                    v6: true,
                    len: 40,
                    proto: bytes::u8_at(p, 6)?,
                })
            }
            _ => Err(OffloadError::BadIp),
        }
    }

    /// The transport checksum's pseudo-header sum (unfolded) for a
    /// transport segment of `l4_len` bytes.
    pub(crate) fn pseudo(&self, p: &[u8], l4_len: usize) -> Result<u64, OffloadError> {
        let addrs = if self.v6 {
            bytes::slice(p, 8, 32)?
        } else {
            bytes::slice(p, 12, 8)?
        };
        let len = u32::try_from(l4_len).map_err(|_| OffloadError::BadGsoSize)?;
        Ok(checksum::sum(addrs, u64::from(self.proto) + u64::from(len)))
    }

    /// Sets the IP length fields for a packet of `total` bytes; for IPv4
    /// also the ID and the header checksum.
    pub(crate) fn set_lengths(&self, p: &mut [u8], total: usize, id: Option<u16>) -> Result<(), OffloadError> {
        if self.v6 {
            let payload = u16::try_from(total.saturating_sub(40)).map_err(|_| OffloadError::BadGsoSize)?;
            return bytes::set_u16(p, 4, payload);
        }
        let total = u16::try_from(total).map_err(|_| OffloadError::BadGsoSize)?;
        bytes::set_u16(p, 2, total)?;
        if let Some(id) = id {
            bytes::set_u16(p, 4, id)?;
        }
        bytes::set_u16(p, 10, 0)?;
        let sum = checksum::sum(bytes::slice(p, 0, self.len)?, 0);
        bytes::set_u16(p, 10, !checksum::fold(sum))
    }
}
