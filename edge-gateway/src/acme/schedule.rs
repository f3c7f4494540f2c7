//! When to renew and how long to wait after a failure. Pure functions, so
//! the policy is tested without a clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The longest wait between failed attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// When to renew a certificate valid from `not_before` to `not_after`: at
/// two thirds of its lifetime, moved earlier by up to 5% of the lifetime by
/// `jitter` (in [0, 1)) so that many hosts and installs do not all ask the
/// CA at the same moment.
pub fn renew_at(not_before: Timestamp, not_after: Timestamp, jitter: f64) -> Timestamp {
    let lifetime = not_after.duration_since(not_before);
    let lifetime_s = lifetime.as_secs_f64().max(0.0);
    let early = lifetime_s * 0.05 * jitter.clamp(0.0, 1.0);
    let at = lifetime_s * 2.0 / 3.0 - early;
    not_before
        .checked_add(SignedDuration::from_secs_f64(at.max(0.0)))
        .unwrap_or(not_after)
}

/// The wait before attempt `failures + 1` after `failures` consecutive
/// failures: `base`, doubling, at most [`MAX_BACKOFF`], plus up to 10%
/// jitter.
pub fn backoff(base: Duration, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let wait = base.saturating_mul(1u32 << doublings).min(MAX_BACKOFF);
    wait.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renews_at_two_thirds_jittered_earlier() {
        let nb: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let na = nb + SignedDuration::from_hours(90 * 24);
        assert_eq!(renew_at(nb, na, 0.0), nb + SignedDuration::from_hours(60 * 24));
        let jittered = renew_at(nb, na, 0.999);
        assert!(jittered < nb + SignedDuration::from_hours(60 * 24));
        assert!(jittered > nb + SignedDuration::from_hours(55 * 24));
        // A certificate whose dates are backwards is due at once.
        assert_eq!(renew_at(na, nb, 0.5), na);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(60);
        assert_eq!(backoff(base, 1, 0.0), base);
        assert_eq!(backoff(base, 2, 0.0), base * 2);
        assert_eq!(backoff(base, 4, 0.0), base * 8);
        assert_eq!(backoff(base, 40, 0.0), MAX_BACKOFF);
        assert!(backoff(base, 1, 0.99) > base);
    }
}
