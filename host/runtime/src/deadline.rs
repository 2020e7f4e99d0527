//! Where the wall-clock timeout lives: the integration's timeout setting and
//! the per-call deadline that epoch interruption, the outbound hook and the
//! host's timer all enforce.

use std::fmt;
use std::time::{Duration, Instant};

/// Shortest timeout an integration may set, in seconds.
pub const MIN_TIMEOUT_SECS: u64 = 10;
/// Longest timeout an integration may set, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 180;
/// Timeout used when the integration sets none, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// An integration's timeout, validated to lie within 10–180 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionTimeout(Duration);

/// A timeout outside 10–180 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutOutOfRange(pub u64);

impl fmt::Display for TimeoutOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timeout {} s is out of range: it must be between {MIN_TIMEOUT_SECS} and {MAX_TIMEOUT_SECS} seconds (default {DEFAULT_TIMEOUT_SECS})",
            self.0
        )
    }
}

impl std::error::Error for TimeoutOutOfRange {}

impl ActionTimeout {
    /// A timeout of `secs` seconds, refused outside 10–180.
    pub fn from_secs(secs: u64) -> Result<Self, TimeoutOutOfRange> {
        if (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs) {
            Ok(Self(Duration::from_secs(secs)))
        } else {
            Err(TimeoutOutOfRange(secs))
        }
    }

    /// The length of the timeout.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for ActionTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(DEFAULT_TIMEOUT_SECS))
    }
}

/// The instant one invocation must be finished by. `Copy`, so every enforcer
/// (epoch callback, outbound hook, host timer) holds the same value.
#[derive(Debug, Clone, Copy)]
pub struct ActionDeadline {
    started: Instant,
    at: Instant,
}

impl ActionDeadline {
    /// A deadline `limit` from now.
    pub fn start(limit: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            at: started + limit,
        }
    }

    /// Time left; zero once past.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_past(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Time since the invocation started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The whole allowance.
    pub fn limit(&self) -> Duration {
        self.at - self.started
    }

    /// The instant itself, for timers.
    pub fn instant(&self) -> Instant {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_range_is_10_to_180() {
        assert!(ActionTimeout::from_secs(10).is_ok());
        assert!(ActionTimeout::from_secs(180).is_ok());
        let e = ActionTimeout::from_secs(5).expect_err("too short");
        assert!(e.to_string().contains("between 10 and 180"));
        assert!(ActionTimeout::from_secs(200).is_err());
        assert_eq!(ActionTimeout::default().duration(), Duration::from_secs(10));
    }
}
