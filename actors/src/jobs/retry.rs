//! Retry policy shared by the workers that call other services: exponential
//! backoff with jitter, and a circuit breaker.

use rand::Rng;
use std::time::{Duration, Instant};
use utalk_storage::Timestamp;

/// Exponential backoff with "equal jitter": half the capped delay, plus a
/// random part of the other half, so retries of many jobs spread out but
/// never come back at once.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
}

impl Backoff {
    /// The delay after `attempts` failed attempts (1 for the first failure).
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let capped = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = capped / 2;
        let jitter_ms = rng.gen_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// When to try again after `attempts` failures, or `None` to give up.
    pub fn next_attempt(&self, attempts: u32, now: Timestamp) -> Option<Timestamp> {
        if attempts >= self.max_attempts {
            return None;
        }
        let d = self.delay(attempts, &mut rand::thread_rng());
        Some(Timestamp(now.millis().saturating_add(d.as_millis() as i64)))
    }
}

/// What a [`Breaker`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One trial call is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// Name for status endpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A circuit breaker: after `threshold` failures in a row it refuses calls
/// for `cooldown`, then lets one trial through.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    trial_out: bool,
    opened: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { threshold: threshold.max(1), cooldown, failures: 0, open_until: None, trial_out: false, opened: 0 }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker lets its trial through.
    pub fn reopens_at(&self) -> Option<Instant> {
        self.open_until
    }

    /// How many times it opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Whether a call may start now; in half-open state only one may.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.trial_out => false,
            BreakerState::HalfOpen => {
                self.trial_out = true;
                true
            }
        }
    }

    /// The service answered (even with a refusal of the request): close.
    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.trial_out = false;
    }

    /// The service failed (5xx, timeout, unreachable).
    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let trial_failed = self.trial_out;
        self.trial_out = false;
        if trial_failed || self.failures >= self.threshold {
            if self.open_until.is_none_or(|t| t <= now) {
                self.opened += 1;
            }
            self.open_until = Some(now + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5), max_attempts: 10 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 1..=12 {
            let capped = (Duration::from_millis(100) * 2u32.pow(attempts - 1)).min(Duration::from_secs(5));
            for _ in 0..50 {
                let d = b.delay(attempts, &mut rng);
                assert!(d >= capped / 2 && d <= capped, "attempt {attempts}: {d:?} outside [{:?}, {capped:?}]", capped / 2);
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| b.delay(3, &mut rng)).collect();
        assert!(spread.len() > 1, "jitter must vary the delay");
    }

    #[test]
    fn backoff_gives_up_after_max_attempts() {
        let b = Backoff { base: Duration::from_millis(10), max: Duration::from_millis(50), max_attempts: 3 };
        let now = Timestamp(1_000);
        assert!(b.next_attempt(2, now).is_some_and(|t| t.millis() > 1_000));
        assert_eq!(b.next_attempt(3, now), None);
    }

    #[test]
    fn breaker_opens_after_threshold_and_lets_one_trial_through() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert!(b.allow(t0));
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.allow(later), "one trial");
        assert!(!b.allow(later), "only one trial");
        b.failure(later);
        assert_eq!(b.state(later), BreakerState::Open, "a failed trial reopens");
        assert_eq!(b.times_opened(), 2);
        let again = later + Duration::from_secs(10);
        assert!(b.allow(again));
        b.success();
        assert_eq!(b.state(again), BreakerState::Closed);
        assert!(b.allow(again) && b.allow(again));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(1));
        b.failure(t0);
        b.success();
        b.failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
    }
}
