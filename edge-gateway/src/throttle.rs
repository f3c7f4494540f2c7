//! Per-client-address throttling of sign-in and setup attempts.
//!
//! A token bucket per address: `per_minute` attempts in a burst, refilled
//! evenly over a minute. IPv6 clients are keyed by their /64, since one host
//! usually owns a whole /64 and could otherwise rotate through it. The map is
//! bounded: when full, buckets that have refilled are dropped, and if none
//! has, new addresses are refused until some do (fail closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The throttle.
#[derive(Debug)]
pub struct Throttle {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Throttle {
    /// Allows `per_minute` attempts per address per minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `addr` at `now`: `Ok` if allowed, or how long
    /// to wait.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = key(addr);
        let rate = self.per_minute / 60.0;
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            let full = self.per_minute;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < full);
            if buckets.len() >= MAX_TRACKED {
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(self.per_minute);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t = Throttle::new(3);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check(a, now).is_ok());
        }
        let wait = t.check(a, now).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            t.check("198.18.0.2".parse().unwrap(), now).is_ok(),
            "other addresses unaffected"
        );
        assert!(t.check(a, now + Duration::from_secs(20)).is_ok());
    }

    #[test]
    fn ipv6_keyed_by_slash_64() {
        let t = Throttle::new(1);
        let now = Instant::now();
        assert!(t.check("2001:db8::1".parse().unwrap(), now).is_ok());
        assert!(t.check("2001:db8::ffff:2".parse().unwrap(), now).is_err());
        assert!(t.check("2001:db8:0:1::1".parse().unwrap(), now).is_ok());
    }
}
