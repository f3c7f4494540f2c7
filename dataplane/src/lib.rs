//! The tunnel process: a WireGuard-compatible userspace tunnel.
//!
//! # Layout
//! - [`engine`] and [`peers`]: the sans-IO core. Datagrams and packets in,
//!   datagrams and packets out; the WireGuard protocol itself is boringtun's
//!   `noise` module (Noise IKpsk2, cookies, timers, replay window).
//! - [`shell`]: the I/O around it: one worker thread per core, each with its
//!   own TUN queue and `SO_REUSEPORT` UDP socket, `recvmmsg`/`sendmmsg`
//!   batches, and a timer thread.
//! - [`control`]: the loop that serves the core's requests
//!   ([`schemas::tunnel`]) on the inherited control socket.
//! - [`offload`]: splitting the TUN's TSO super-packets and coalescing
//!   decrypted TCP segments into GSO writes, sans-IO.
//! - [`setup`]: creating the interface and sockets, before the sandbox.
//! - [`sandbox`]: dropping capabilities, no-new-privs, Landlock (no
//!   filesystem, no TCP) and the seccomp allowlist.
//! - [`sys`]: the syscalls (TUN, netlink, batched UDP, namespaces), the only
//!   place with `unsafe` besides the sandbox.

pub mod control;
pub mod engine;
pub mod offload;
pub mod peers;
#[allow(unsafe_code)]
pub mod sandbox;
pub mod setup;
pub mod shell;
#[allow(unsafe_code)]
pub mod sys;
