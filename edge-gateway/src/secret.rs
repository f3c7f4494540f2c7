//! The per-install origin secret: the edge's proof, to the core, that a
//! request came through it.

use std::fmt;
use std::io::{BufRead, Read};

use http::HeaderValue;

/// Why the secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading failed.
    #[error("reading the origin secret from {from}: {source}")]
    Io {
        /// `stdin` or the file's path.
        from: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The secret is not 64 hex characters.
    #[error("the origin secret from {0} is not 64 hex characters")]
    Malformed(String),
}

/// The secret, as the hex text sent in the proof header. Never printed.
#[derive(Clone)]
pub struct OriginSecret(String);

impl fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginSecret(<redacted>)")
    }
}

impl OriginSecret {
    /// Parses 64 hex characters.
    pub fn parse(text: &str, from: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.len() != 64 || hex::decode(text).is_err() {
            return Err(SecretError::Malformed(from.to_owned()));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The proof header's value, marked sensitive so it is never logged.
    pub fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// Reads the secret from `spec`: a file path, or `-` for the first line of
/// standard input. Returns whether stdin was used, so the caller can watch it
/// for the supervisor's death.
pub fn read(spec: &str) -> Result<(OriginSecret, bool), SecretError> {
    if spec == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|source| SecretError::Io {
                from: "stdin".into(),
                source,
            })?;
        return Ok((OriginSecret::parse(&line, "stdin")?, true));
    }
    let text = std::fs::read_to_string(spec).map_err(|source| SecretError::Io {
        from: spec.into(),
        source,
    })?;
    Ok((OriginSecret::parse(&text, spec)?, false))
}

/// Listeners bound by the supervisor and handed over with the secret.
#[derive(Debug)]
pub struct Inherited {
    /// The plain-HTTP listener.
    pub http: std::net::TcpListener,
    /// The HTTPS listener.
    pub https: std::net::TcpListener,
}

/// Reads the secret's line from standard input together with the two
/// listeners sent with it (HTTP first). Nothing after the line is read, so
/// [`watch_stdin`] still sees the supervisor go.
pub fn read_with_listeners() -> Result<(OriginSecret, Inherited), SecretError> {
    use std::os::fd::AsFd;
    let io_error = |source| SecretError::Io {
        from: "stdin".into(),
        source,
    };
    let stdin = std::io::stdin();
    let (line, fds) = confine::handoff::recv_line(stdin.as_fd(), 256).map_err(io_error)?;
    let secret = OriginSecret::parse(&String::from_utf8_lossy(&line), "stdin")?;
    let [http, https]: [std::os::fd::OwnedFd; 2] = fds.try_into().map_err(|fds: Vec<_>| {
        io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("expected 2 listeners with the secret, got {}", fds.len()),
        ))
    })?;
    let listener = |fd: std::os::fd::OwnedFd| -> Result<std::net::TcpListener, SecretError> {
        let listener = std::net::TcpListener::from(fd);
        // A descriptor that is not a listening TCP socket fails here.
        listener.local_addr().map_err(io_error)?;
        listener.set_nonblocking(true).map_err(io_error)?;
        Ok(listener)
    };
    Ok((
        secret,
        Inherited {
            http: listener(http)?,
            https: listener(https)?,
        },
    ))
}

/// Blocks until standard input ends, then calls `on_eof`. Run on its own
/// thread: the supervisor holds the other end of the pipe, so end of input
/// means it is gone and this process should stop too.
pub fn watch_stdin(on_eof: impl FnOnce()) {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    on_eof();
}
