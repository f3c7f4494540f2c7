//! Sending: datagrams are encrypted straight into [`BATCH`] slots and sent
//! with one `sendmmsg`. Consecutive datagrams to one endpoint that have the
//! same size share a slot and go out as one UDP GSO message
//! (`UDP_SEGMENT`): the kernel routes and builds one 64 KiB skb instead of
//! ~45, and splits it as late as it can (over veth to a GRO socket, never).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use super::{BATCH, SLOT, msghdr, to_sockaddr};

/// Datagrams per GSO message (the kernel's `UDP_MAX_SEGMENTS` before 6.10).
const MAX_SEGMENTS: usize = 64;
/// Bytes per GSO message: one UDP datagram's limit, less room for headers.
const MAX_GSO_BYTES: usize = 65000;

/// Room for one control message with a u16 in it, aligned for `cmsghdr`.
type Control = [u64; 4];

/// One message: `segs` datagrams of `seg` bytes (the last may be shorter)
/// back to back in a slot, all to `to`.
#[derive(Debug, Clone, Copy, Default)]
struct Msg {
    to: Option<SocketAddr>,
    len: usize,
    seg: usize,
    segs: usize,
}

impl Msg {
    /// Whether a datagram of up to `max_len` bytes may still join.
    fn takes_more(&self, max_len: usize) -> bool {
        self.segs < MAX_SEGMENTS && self.len == self.seg * self.segs && self.len + max_len <= MAX_GSO_BYTES
    }
}

/// Send buffers for one worker: [`SendBatch::slot`], encrypt, then
/// [`SendBatch::commit`]; [`SendBatch::flush`] sends.
#[derive(Debug)]
pub struct SendBatch {
    bufs: Vec<u8>,
    msgs: [Msg; BATCH],
    addrs: Vec<libc::sockaddr_in6>,
    count: usize,
    /// The last slot handed out was the tail of the open message.
    tail: bool,
    /// Whether the kernel takes GSO messages (it refuses them on routes
    /// without checksum offload).
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        // SAFETY: an all-zero sockaddr_in6 is a valid value of the type.
        let zero: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        SendBatch {
            bufs: vec![0; BATCH * SLOT],
            msgs: [Msg::default(); BATCH],
            addrs: vec![zero; BATCH],
            count: 0,
            tail: false,
            gso: true,
        }
    }
}

impl SendBatch {
    /// Messages queued (each one datagram or a GSO run of them).
    pub fn messages(&self) -> usize {
        self.count
    }

    /// Datagrams queued.
    pub fn datagrams(&self) -> usize {
        self.msgs[..self.count].iter().map(|m| m.segs).sum()
    }

    /// Whether every slot is taken: flush before the next datagram.
    pub fn is_full(&self) -> bool {
        self.count == BATCH
    }

    /// Where to write the next datagram, of at most `max_len` bytes: behind
    /// the open message's datagrams if it could join them, else a fresh
    /// slot. Call only when not [`Self::is_full`].
    pub fn slot(&mut self, max_len: usize) -> &mut [u8] {
        self.tail = false;
        if let Some(last) = self.count.checked_sub(1)
            && self.gso
            && self.msgs[last].takes_more(max_len)
        {
            self.tail = true;
            let start = last * SLOT + self.msgs[last].len;
            return &mut self.bufs[start..(last + 1) * SLOT];
        }
        let start = self.count.min(BATCH - 1) * SLOT;
        &mut self.bufs[start..start + SLOT]
    }

    /// Queues the first `len` bytes written to the last [`Self::slot`].
    pub fn commit(&mut self, to: SocketAddr, len: usize) {
        let len = len.min(SLOT);
        if std::mem::take(&mut self.tail)
            && let Some(last) = self.count.checked_sub(1)
        {
            let open = self.msgs[last];
            if open.to == Some(to) && len <= open.seg && len > 0 {
                self.msgs[last].len += len;
                self.msgs[last].segs += 1;
                return;
            }
            // Another endpoint or a bigger datagram: it starts its own
            // message (a copy, at most once per message).
            if self.count == BATCH {
                return;
            }
            let from = last * SLOT + open.len;
            self.bufs.copy_within(from..from + len, self.count * SLOT);
        }
        if self.count < BATCH {
            self.msgs[self.count] = Msg {
                to: Some(to),
                len,
                seg: len,
                segs: 1,
            };
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
        self.slot(len)[..len].copy_from_slice(&datagram[..len]);
        self.commit(to, len);
    }

    /// Sends everything queued. A message the kernel refuses is dropped,
    /// as the network would drop it: WireGuard retransmits handshakes and
    /// the inner protocol retransmits data.
    pub fn flush(&mut self, socket: &UdpSocket) {
        let mut sent = 0;
        while sent < self.count {
            match self.send_from(socket, sent) {
                Ok(n) => sent += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.msgs[sent].segs > 1 && gso_refused(&e) {
                        tracing::warn!(error = %e, "UDP GSO refused; sending one datagram per message from now on");
                        self.gso = false;
                        self.send_one_by_one(socket, sent);
                    }
                    // Otherwise the head message is the one refused (or the
                    // socket buffer is full, and dropping is what UDP does).
                    sent += 1;
                }
            }
        }
        self.count = 0;
        self.tail = false;
    }

    /// One `sendmmsg` of the messages from `start` on; returns how many
    /// went.
    fn send_from(&mut self, socket: &UdpSocket, start: usize) -> io::Result<usize> {
        let msgs = &self.msgs[start..self.count];
        let mut iovs: Vec<libc::iovec> = self.bufs[start * SLOT..]
            .chunks_mut(SLOT)
            .zip(msgs)
            .map(|(chunk, m)| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: m.len,
            })
            .collect();
        let mut controls: Vec<Control> = vec![[0; 4]; msgs.len()];
        let mut hdrs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.addrs[start..self.count].iter_mut())
            .zip(controls.iter_mut().zip(msgs))
            .map(|((iov, addr), (control, m))| {
                let mut msg_hdr = msghdr(iov, addr);
                if m.segs > 1 {
                    set_segment_size(&mut msg_hdr, control, m.seg as u16);
                }
                libc::mmsghdr { msg_hdr, msg_len: 0 }
            })
            .collect();
        // SAFETY: as in `RecvBatch::recv`: every header points at live
        // iovecs, addresses and control buffers, the iovecs at initialised
        // bytes within `self.bufs`; sendmmsg only reads them.
        let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends message `i`'s datagrams one `sendto` each.
    fn send_one_by_one(&self, socket: &UdpSocket, i: usize) {
        let m = self.msgs[i];
        let Some(to) = m.to else { return };
        let to = SocketAddr::V6(std::net::SocketAddrV6::new(
            match to {
                SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped(),
                SocketAddr::V6(v6) => *v6.ip(),
            },
            to.port(),
            0,
            0,
        ));
        for datagram in self.bufs[i * SLOT..i * SLOT + m.len].chunks(m.seg.max(1)) {
            let _ = socket.send_to(datagram, to);
        }
    }
}

/// Errors that mean "no GSO here" rather than "not now".
fn gso_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP))
}

/// Attaches a `UDP_SEGMENT` control message to `hdr`.
fn set_segment_size(hdr: &mut libc::msghdr, control: &mut Control, size: u16) {
    // SAFETY: pure arithmetic on constants.
    let (space, len) = unsafe { (libc::CMSG_SPACE(2) as usize, libc::CMSG_LEN(2) as usize) };
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space;
    // SAFETY: the control buffer is 32 bytes, aligned for cmsghdr and at
    // least CMSG_SPACE(2) (24), so CMSG_FIRSTHDR returns its start and the
    // header and its two data bytes lie inside it; the data may be
    // unaligned, so it is written as such.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = len;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
    }
}
