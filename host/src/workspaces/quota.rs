//! Per-workspace quotas on one replica: calls in flight, and calls per
//! minute as a token bucket, so one merchant's burst or flood cannot take the
//! slots and the upstream budget the others need. A call either gets a
//! [`QuotaPermit`] now or is answered 429 with how long to wait — nothing
//! queues.

use actionbox_store::Quotas;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// `max_concurrent_calls` calls are in flight.
    Concurrency { limit: u32 },
    /// The minute's calls are spent; one more is allowed after `retry_after`.
    Rate { per_minute: u32, retry_after: Duration },
}

impl QuotaExceeded {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            QuotaExceeded::Concurrency { .. } => 1,
            QuotaExceeded::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaExceeded::Concurrency { limit } => write!(
                f,
                "this workspace already has {limit} calls in flight (its max_concurrent_calls quota); retry shortly"
            ),
            QuotaExceeded::Rate { per_minute, .. } => write!(
                f,
                "this workspace has used its {per_minute} calls per minute (its calls_per_minute quota); retry after \
                 the Retry-After seconds"
            ),
        }
    }
}

/// One call's hold on its workspace's concurrency quota.
pub struct QuotaPermit {
    _permits: OwnedSemaphorePermit,
}

/// Tokens of the calls-per-minute bucket: `tokens` at `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A workspace's quota state on this replica. Kept across reloads of its
/// catalog, so a change to the workspace does not reset what is in flight.
pub struct QuotaGate {
    quotas: Mutex<(Quotas, Arc<Semaphore>)>,
    bucket: Mutex<Bucket>,
}

impl QuotaGate {
    /// A gate enforcing `quotas`, with a full minute's budget.
    pub fn new(quotas: Quotas) -> Self {
        Self {
            quotas: Mutex::new((quotas, Arc::new(Semaphore::new(quotas.max_concurrent_calls as usize)))),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(quotas.calls_per_minute),
                at: Instant::now(),
            }),
        }
    }

    /// Apply new quotas at once. Calls in flight keep the permits they hold
    /// (on the old semaphore); new calls count against the new bound. A
    /// raised per-minute quota credits the difference now, a lowered one caps
    /// what is left, so the next call sees the new quota, not a bucket
    /// refilling at the new rate.
    pub fn update(&self, quotas: Quotas) {
        let mut current = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 == quotas {
            return;
        }
        let old_per_minute = f64::from(current.0.calls_per_minute);
        let new_per_minute = f64::from(quotas.calls_per_minute);
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.tokens = (bucket.tokens + (new_per_minute - old_per_minute).max(0.0)).min(new_per_minute);
        *current = (quotas, Arc::new(Semaphore::new(quotas.max_concurrent_calls as usize)));
    }

    /// `calls` calls' worth of quota now (a session start takes one per action
    /// it runs), or why not.
    pub fn try_enter(&self, calls: u32) -> Result<QuotaPermit, QuotaExceeded> {
        let (quotas, semaphore) = self.quotas.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let permits = semaphore
            .try_acquire_many_owned(calls.max(1))
            .map_err(|_| QuotaExceeded::Concurrency {
                limit: quotas.max_concurrent_calls,
            })?;
        let per_minute = f64::from(quotas.calls_per_minute);
        let rate = per_minute / 60.0;
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(per_minute);
        bucket.at = now;
        let need = f64::from(calls.max(1));
        if bucket.tokens < need {
            let wait = if rate > 0.0 {
                (need - bucket.tokens) / rate
            } else {
                60.0
            };
            return Err(QuotaExceeded::Rate {
                per_minute: quotas.calls_per_minute,
                retry_after: Duration::from_secs_f64(wait.min(3600.0)),
            });
        }
        bucket.tokens -= need;
        Ok(QuotaPermit { _permits: permits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_beyond_the_minute_are_refused_with_a_wait() {
        let gate = QuotaGate::new(Quotas {
            max_concurrent_calls: 10,
            calls_per_minute: 3,
        });
        for _ in 0..3 {
            drop(gate.try_enter(1).expect("within the minute"));
        }
        let refused = gate.try_enter(1).err().expect("the fourth is refused");
        assert!(matches!(refused, QuotaExceeded::Rate { per_minute: 3, .. }));
        let secs = refused.retry_after_secs();
        assert!((1..=20).contains(&secs), "one token comes back in 20 s: {secs}");
    }

    #[test]
    fn calls_in_flight_are_bounded_and_released() {
        let gate = QuotaGate::new(Quotas {
            max_concurrent_calls: 2,
            calls_per_minute: 100,
        });
        let a = gate.try_enter(1).expect("first");
        let _b = gate.try_enter(1).expect("second");
        assert_eq!(gate.try_enter(1).err(), Some(QuotaExceeded::Concurrency { limit: 2 }));
        drop(a);
        assert!(gate.try_enter(1).is_ok(), "a finished call frees its slot");
    }

    #[test]
    fn a_raised_rate_applies_to_the_next_call() {
        let gate = QuotaGate::new(Quotas {
            max_concurrent_calls: 10,
            calls_per_minute: 2,
        });
        for _ in 0..2 {
            drop(gate.try_enter(1).expect("within the minute"));
        }
        assert!(gate.try_enter(1).is_err(), "spent");
        gate.update(Quotas {
            max_concurrent_calls: 10,
            calls_per_minute: 600,
        });
        assert!(gate.try_enter(1).is_ok(), "the raise is credited at once");
        gate.update(Quotas {
            max_concurrent_calls: 10,
            calls_per_minute: 1,
        });
        assert!(gate.try_enter(1).is_ok(), "one left under the lowered quota");
        assert!(gate.try_enter(1).is_err(), "and no more");
    }

    #[test]
    fn new_quotas_apply_to_new_calls() {
        let gate = QuotaGate::new(Quotas {
            max_concurrent_calls: 1,
            calls_per_minute: 100,
        });
        let _held = gate.try_enter(1).expect("first");
        gate.update(Quotas {
            max_concurrent_calls: 3,
            calls_per_minute: 100,
        });
        assert!(gate.try_enter(2).is_ok(), "the raised bound applies at once");
    }
}
