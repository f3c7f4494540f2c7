//! The syscalls the tunnel needs that std does not wrap: the TUN device,
//! rtnetlink, batched UDP, network namespaces and `poll`. Each `unsafe` block
//! says why it is sound; nothing outside this module and
//! [`crate::sandbox`] may use `unsafe`.

pub mod netlink;
pub mod netns;
pub mod poll;
pub mod tun;
pub mod udp;

use std::io;

/// Turns a libc return value into an `io::Result`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
