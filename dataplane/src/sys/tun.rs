//! The TUN device: one file descriptor per queue (`IFF_MULTI_QUEUE`), so
//! each worker reads and writes its own queue without sharing a lock in the
//! kernel.
//!
//! Every packet is preceded by a `virtio_net_hdr` (`IFF_VNET_HDR`; still no
//! packet-information header, `IFF_NO_PI`): with TSO (and USO where the kernel has it) enabled,
//! one read yields up to 64 KiB of one TCP flow, which
//! [`crate::offload::segment`] splits, and one write may carry a coalesced
//! super-packet ([`crate::offload::Coalescer`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::check;
use crate::offload::VNET_HDR_LEN;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags, padded
/// to the kernel's 40 bytes.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Checks an interface name the way the kernel will: 1 to 15 bytes, no `/`,
/// no whitespace, not `.` or `..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Opens `n` handles on the TUN device, to become queues in [`open`]. A
/// separate step because /dev/net/tun is root-only on some systems: the
/// tunnel opens these while still root, then drops to its user.
pub fn open_devices(n: usize) -> io::Result<Vec<File>> {
    (0..n.max(1))
        .map(|_| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")
        })
        .collect()
}

/// Makes each of `devices` (from [`open_devices`]) a queue of the TUN
/// interface `name`, creating it. The interface lives as long as one queue
/// is open: when the process ends, it is gone.
pub fn open(name: &str, devices: Vec<File>) -> io::Result<Vec<File>> {
    if !valid_name(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // The flag constants are c_int in libc but the field is a short; all fit.
    req.flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | libc::IFF_VNET_HDR) as libc::c_short;
    for file in &devices {
        // SAFETY: TUNSETIFF reads (and may write back the name into) a
        // 40-byte ifreq; `req` is exactly that layout and lives across the call.
        check(unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReqFlags) })?;
        let size = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer, which
        // is live across the call.
        check(unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size as *const libc::c_int) })?;
    }
    Ok(devices)
}

/// Which offloads the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offloads {
    /// Checksum, TSO4/6 and USO4/6.
    TsoUso,
    /// Checksum and TSO4/6 (a kernel before 6.2 has no USO on TUN).
    Tso,
    /// None: every read is one plain packet (the virtio header is still
    /// there, all zero).
    Plain,
}

/// Enables the most offloads the kernel accepts on `queue` (the setting is
/// the device's: one queue is enough). Never fails: without offloads the
/// tunnel still works, one packet per read.
pub fn enable_offloads(queue: &File) -> Offloads {
    const TSO: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    const USO: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;
    for (flags, which) in [(TSO | USO, Offloads::TsoUso), (TSO, Offloads::Tso)] {
        // SAFETY: TUNSETOFFLOAD takes its argument by value, not a pointer.
        let ret = unsafe { libc::ioctl(queue.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) };
        if ret == 0 {
            return which;
        }
    }
    Offloads::Plain
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn names_are_checked_like_the_kernel_does() {
        assert!(valid_name("rp0"));
        assert!(valid_name("rp-0123456789ab"));
        assert!(!valid_name("rp-0123456789abc"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
        assert!(!valid_name("a b"));
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }
}
