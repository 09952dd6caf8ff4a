//! Failure counting for login throttling: a fixed window per key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events per key within a window and says when a key is over its limit.
pub struct Limiter {
    window: Duration,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    /// A limiter with the given window.
    pub fn new(window: Duration) -> Self {
        Self { window, entries: Mutex::new(HashMap::new()) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (Instant, u32)>) -> T) -> T {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Forget expired windows now and then so the map stays small.
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        f(&mut map)
    }

    /// Seconds until `key` may try again, if it has reached `limit`.
    pub fn blocked_for(&self, key: &str, limit: u32) -> Option<u64> {
        self.with(|map| match map.get(key) {
            Some((start, n)) if start.elapsed() < self.window && *n >= limit => Some((self.window - start.elapsed()).as_secs().max(1)),
            _ => None,
        })
    }

    /// Records one event for `key`; returns the count in the current window.
    pub fn hit(&self, key: &str) -> u32 {
        self.with(|map| {
            let e = map.entry(key.to_string()).or_insert((Instant::now(), 0));
            if e.0.elapsed() >= self.window {
                *e = (Instant::now(), 0);
            }
            e.1 += 1;
            e.1
        })
    }

    /// Forgets `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.with(|map| map.remove(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let l = Limiter::new(Duration::from_millis(100));
        for _ in 0..3 {
            assert!(l.blocked_for("a", 3).is_none());
            l.hit("a");
        }
        assert!(l.blocked_for("a", 3).is_some());
        assert!(l.blocked_for("b", 3).is_none());
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.blocked_for("a", 3).is_none());
        l.hit("a");
        l.clear("a");
        assert!(l.blocked_for("a", 1).is_none());
    }
}
