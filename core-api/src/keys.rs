//! WireGuard key material: X25519 key pairs and preshared keys.
//!
//! Private keys are clamped the way `wg genkey` prints them, so a generated
//! key looks like any other WireGuard key. They live in [`Zeroizing`]
//! buffers and reach the database only sealed ([`crate::sealed`]).

use schemas::values::WgKey;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// A private key and its public key.
#[derive(Debug)]
pub struct KeyPair {
    /// The 32 private key bytes.
    pub private: Zeroizing<[u8; 32]>,
    /// The public key.
    pub public: WgKey,
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Self {
        let mut private = Zeroizing::new([0u8; 32]);
        rand::fill(&mut private[..]);
        // Curve25519 clamping, as `wg genkey` applies it.
        private[0] &= 248;
        private[31] &= 127;
        private[31] |= 64;
        let public = public_key(&private);
        Self { private, public }
    }

    /// The private key as `wg` prints it.
    pub fn private_text(&self) -> Zeroizing<String> {
        Zeroizing::new(WgKey::from_bytes(&self.private).into())
    }
}

/// The public key of a private key.
pub fn public_key(private: &[u8; 32]) -> WgKey {
    let secret = StaticSecret::from(*private);
    WgKey::from_bytes(PublicKey::from(&secret).as_bytes())
}

/// A new preshared key: 32 random bytes.
pub fn preshared_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::fill(&mut key[..]);
    key
}

/// The sealing context of a device's private key.
pub fn device_context(id: &str) -> String {
    format!("device:{id}:private_key")
}

/// The sealing context of a server's private key.
pub fn server_context(id: &str) -> String {
    format!("server:{id}:private_key")
}

/// The sealing context of a device×server preshared key.
pub fn psk_context(server_id: &str, device_id: &str) -> String {
    format!("peer:{server_id}:{device_id}:psk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_clamping() {
        // RFC 7748 section 6.1: Alice's key pair.
        let private: [u8; 32] = [
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45, 0xdf, 0x4c,
            0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
        ];
        let expected: [u8; 32] = [
            0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a, 0x0d, 0xbf,
            0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a,
        ];
        assert_eq!(public_key(&private).to_bytes(), expected);
        let pair = KeyPair::generate();
        assert_eq!(pair.private[0] & 7, 0);
        assert_eq!(pair.private[31] & 0xc0, 0x40);
        assert_eq!(public_key(&pair.private), pair.public);
        assert_ne!(KeyPair::generate().public, pair.public);
    }
}
