//! The UDP side: one dual-stack socket per worker on the same port
//! (`SO_REUSEPORT`, so the kernel spreads clients across workers by their
//! address), and `recvmmsg`/`sendmmsg` batches so one syscall moves up to
//! [`BATCH`] messages. With UDP GSO ([`SendBatch`]) one message carries
//! many equal-sized datagrams to one endpoint; with UDP GRO ([`RecvBatch`])
//! the kernel hands over many datagrams from one sender in one message.
//!
//! Buffers are allocated once per worker. The `mmsghdr`/`iovec` arrays point
//! into them, so they are rebuilt on each call rather than stored (a struct
//! pointing into itself would be unsound to move).

mod recv;
mod send;

pub use recv::RecvBatch;
pub use send::SendBatch;

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::check;

/// Datagrams per syscall.
pub const BATCH: usize = 64;
/// The largest message a slot holds: 64 KiB, what UDP GRO and GSO move at
/// once (and the largest packet the TUN hands over).
pub const SLOT: usize = 65536 + 64;

/// Binds `[::]:port` (IPv4 too, as mapped addresses) with `SO_REUSEPORT`,
/// non-blocking, with the given buffer sizes (0: the kernel default).
pub fn bind(port: u16, buffer: u32) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` is fresh and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    // Receive coalesced datagrams where the kernel can (a GSO send over
    // veth arrives whole). Old kernels lack it: then one datagram each.
    if setsockopt(&fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_err() {
        tracing::info!("UDP GRO not available; receiving one datagram per message");
    }
    if buffer > 0 {
        let size = libc::c_int::try_from(buffer).unwrap_or(libc::c_int::MAX);
        // The FORCE variants pass the sysctl cap; they need CAP_NET_ADMIN,
        // which setup still has. Without it, fall back to the capped ones.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt(&fd, libc::SOL_SOCKET, force, size).is_err() {
                setsockopt(&fd, libc::SOL_SOCKET, plain, size)?;
            }
        }
    }
    let addr = to_sockaddr(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
    // SAFETY: `addr` is a sockaddr_in6 whose size is passed with it.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })?;
    Ok(UdpSocket::from(fd))
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int that lives across the call, and its
    // size is passed with it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub(super) fn msghdr(iov: &mut libc::iovec, addr: &mut libc::sockaddr_in6) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no control data, no flags).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = (addr as *mut libc::sockaddr_in6).cast();
    hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
    hdr
}

/// An address as the dual-stack socket wants it (IPv4 as `::ffff:a.b.c.d`).
pub fn to_sockaddr(addr: SocketAddr) -> libc::sockaddr_in6 {
    let v6 = match addr {
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => a,
    };
    // SAFETY: an all-zero sockaddr_in6 is valid; the fields are set below.
    let mut out: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    out.sin6_port = v6.port().to_be();
    out.sin6_flowinfo = v6.flowinfo();
    out.sin6_addr = libc::in6_addr {
        s6_addr: v6.ip().octets(),
    };
    out.sin6_scope_id = v6.scope_id();
    out
}

pub(super) fn from_sockaddr(addr: &libc::sockaddr_in6) -> Option<SocketAddr> {
    if addr.sin6_family != libc::AF_INET6 as libc::sa_family_t {
        return None;
    }
    let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
    let port = u16::from_be(addr.sin6_port);
    Some(match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::new(v4.into(), port),
        None => SocketAddr::V6(SocketAddrV6::new(ip, port, addr.sin6_flowinfo, addr.sin6_scope_id)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn addresses_round_trip_through_the_dual_stack_form() {
        for s in ["198.18.0.1:51820", "[2001:db8::1]:1"] {
            let addr: SocketAddr = s.parse().expect("addr");
            assert_eq!(from_sockaddr(&to_sockaddr(addr)), Some(addr));
        }
    }

    /// Receives until `want` datagrams arrived (bounded); returns them.
    fn receive(rx: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
        let mut recv = RecvBatch::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = recv.recv(rx).expect("recv");
            for i in 0..n {
                let (from, datagrams) = recv.get(i).expect("message");
                assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
                got.extend(datagrams.map(<[u8]>::to_vec));
            }
            if got.len() >= want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn a_batch_crosses_loopback() {
        let rx = bind(0, 0).expect("bind");
        let port = rx.local_addr().expect("addr").port();
        let tx = bind(0, 0).expect("bind tx");
        let mut send = SendBatch::default();
        for i in 0..3u8 {
            send.push(&tx, SocketAddr::from(([127, 0, 0, 1], port)), &[i; 10]);
        }
        send.flush(&tx);
        let got = receive(&rx, 3);
        assert_eq!(got, vec![vec![0u8; 10], vec![1; 10], vec![2; 10]]);
    }

    /// Equal-sized datagrams to one endpoint share a GSO message; the
    /// receiver (GRO or not) still sees each datagram on its own, in order,
    /// and a different size or endpoint starts a new message.
    #[test]
    fn gso_messages_arrive_as_separate_datagrams() {
        let rx = bind(0, 0).expect("bind");
        let other = bind(0, 0).expect("bind other");
        let to = SocketAddr::from(([127, 0, 0, 1], rx.local_addr().expect("addr").port()));
        let to_other = SocketAddr::from(([127, 0, 0, 1], other.local_addr().expect("addr").port()));
        let tx = bind(0, 0).expect("bind tx");
        let mut send = SendBatch::default();
        let mut want = Vec::new();
        for i in 0..40u8 {
            let len = if i == 39 { 100 } else { 1200 };
            let slot = send.slot(len);
            slot[..len].fill(i);
            send.commit(to, len);
            want.push(vec![i; len]);
        }
        send.push(&tx, to_other, b"elsewhere");
        send.push(&tx, to, &[7; 1300]);
        want.push(vec![7; 1300]);
        assert_eq!(send.messages(), 3, "one GSO message, then two more");
        send.flush(&tx);
        assert_eq!(receive(&rx, want.len()), want);
        assert_eq!(receive(&other, 1), vec![b"elsewhere".to_vec()]);
    }
}
