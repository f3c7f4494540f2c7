//! The TUN device: one file descriptor per queue (`IFF_MULTI_QUEUE`), so
//! each worker reads and writes its own queue without sharing a lock in the
//! kernel.
//!
//! Packets are plain IP (`IFF_NO_PI`). The offload path (`IFF_VNET_HDR`
//! with TSO/USO, one 64 KiB super-packet per read) slots in here later: the
//! workers already hand whole buffers around, not single MTU-sized frames.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::check;

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
    req.flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as libc::c_short;
    for file in &devices {
        // SAFETY: TUNSETIFF reads (and may write back the name into) a
        // 40-byte ifreq; `req` is exactly that layout and lives across the call.
        check(unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReqFlags) })?;
    }
    Ok(devices)
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
