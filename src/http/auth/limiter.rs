//! Attempt counting for throttles: a fixed window per key, bounded in keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why an attempt was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key used its attempts for this window; retry after this many seconds.
    Limit(u64),
    /// The limiter holds as many keys as it may and none has expired: a flood of
    /// distinct keys. Retry after this many seconds.
    Full(u64),
}

impl Refused {
    /// Seconds to wait before retrying.
    pub fn wait_secs(self) -> u64 {
        match self {
            Refused::Limit(s) | Refused::Full(s) => s,
        }
    }
}

/// Counts attempts per key within a window and refuses a key past its limit.
///
/// Counting and checking are one step under one lock, so concurrent attempts
/// cannot all pass a check made before any of them was counted.
pub struct Limiter {
    window: Duration,
    max_keys: usize,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    /// A limiter with the given window, holding at most `max_keys` keys.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self { window, max_keys: max_keys.max(1), entries: Mutex::new(HashMap::new()) }
    }

    fn wait(&self, start: Instant) -> u64 {
        self.window.saturating_sub(start.elapsed()).as_secs().max(1)
    }

    /// Counts one attempt for `key` unless it has reached `limit` in this window.
    pub fn try_hit(&self, key: &str, limit: u32) -> Result<u32, Refused> {
        self.hit(key, limit).map(|(count, _)| count)
    }

    /// Like [`try_hit`](Self::try_hit), with the seconds until the window ends.
    pub fn hit(&self, key: &str, limit: u32) -> Result<(u32, u64), Refused> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(key) {
            if e.0.elapsed() >= self.window {
                *e = (Instant::now(), 0);
            }
            if e.1 >= limit {
                return Err(Refused::Limit(self.wait(e.0)));
            }
            e.1 += 1;
            return Ok((e.1, self.wait(e.0)));
        }
        if limit == 0 {
            return Err(Refused::Limit(self.window.as_secs().max(1)));
        }
        if map.len() >= self.max_keys {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
            if map.len() >= self.max_keys {
                // Refusing the newcomer, rather than forgetting a key, keeps a
                // flood of made-up keys from wiping the counts of a real one.
                let oldest = map.values().map(|(s, _)| *s).min().unwrap_or_else(Instant::now);
                return Err(Refused::Full(self.wait(oldest)));
            }
        }
        map.insert(key.to_string(), (Instant::now(), 1));
        Ok((1, self.window.as_secs().max(1)))
    }

    /// Takes back one attempt of `key` (one that turned out not to count).
    pub fn refund(&self, key: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(key) {
            e.1 = e.1.saturating_sub(1);
        }
    }

    /// Forgets `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn refuses_past_the_limit_until_the_window_ends() {
        let l = Limiter::new(Duration::from_millis(100), 100);
        for i in 1..=3 {
            assert_eq!(l.try_hit("a", 3), Ok(i));
        }
        assert!(matches!(l.try_hit("a", 3), Err(Refused::Limit(_))));
        assert_eq!(l.try_hit("b", 3), Ok(1));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(l.try_hit("a", 3), Ok(1));
        l.refund("a");
        assert_eq!(l.try_hit("a", 1), Ok(1));
        l.clear("a");
        assert_eq!(l.try_hit("a", 1), Ok(1));
    }

    #[test]
    fn concurrent_attempts_pass_at_most_the_limit() {
        let l = Arc::new(Limiter::new(Duration::from_secs(60), 100));
        let passed: usize = (0..16)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..25).filter(|_| l.try_hit("acct", 5).is_ok()).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(passed, 5);
    }

    #[test]
    fn holds_a_bounded_number_of_keys() {
        let l = Limiter::new(Duration::from_millis(100), 3);
        for k in ["a", "b", "c"] {
            assert!(l.try_hit(k, 5).is_ok());
        }
        assert!(matches!(l.try_hit("d", 5), Err(Refused::Full(_))));
        // Known keys still count while the limiter is full.
        assert_eq!(l.try_hit("a", 5), Ok(2));
        assert_eq!(l.len(), 3);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(l.try_hit("d", 5), Ok(1));
        assert_eq!(l.len(), 1);
    }
}
