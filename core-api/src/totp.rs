//! RFC 6238 time-based one-time passwords: HMAC-SHA-1, 6 digits, 30 s steps,
//! one step of drift either way.
//!
//! Built on the RustCrypto `hmac` and `sha1` crates rather than a TOTP crate
//! so that the replay rule (a code is accepted only for a step later than the
//! last accepted one) sits in the same function as the window, where it
//! cannot be forgotten; the RFC's test vectors below pin the arithmetic.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Bytes of a new seed: 160 bits, the size RFC 4226 recommends for SHA-1.
pub const SEED_LEN: usize = 20;
const DIGITS: u32 = 6;
/// The issuer shown in authenticator apps.
const ISSUER: &str = "Rampart";

/// The sealing context of an admin's TOTP seed: a sealed seed copied to
/// another admin's row does not open.
pub fn seal_context(id: schemas::values::AdminId) -> String {
    format!("admin:{id}:totp")
}

/// A fresh random seed.
pub fn new_seed() -> Zeroizing<Vec<u8>> {
    let mut seed = Zeroizing::new(vec![0u8; SEED_LEN]);
    rand::fill(&mut seed[..]);
    seed
}

/// The seed in base32 (RFC 4648, no padding), as authenticator apps take it.
pub fn base32(seed: &[u8]) -> String {
    BASE32_NOPAD.encode(seed)
}

/// A base32 seed back to bytes (clients and tests).
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    BASE32_NOPAD.decode(text.as_bytes()).ok()
}

/// The time step `now` falls in.
pub fn step_of(now: Timestamp) -> i64 {
    now.as_second().div_euclid(STEP_SECS)
}

/// The HOTP value of `seed` at counter `step`, with `digits` digits.
fn hotp(seed: &[u8], step: i64, digits: u32) -> u32 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(seed) else {
        return u32::MAX;
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 §5.3 dynamic truncation; a SHA-1 digest is 20 bytes, so the
    // offset (at most 15) plus 4 stays inside it.
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    (word & 0x7fff_ffff) % 10u32.pow(digits)
}

/// The 6-digit code for `step`, zero-padded.
pub fn code_at(seed: &[u8], step: i64) -> String {
    format!("{:06}", hotp(seed, step, DIGITS))
}

/// The step whose code `code` is, among the step of `now` and one either
/// side, skipping steps at or before `last_step` (replays). Every candidate
/// is compared, in constant time, so the answer's timing says nothing.
pub fn check(seed: &[u8], code: &str, now: Timestamp, last_step: Option<i64>) -> Option<i64> {
    let current = step_of(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        let matches = bool::from(code_at(seed, step).as_bytes().ct_eq(code.as_bytes()));
        let fresh = last_step.is_none_or(|last| step > last);
        if matches && fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI for authenticator apps.
pub fn otpauth_uri(username: &str, seed: &[u8]) -> String {
    // Usernames are `[a-z0-9._-]`: nothing in them needs escaping.
    format!(
        "otpauth://totp/{ISSUER}:{username}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        base32(seed)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        // Appendix B, SHA-1 column, 8 digits.
        for (secs, expected) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(RFC_SEED, step_of(at(secs)), 8), expected, "T={secs}");
        }
        // The 6-digit code is the last six digits, zero-padded.
        assert_eq!(code_at(RFC_SEED, step_of(at(1_111_111_109))), "081804");
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let expected = [755_224, 287_082, 359_152, 969_429, 338_314];
        for (count, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, count as i64, 6), want);
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let now = at(1_000_000_000);
        let step = step_of(now);
        for delta in [-1, 0, 1] {
            assert_eq!(
                check(RFC_SEED, &code_at(RFC_SEED, step + delta), now, None),
                Some(step + delta)
            );
        }
        assert_eq!(check(RFC_SEED, &code_at(RFC_SEED, step + 2), now, None), None);
        assert_eq!(check(RFC_SEED, &code_at(RFC_SEED, step - 2), now, None), None);
        assert_eq!(check(RFC_SEED, "12345", now, None), None);
    }

    #[test]
    fn replays_and_older_steps_are_refused() {
        let now = at(1_000_000_000);
        let step = step_of(now);
        let code = code_at(RFC_SEED, step);
        assert_eq!(check(RFC_SEED, &code, now, Some(step)), None, "same step again");
        assert_eq!(
            check(RFC_SEED, &code_at(RFC_SEED, step - 1), now, Some(step)),
            None,
            "older step"
        );
        assert_eq!(
            check(RFC_SEED, &code_at(RFC_SEED, step + 1), now, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn uri_and_qr() {
        let uri = otpauth_uri("alice", RFC_SEED);
        assert_eq!(
            uri,
            "otpauth://totp/Rampart:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Rampart&algorithm=SHA1&digits=6&period=30"
        );
        let svg = crate::profile::qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert_eq!(base32(&new_seed()).len(), 32);
        assert_eq!(from_base32(&base32(RFC_SEED)).unwrap(), RFC_SEED);
    }
}
