//! Log lines for Rampart's processes: what they read like ([`fields`]) and
//! where they go ([`write`]).
//!
//! Lines go to standard error in tracing-subscriber's default layout
//! (`2026-11-29T14:37:21.627973Z  INFO target: message name=value ...`).
//! On a terminal that is tracing-subscriber's own formatter, in colour;
//! otherwise (a file, a pipe to the supervisor or the journal) the same text
//! from [`fields`], with every control character escaped. Threads that ask
//! ([`write::buffer_this_thread`]: the edge's HTTPS workers) gather their
//! lines and write them when they run out of work.

pub mod fields;
pub mod write;

use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber with `filter`: colours when standard
/// error is a terminal, [`fields`] otherwise.
pub fn init(filter: EnvFilter) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(write::Stderr)
        .with_ansi(ansi);
    if ansi {
        logger.init();
    } else {
        logger.fmt_fields(fields::Fields).with_timer(fields::Clock).init();
    }
    // A worker's lines wait for its next idle moment: write them before a
    // panic's message, so the message comes after what led to it.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        write::flush_this_thread();
        report_panic(info);
    }));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    use tracing_subscriber::fmt::{FormatFields, MakeWriter};

    use super::fields::{Clock, Fields};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    fn logged<T>(fields: impl for<'w> FormatFields<'w> + Send + Sync + 'static, timer: T, log: impl FnOnce()) -> String
    where
        T: FormatTime + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .with_timer(timer)
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    /// The same text without the timestamps (which differ by the
    /// microsecond between two runs), checked to be 27 bytes of the shape.
    fn untimed(text: &str) -> String {
        text.lines()
            .map(|line| {
                let (time, rest) = line.split_at(27);
                assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
                rest.to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn ordinary_lines() {
        let peer: std::net::SocketAddr = "198.18.0.9:443".parse().unwrap();
        let id = "0192f0c4-8c3e-7a6b-9a8b-0123456789ab";
        tracing::info!(request_id = id, %peer, method = %"POST", operation = "users.create", status = 201u16, micros = 683u128, "request");
        tracing::warn!(error = %"a \"quoted\" reason", "the {} failed", "hop");
        tracing::info!(
            r#type = "x",
            negative = -3i64,
            yes = true,
            text = "with \"quotes\" and \\",
            big = u64::MAX,
            "message"
        );
        tracing::error!(list = ?["a", "b"], "é, ü and 日本");
        // The core's request span: its fields are formatted by the same
        // `FormatFields` and shown before the event's.
        let span = tracing::info_span!("request", id = "r-2", client = %"127.0.0.1:9", path = "/api/v1/orgs");
        let _entered = span.enter();
        tracing::info!(status = 401u16, ms = 0u64, "answered");
    }

    #[test]
    fn lines_read_as_the_default_formatter_writes_them_without_colour() {
        let ours = logged(Fields, Clock, ordinary_lines);
        assert!(
            ours.contains(
                r#"request request_id="0192f0c4-8c3e-7a6b-9a8b-0123456789ab" peer=198.18.0.9:443 method=POST operation="users.create" status=201 micros=683"#
            ),
            "{ours}"
        );
        assert!(
            ours.contains(
                r#"request{id="r-2" client=127.0.0.1:9 path="/api/v1/orgs"}: logline::tests: answered status=401 ms=0"#
            ),
            "{ours}"
        );
        assert_eq!(ours.lines().count(), 5);
        assert_eq!(
            untimed(&ours),
            untimed(&logged(DefaultFields::new(), SystemTime, ordinary_lines))
        );
    }

    #[test]
    fn nothing_a_value_holds_can_start_a_line_of_its_own() {
        let ours = logged(Fields, Clock, || {
            let forged = "x\n2026-11-29T00:00:00.000000Z  INFO edge_gateway: forged\r\x1b[2J";
            tracing::warn!(error = %forged, sni = forged, "refused: {forged}");
        });
        assert_eq!(ours.lines().count(), 1, "{ours}");
        assert!(!ours.trim_end_matches('\n').contains(['\n', '\r', '\x1b']), "{ours}");
        assert!(ours.contains(r"refused: x\n2026"), "{ours}");
        assert!(ours.contains(r#"sni="x\n2026"#), "{ours}");
    }
}
