//! Passing open descriptors between Rampart's processes over a Unix stream
//! socket (`SCM_RIGHTS`), without `unsafe`.
//!
//! `rampart serve` uses it to hand the edge the ports it bound as root, and
//! the core uses it to hand the supervisor a tunnel's control socket. Each
//! message is small (one line); descriptors travel with its first byte.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// The most descriptors one message may carry.
pub const MAX_FDS: usize = 4;

/// Sends `bytes` with `fds` attached. Returns how many bytes went out (the
/// descriptors went with the first of them); a short count needs the rest
/// sent with a plain write.
pub fn send(socket: impl AsFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("the descriptors do not fit the control buffer"));
    }
    Ok(rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// Receives into `buf`, collecting any descriptors that came along
/// (close-on-exec). `Ok((0, _))` is end-of-file.
pub fn recv(socket: impl AsFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        socket,
        &mut [io::IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors came than expected",
        ));
    }
    Ok((got.bytes, fds))
}

/// Reads one line (up to `max` bytes, newline excluded) and the descriptors
/// sent with it, from a blocking socket. Reads one byte at a time past the
/// first message so nothing after the line is consumed.
pub fn recv_line(socket: impl AsFd, max: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        let (n, more) = recv(socket.as_fd(), &mut byte)?;
        fds.extend(more);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the end of the line",
            ));
        }
        if byte[0] == b'\n' {
            return Ok((line, fds));
        }
        if line.len() >= max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        line.push(byte[0]);
    }
}

/// Sends all of `line` on a non-blocking socket, `fds` with its first
/// byte.
pub async fn send_line_async(socket: &tokio::net::UnixStream, line: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut sent = socket
        .async_io(tokio::io::Interest::WRITABLE, || send(socket, line, fds))
        .await?;
    while sent < line.len() {
        sent += socket
            .async_io(tokio::io::Interest::WRITABLE, || send(socket, &line[sent..], &[]))
            .await?;
    }
    Ok(())
}

/// Reads one line (at most `max` bytes, newline excluded) and the
/// descriptors sent with it from a non-blocking socket; `None` at
/// end-of-file before the line began. Both sides of the launcher protocol
/// send one line and wait for the answer, so bytes after the newline mean
/// the peer is out of step: an error.
pub async fn recv_line_async(
    socket: &tokio::net::UnixStream,
    max: usize,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    loop {
        let mut buf = [0u8; 512];
        let (n, more) = socket
            .async_io(tokio::io::Interest::READABLE, || recv(socket, &mut buf))
            .await?;
        fds.extend(more);
        if n == 0 {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-line"))
            };
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            if end + 1 != line.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a second line before the answer",
                ));
            }
            line.truncate(end);
            return Ok(Some((line, fds)));
        }
        if line.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_travel_with_the_line_and_nothing_after_it_is_taken() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut x, y) = UnixStream::pair().unwrap();
        let sent = send(&a, b"hello\n", &[y.as_fd()]).unwrap();
        assert_eq!(sent, 6);
        (&a).write_all(b"after").unwrap();
        drop(y);
        let (line, fds) = recv_line(&b, 64).unwrap();
        assert_eq!(line, b"hello");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the other end of x.
        let mut y = UnixStream::from(fds.into_iter().next().unwrap());
        y.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        x.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        let mut rest = [0u8; 5];
        (&b).read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"after");
    }

    #[test]
    fn long_lines_and_early_ends_are_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"0123456789").unwrap();
        assert_eq!(recv_line(&b, 4).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (c, d) = UnixStream::pair().unwrap();
        (&c).write_all(b"no newline").unwrap();
        drop(c);
        assert_eq!(recv_line(&d, 64).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
