//! `struct virtio_net_hdr` as the TUN device reads and writes it in front of
//! every packet once `IFF_VNET_HDR` is set (10 bytes, the legacy layout,
//! fields in the host's byte order).

use super::OffloadError;

/// Its size, as set with `TUNSETVNETHDRSZ`.
pub const VNET_HDR_LEN: usize = 10;

/// The checksum from `csum_start` on is still to be computed.
pub const F_NEEDS_CSUM: u8 = 1;

/// GSO types.
pub const GSO_NONE: u8 = 0;
/// TCP over IPv4 (TSO4).
pub const GSO_TCPV4: u8 = 1;
/// TCP over IPv6 (TSO6).
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (USO), either IP version.
pub const GSO_UDP_L4: u8 = 5;
/// Flag on the TCP types: the flow uses ECN (CWR only on the first segment).
pub const GSO_ECN: u8 = 0x80;

/// The header's fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// [`F_NEEDS_CSUM`] or nothing we use.
    pub flags: u8,
    /// One of the `GSO_` types.
    pub gso_type: u8,
    /// Length of the IP and transport headers.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (the transport header).
    pub csum_start: u16,
    /// Where in the transport header the checksum goes.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits a TUN read into its header and the packet.
    pub fn split(buf: &[u8]) -> Result<(VnetHdr, &[u8]), OffloadError> {
        let (h, packet) = buf.split_at_checked(VNET_HDR_LEN).ok_or(OffloadError::Truncated)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        let hdr = VnetHdr {
            flags: h[0],
            gso_type: h[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        };
        Ok((hdr, packet))
    }

    /// The bytes to write in front of a packet.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut out = [0u8; VNET_HDR_LEN];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_and_refuses_short_reads() {
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 60,
            gso_size: 1368,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut buf = hdr.to_bytes().to_vec();
        buf.extend_from_slice(b"packet");
        assert_eq!(VnetHdr::split(&buf).unwrap(), (hdr, &b"packet"[..]));
        assert_eq!(VnetHdr::split(&buf[..9]), Err(OffloadError::Truncated));
    }
}
