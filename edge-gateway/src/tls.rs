//! TLS: the server configuration and the certificate it presents.
//!
//! The certificate sits behind [`CertStore`], a resolver that can be swapped
//! while connections are open (ACME renewals replace it in place). On first
//! start, with no certificate, the edge makes a self-signed one and says so
//! loudly.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file did not hold what it should.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The provider every TLS object in the edge uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocol of TLS-ALPN-01 challenge handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate currently presented; replaceable at run time. It also
/// holds the TLS-ALPN-01 challenge certificates, presented only to a
/// ClientHello that offers `acme-tls/1` for their name.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    /// A store presenting `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(key),
            challenges: RwLock::new(HashMap::new()),
        }
    }

    /// Presents `key` to `acme-tls/1` handshakes for `domain`.
    pub fn set_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        let mut map = self
            .challenges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(domain.to_ascii_lowercase(), key);
    }

    /// Stops presenting the challenge certificate for `domain`.
    pub fn remove_challenge(&self, domain: &str) {
        let mut map = self
            .challenges
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&domain.to_ascii_lowercase());
    }

    /// The challenge certificate for `domain`, if any.
    pub fn challenge(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let map = self
            .challenges
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&domain.to_ascii_lowercase()).cloned()
    }

    /// Presents `key` to every handshake from now on; open connections keep
    /// the certificate they negotiated.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    /// The certificate presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Whether a ClientHello asks for a TLS-ALPN-01 challenge.
pub fn offers_acme_alpn(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if offers_acme_alpn(&hello) {
            // Only the challenge certificate, never the real one: a
            // validation handshake must see exactly what RFC 8737 asks for,
            // and without one the handshake fails.
            return hello.server_name().and_then(|name| self.challenge(name));
        }
        Some(self.current())
    }
}

/// The rustls server configuration: TLS 1.3 and 1.2, AEAD suites only (the
/// ring provider offers no others), ALPN h2 then http/1.1.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    // acme-tls/1 last: a normal client never offers it, and the server's
    // order decides; the connection loop closes such connections right
    // after the handshake.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// Where the edge keeps its certificate.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM, mode 0600.
    pub key: PathBuf,
}

impl CertFiles {
    /// The files under the edge's state directory.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        let dir = state_dir.join("tls");
        Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Present while the certificate is one the edge made itself.
    fn self_signed_marker(&self) -> PathBuf {
        self.cert.with_file_name("self-signed")
    }
}

/// What [`load_or_create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the files.
    Loaded,
    /// Made a new self-signed certificate and wrote it.
    CreatedSelfSigned,
}

/// How long a self-signed certificate is valid: the longest validity
/// browsers accept for any certificate.
const SELF_SIGNED_DAYS: i64 = 397;
/// A self-signed certificate this close to expiry is replaced at start.
const SELF_SIGNED_RENEW_DAYS: i64 = 30;

/// Loads the certificate, or makes a self-signed one for `names` when there
/// is none yet or the self-signed one is about to expire. A marker file
/// beside a self-signed certificate records its expiry (unix seconds), so an
/// operator's own certificate is never replaced.
pub fn load_or_create(files: &CertFiles, names: &[String]) -> Result<(Arc<CertifiedKey>, Origin), TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let marker = files.self_signed_marker();
    let self_signed_expiring = fs::read_to_string(&marker)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .is_some_and(|not_after| not_after - now.unix_timestamp() < SELF_SIGNED_RENEW_DAYS * 86_400);
    if files.cert.exists() && files.key.exists() && !self_signed_expiring {
        return Ok((load(files)?, Origin::Loaded));
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    params.not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let dir = files.cert.parent().unwrap_or(Path::new("."));
    // The state directory and its tls/ are the edge's alone: 0700 both, so
    // no other user can even list what is there.
    for d in [dir.parent().unwrap_or(dir), dir] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|source| TlsError::Io {
                path: d.to_owned(),
                source,
            })?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(|source| TlsError::Io {
            path: d.to_owned(),
            source,
        })?;
    }
    write_private(&files.key, key.serialize_pem().as_bytes())?;
    write_private(&files.cert, cert.pem().as_bytes())?;
    write_private(&marker, not_after.unix_timestamp().to_string().as_bytes())?;
    Ok((load(files)?, Origin::CreatedSelfSigned))
}

/// Reads a PEM chain and key into a signing key rustls can use.
pub fn load(files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            what: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            what: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            what: "no certificate in file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        what: e.to_string(),
    })?;
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider())?))
}

/// Writes `bytes` to a new file readable only by its owner, replacing any
/// old one atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// The names a self-signed certificate is made for: localhost, the loopback
/// addresses and this host's name.
pub fn self_signed_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty()
            && host != "localhost"
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            names.push(host.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_aead_suites() {
        for suite in &provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.contains("_GCM_") || name.ends_with("CHACHA20_POLY1305_SHA256"),
                "{name}"
            );
        }
    }

    #[test]
    fn self_signed_is_created_once_and_key_is_private() {
        let dir = std::env::temp_dir().join(format!("rampart-tls-{}", uuid::Uuid::new_v4()));
        let files = CertFiles::in_state_dir(&dir);
        let (first, origin) = load_or_create(&files, &["localhost".into()]).unwrap();
        assert_eq!(origin, Origin::CreatedSelfSigned);
        let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for d in [dir.clone(), dir.join("tls")] {
            assert_eq!(
                fs::metadata(&d).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                d.display()
            );
        }
        let (second, origin) = load_or_create(&files, &["localhost".into()]).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(first.cert, second.cert);
        // One that is about to expire is replaced.
        fs::write(files.self_signed_marker(), "0").unwrap();
        let (third, origin) = load_or_create(&files, &["localhost".into()]).unwrap();
        assert_eq!(origin, Origin::CreatedSelfSigned);
        assert_ne!(first.cert, third.cert);
        fs::remove_dir_all(dir).unwrap();
    }
}
