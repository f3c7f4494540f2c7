//! The per-install origin secret: the edge's proof that it forwarded a request.
//!
//! The core listens on loopback, but any local process can reach loopback.
//! The edge and the core share 32 random bytes; the edge sends them as hex in
//! [`schemas::wire::ORIGIN_PROOF`] and the core compares in constant time, so
//! a local process without the secret cannot learn it byte by byte.

use std::fmt;
use std::io::BufRead;

use subtle::ConstantTimeEq;

/// The secret's length in bytes.
pub const SECRET_LEN: usize = 32;

/// The origin secret. Never printed.
#[derive(Clone)]
pub struct OriginSecret([u8; SECRET_LEN]);

/// Why a secret was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not 64 hex digits.
    #[error("the origin secret must be 64 hex digits (32 bytes)")]
    Malformed,
    /// Reading it failed.
    #[error("failed to read the origin secret")]
    Io(#[source] std::io::Error),
    /// The input ended before a line arrived.
    #[error("no origin secret: the input was empty")]
    Empty,
}

impl OriginSecret {
    /// Wraps raw bytes; for tests and for a supervisor that generated them.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random secret.
    pub fn random() -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        rand::fill(&mut bytes);
        Self(bytes)
    }

    /// Parses 64 hex digits, either case, surrounding white space ignored.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| SecretError::Malformed)?;
        Ok(Self(bytes))
    }

    /// Reads the first line of `input` and parses it. The reader is left just
    /// after that line, so a caller can keep watching it for EOF.
    pub fn read_line(input: &mut impl BufRead) -> Result<Self, SecretError> {
        let mut line = String::new();
        let n = input.read_line(&mut line).map_err(SecretError::Io)?;
        if n == 0 {
            return Err(SecretError::Empty);
        }
        Self::parse(&line)
    }

    /// The secret as lower-case hex, which is what the edge sends.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `proof` (the header's bytes) is this secret in hex. Only the
    /// length check is not constant-time, and the length is public.
    pub fn verify(&self, proof: &[u8]) -> bool {
        let mut given = [0u8; SECRET_LEN];
        if hex::decode_to_slice(proof, &mut given).is_err() {
            return false;
        }
        given.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_verifies_hex() {
        let secret = OriginSecret::random();
        let hex = secret.to_hex();
        assert_eq!(hex.len(), 64);
        let parsed = OriginSecret::parse(&format!("  {}\n", hex.to_uppercase())).unwrap();
        assert!(parsed.verify(hex.as_bytes()));
        assert!(!parsed.verify(&hex.as_bytes()[..63]));
        assert!(!parsed.verify(OriginSecret::random().to_hex().as_bytes()));
        assert!(!parsed.verify(b""));
    }

    #[test]
    fn refuses_short_long_and_non_hex() {
        assert!(OriginSecret::parse("abcd").is_err());
        assert!(OriginSecret::parse(&"a".repeat(66)).is_err());
        assert!(OriginSecret::parse(&"g".repeat(64)).is_err());
    }

    #[test]
    fn reads_one_line_and_leaves_the_rest() {
        let hex = OriginSecret::random().to_hex();
        let text = format!("{hex}\nmore");
        let mut input = std::io::Cursor::new(text.into_bytes());
        assert!(OriginSecret::read_line(&mut input).unwrap().verify(hex.as_bytes()));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut input, &mut rest).unwrap();
        assert_eq!(rest, "more");
        assert!(matches!(
            OriginSecret::read_line(&mut std::io::Cursor::new(Vec::new())),
            Err(SecretError::Empty)
        ));
    }

    #[test]
    fn never_prints() {
        let secret = OriginSecret::random();
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
    }
}
