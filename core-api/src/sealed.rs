//! Secrets at rest: device and server private keys, preshared keys, TOTP
//! seeds, the ACME account key.
//!
//! They are sealed with XChaCha20-Poly1305 under a host key that lives in
//! its own 0600 file, `DATA_DIR/host-key`, outside the database directory:
//! a copy of the database alone reveals none of them. Each sealed value is
//! bound to a context string (e.g. `device:<id>:private_key`) as associated
//! data, so a sealed value moved to another row or column does not open.
//!
//! Format: `v1.` + base64url(24-byte random nonce ‖ ciphertext ‖ tag).

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length; this cannot fail.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The host key's file name inside the data directory.
pub const HOST_KEY_FILE: &str = "host-key";
const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The host key file could not be read or written.
    #[error("host key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The host key file does not hold a key.
    #[error("host key {0} is malformed (expected 64 hex characters)")]
    MalformedKey(PathBuf),
    /// The sealed value is not in the expected format.
    #[error("sealed value is malformed")]
    Malformed,
    /// The value does not open under this key and context: another host's
    /// key, a value moved between rows, or tampering.
    #[error("sealed value does not open (wrong key, wrong context or tampered)")]
    Open,
}

/// The host key. Never printed.
#[derive(Clone)]
pub struct HostKey {
    cipher: XChaCha20Poly1305,
    /// A second key derived from the host key for [`HostKey::mac`], so the
    /// cipher's key is never also used as a MAC key.
    mac_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostKey(<redacted>)")
    }
}

impl HostKey {
    /// Reads `DATA_DIR/host-key`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SealError> {
        let path = data_dir.join(HOST_KEY_FILE);
        let io = |source| SealError::Io {
            path: path.clone(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes =
                    Zeroizing::new(hex::decode(text.trim()).map_err(|_| SealError::MalformedKey(path.clone()))?);
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| SealError::MalformedKey(path.clone()))?;
                Ok(Self::from_bytes(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::fill(&mut key[..]);
                let text = Zeroizing::new(hex::encode(key.as_slice()));
                // create_new: two starts racing cannot both write a key.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self::from_bytes(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        let mut mac_key = Zeroizing::new([0u8; 32]);
        mac_key.copy_from_slice(&hmac_sha256(key, b"rampart host-key: mac key"));
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            mac_key,
        }
    }

    /// A MAC of `data` for `context` under the host key: a value anyone
    /// holding `data` cannot compute without the key, and that stays the
    /// same across restarts (the CSRF token of a session is one).
    pub fn mac(&self, context: &str, data: &[u8]) -> [u8; 32] {
        let mut input = Vec::with_capacity(context.len() + 1 + data.len());
        input.extend_from_slice(context.as_bytes());
        input.push(0);
        input.extend_from_slice(data);
        hmac_sha256(self.mac_key.as_slice(), &input)
    }

    /// Seals `plaintext` for `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and nonce length cannot fail.
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn round_trip_bound_to_context() {
        let key = HostKey::from_bytes(&[7; 32]);
        let sealed = key.seal(b"private key bytes", "device:1:private_key");
        assert!(!sealed.contains("private"));
        assert_eq!(
            key.open(&sealed, "device:1:private_key").unwrap().as_slice(),
            b"private key bytes"
        );
        assert!(matches!(
            key.open(&sealed, "device:2:private_key"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            HostKey::from_bytes(&[8; 32]).open(&sealed, "device:1:private_key"),
            Err(SealError::Open)
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&tampered, "device:1:private_key").is_err());
        assert_ne!(key.seal(b"x", "c"), key.seal(b"x", "c"), "fresh nonce each time");
    }

    #[test]
    fn host_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = HostKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = HostKey::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open(&a.seal(b"s", "c"), "c").unwrap().as_slice(), b"s");
    }
}
