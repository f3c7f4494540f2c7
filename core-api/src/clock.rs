//! The wall clock, as a value the state carries so tests can move time.
//!
//! Login throttling and session expiry depend on "now"; tests that check a
//! 30 s lock-out must not sleep 30 s, so every place that needs the time asks
//! the [`Clock`] in the state instead of calling `Timestamp::now` itself.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

/// Where "now" comes from. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still at `start` until [`ManualClock::advance`]
    /// moves it; for tests.
    pub fn manual(start: Timestamp) -> (Self, ManualClock) {
        let shared = Arc::new(Mutex::new(truncate(start)));
        (Self(Source::Manual(Arc::clone(&shared))), ManualClock(shared))
    }

    /// The current time, truncated to whole microseconds: that is what the
    /// database stores, so a value read back equals the value written.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Source::System => truncate(Timestamp::now()),
            Source::Manual(shared) => *shared.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual(_) => f.write_str("Clock::Manual"),
        }
    }
}

/// The handle that moves a [`Clock::manual`] clock.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Out of range only for durations of centuries; stay put then.
        *now = truncate(now.checked_add(by).unwrap_or(*now));
    }
}

fn truncate(ts: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(ts.as_microsecond()).unwrap_or(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let (clock, handle) = Clock::manual(Timestamp::UNIX_EPOCH);
        assert_eq!(clock.now(), Timestamp::UNIX_EPOCH);
        handle.advance(SignedDuration::from_secs(30));
        assert_eq!(clock.now().as_second(), 30);
    }

    #[test]
    fn system_clock_is_whole_microseconds() {
        assert_eq!(Clock::system().now().subsec_nanosecond() % 1000, 0);
    }
}
