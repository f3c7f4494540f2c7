//! Random tokens, digests and password hashing.
//!
//! Tokens (setup, session, CSRF) are 32 random bytes as 43 base64url
//! characters, the shape [`schemas::values::Token`] accepts. The database only
//! ever holds their SHA-256, so a copy of the database does not let anyone in.
//! Passwords are hashed with argon2id at the crate's default cost, on a
//! blocking thread because one hash takes tens of milliseconds.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// argon2 refused the input or its parameters.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The blocking task did not finish.
    #[error("password hashing task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A new 256-bit token as 43 base64url characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `text` as lower-case hex: how tokens are stored and looked up.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compares two stored digests in constant time.
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hash_blocking(password: &str) -> Result<String, CryptoError> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(CryptoError::Hash)?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(CryptoError::Hash)?;
    Ok(hash.to_string())
}

/// Hashes a new password (argon2id, default cost) on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, CryptoError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(CryptoError::Join)?
}

/// A hash of a random password, verified against when a username does not
/// exist so that the answer takes as long as for a real account.
pub async fn dummy_hash() -> Result<String, CryptoError> {
    hash_password(random_token()).await
}

/// Checks `password` against `stored`, or against `dummy` when there is no
/// stored hash (and then answers `false` whatever the outcome). Either way
/// one full argon2 verification runs.
pub async fn verify_password(password: String, stored: Option<String>, dummy: String) -> Result<bool, CryptoError> {
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let hash = stored.unwrap_or(dummy);
        let ok = match PasswordHash::new(&hash) {
            Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "stored password hash does not parse");
                false
            }
        };
        real && ok
    })
    .await
    .map_err(CryptoError::Join)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_have_the_schema_shape() {
        let token = random_token();
        assert!(token.parse::<schemas::values::Token>().is_ok(), "{token}");
        assert_ne!(token, random_token());
    }

    #[test]
    fn digests_compare() {
        let a = sha256_hex("a");
        assert_eq!(a.len(), 64);
        assert!(digest_eq(&a, &sha256_hex("a")));
        assert!(!digest_eq(&a, &sha256_hex("b")));
        assert!(!digest_eq(&a, ""));
    }

    #[tokio::test]
    async fn passwords_verify_and_dummy_never_matches() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let dummy = dummy_hash().await.unwrap();
        assert!(
            verify_password("correct horse battery".into(), Some(hash.clone()), dummy.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong".into(), Some(hash), dummy.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None, dummy).await.unwrap());
    }
}
