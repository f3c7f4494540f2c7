//! The UDP side: one dual-stack socket per worker on the same port
//! (`SO_REUSEPORT`, so the kernel spreads clients across workers by their
//! address), and `recvmmsg`/`sendmmsg` batches so one syscall moves up to
//! [`BATCH`] datagrams.
//!
//! Buffers are allocated once per worker. The `mmsghdr`/`iovec` arrays point
//! into them, so they are rebuilt on each call rather than stored (a struct
//! pointing into itself would be unsound to move).

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::check;

/// Datagrams per syscall.
pub const BATCH: usize = 64;
/// The largest datagram a slot holds: room for 64 KiB packets once UDP GRO
/// and TUN offloads deliver them.
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

/// Receive buffers for one worker.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    addrs: Vec<libc::sockaddr_in6>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        // SAFETY: an all-zero sockaddr_in6 is a valid value of the type.
        let zero: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        RecvBatch {
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            addrs: vec![zero; BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// Receives what is waiting, without blocking; returns how many.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_exact_mut(SLOT)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: SLOT,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.addrs.iter_mut())
            .map(|(iov, addr)| libc::mmsghdr {
                msg_hdr: msghdr(iov, addr),
                msg_len: 0,
            })
            .collect();
        // SAFETY: every header points at a live iovec and sockaddr in `iovs`
        // and `self.addrs`, each iovec at a distinct SLOT-sized part of
        // `self.bufs`; all outlive the call, which writes within those bounds.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            self.count = 0;
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(err)
            };
        }
        self.count = n as usize;
        for (len, hdr) in self.lens.iter_mut().zip(&hdrs).take(self.count) {
            *len = hdr.msg_len as usize;
        }
        Ok(self.count)
    }

    /// The `i`th datagram of the last receive and who sent it.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.count {
            return None;
        }
        let from = from_sockaddr(&self.addrs[i])?;
        Some((from, &self.bufs[i * SLOT..i * SLOT + self.lens[i].min(SLOT)]))
    }
}

/// Send buffers for one worker: fill slots, then [`SendBatch::flush`].
#[derive(Debug)]
pub struct SendBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    addrs: Vec<libc::sockaddr_in6>,
    count: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        // SAFETY: an all-zero sockaddr_in6 is a valid value of the type.
        let zero: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        SendBatch {
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            addrs: vec![zero; BATCH],
            count: 0,
        }
    }
}

impl SendBatch {
    /// Whether another datagram fits.
    pub fn is_full(&self) -> bool {
        self.count == BATCH
    }

    /// The next free slot, to encrypt into.
    pub fn slot(&mut self) -> &mut [u8] {
        let start = self.count.min(BATCH - 1) * SLOT;
        &mut self.bufs[start..start + SLOT]
    }

    /// Queues the first `len` bytes of the slot from [`SendBatch::slot`].
    pub fn commit(&mut self, to: SocketAddr, len: usize) {
        if self.count < BATCH {
            self.lens[self.count] = len.min(SLOT);
            self.addrs[self.count] = to_sockaddr(to);
            self.count += 1;
        }
    }

    /// Queues a copy of `datagram`; sends first if the batch is full.
    pub fn push(&mut self, socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) {
        if self.is_full() {
            self.flush(socket);
        }
        let len = datagram.len().min(SLOT);
        self.slot()[..len].copy_from_slice(&datagram[..len]);
        self.commit(to, len);
    }

    /// Sends everything queued. A datagram the kernel refuses is dropped,
    /// as the network would drop it: WireGuard retransmits handshakes and
    /// the inner protocol retransmits data.
    pub fn flush(&mut self, socket: &UdpSocket) {
        let mut sent = 0;
        while sent < self.count {
            let mut iovs: Vec<libc::iovec> = self.bufs[sent * SLOT..]
                .chunks_exact_mut(SLOT)
                .zip(&self.lens[sent..self.count])
                .map(|(chunk, &len)| libc::iovec {
                    iov_base: chunk.as_mut_ptr().cast(),
                    iov_len: len,
                })
                .collect();
            let mut hdrs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .zip(self.addrs[sent..self.count].iter_mut())
                .map(|(iov, addr)| libc::mmsghdr {
                    msg_hdr: msghdr(iov, addr),
                    msg_len: 0,
                })
                .collect();
            // SAFETY: as in `recv`: every header points at live iovecs and
            // addresses, the iovecs at initialised bytes within `self.bufs`;
            // sendmmsg only reads them.
            let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
            if n <= 0 {
                let err = io::Error::last_os_error();
                if n < 0 && err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the datagram at the head: it is the one refused (or
                // the socket buffer is full, and dropping is what UDP does).
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
        self.count = 0;
    }
}

fn msghdr(iov: &mut libc::iovec, addr: &mut libc::sockaddr_in6) -> libc::msghdr {
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

fn from_sockaddr(addr: &libc::sockaddr_in6) -> Option<SocketAddr> {
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

    #[test]
    fn a_batch_crosses_loopback() {
        let rx = bind(0, 0).expect("bind");
        let port = rx.local_addr().expect("addr").port();
        let tx = bind(0, 0).expect("bind tx");
        let mut send = SendBatch::default();
        for i in 0..3u8 {
            send.push(&tx, SocketAddr::from(([127, 0, 0, 1], port)), &[i; 10]);
        }
        let mut recv = RecvBatch::default();
        send.flush(&tx);
        let mut got = 0;
        for _ in 0..100 {
            got += recv.recv(&rx).expect("recv");
            if got >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, 3);
        let (from, data) = recv.get(0).expect("first");
        assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
        assert_eq!(data, &[0u8; 10]);
    }
}
