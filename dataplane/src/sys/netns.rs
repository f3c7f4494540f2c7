//! Entering a named network namespace (`ip netns add NAME` makes
//! `/run/netns/NAME`), so an operator (or a test) can keep the VPN's
//! interface and routes apart from the host's.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use super::check;

/// Moves the calling thread into the namespace. Call it first, on the main
/// thread, before any socket or thread exists: both inherit it from there.
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a namespace name, not a path",
        ));
    }
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for
    // the duration of the call.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}
