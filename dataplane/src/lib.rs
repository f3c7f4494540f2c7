//! The tunnel process: a WireGuard-compatible userspace tunnel.
//!
//! A placeholder: the request path comes first. The dataplane issue brings
//! the sans-IO protocol core and its I/O shell here.
