//! Receiving: one `recvmmsg` fills up to [`BATCH`] slots. With UDP GRO a
//! slot may hold many datagrams from one sender, all of the size the
//! control message gives (the last may be shorter).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use super::{BATCH, SLOT, from_sockaddr, msghdr};

/// Room for one control message with an int in it, aligned for `cmsghdr`.
type Control = [u64; 4];

/// Receive buffers for one worker.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    /// The GRO segment size of each message; 0 when it is one datagram.
    segs: [usize; BATCH],
    addrs: Vec<libc::sockaddr_in6>,
    controls: Vec<Control>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        // SAFETY: an all-zero sockaddr_in6 is a valid value of the type.
        let zero: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        RecvBatch {
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            segs: [0; BATCH],
            addrs: vec![zero; BATCH],
            controls: vec![[0; 4]; BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// Receives what is waiting, without blocking; returns how many
    /// messages (each one or more datagrams).
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
            .zip(self.controls.iter_mut())
            .map(|((iov, addr), control)| {
                let mut msg_hdr = msghdr(iov, addr);
                msg_hdr.msg_control = control.as_mut_ptr().cast();
                msg_hdr.msg_controllen = std::mem::size_of::<Control>();
                libc::mmsghdr { msg_hdr, msg_len: 0 }
            })
            .collect();
        // SAFETY: every header points at a live iovec, sockaddr and control
        // buffer in `iovs`, `self.addrs` and `self.controls`, each iovec at a
        // distinct SLOT-sized part of `self.bufs`; all outlive the call,
        // which writes within the lengths given.
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
        for ((len, seg), hdr) in self
            .lens
            .iter_mut()
            .zip(self.segs.iter_mut())
            .zip(&hdrs)
            .take(self.count)
        {
            *len = hdr.msg_len as usize;
            *seg = gro_size(&hdr.msg_hdr);
        }
        Ok(self.count)
    }

    /// The datagrams of the `i`th message of the last receive, and who
    /// sent them.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, std::slice::Chunks<'_, u8>)> {
        if i >= self.count {
            return None;
        }
        let from = from_sockaddr(self.addrs.get(i)?)?;
        let data = self.bufs.get(i * SLOT..i * SLOT + self.lens.get(i)?.min(&SLOT))?;
        let seg = match self.segs.get(i) {
            Some(&s) if s > 0 => s,
            _ => data.len().max(1),
        };
        Some((from, data.chunks(seg)))
    }
}

/// The `UDP_GRO` segment size among a received message's control data.
fn gro_size(hdr: &libc::msghdr) -> usize {
    // SAFETY: `hdr` is the header the kernel just filled: its control
    // pointer and length describe our buffer, which CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within (they return null past its end).
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: a non-null result points at a whole cmsghdr inside the
        // buffer.
        let c = unsafe { &*cmsg };
        // SAFETY: pure arithmetic on a constant.
        let int_len = unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as libc::c_uint) } as usize;
        if c.cmsg_level == libc::SOL_UDP && c.cmsg_type == libc::UDP_GRO && c.cmsg_len >= int_len {
            // SAFETY: cmsg_len says an int follows the header, inside the
            // buffer; it may be unaligned, so read it as such.
            let size = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>()) };
            return usize::try_from(size).unwrap_or(0);
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header it returned.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    0
}
