//! The edge's log: its filter, and the `logline` subscriber (its HTTPS
//! workers gather their lines: `crate::workers`).

use tracing_subscriber::EnvFilter;

/// The log filter: `RUST_LOG`, or `info`. rustls warns about every client
/// whose SNI is malformed (an IP address, say), which would let anyone fill
/// the log with one line per handshake; its warnings are off unless
/// `RUST_LOG` names rustls itself.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let wanted = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let directives = if wanted.contains("rustls") {
        wanted.to_owned()
    } else {
        format!("{wanted},rustls=error")
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,rustls=error"))
}

/// Installs the process's subscriber, `rust_log` read as [`filter`] reads it.
pub fn init(rust_log: Option<&str>) {
    logline::init(filter(rust_log));
}
