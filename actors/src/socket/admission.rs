//! Caps on Engine.IO sessions: in total, and per client address for sessions
//! that have not authenticated yet.
//!
//! Every new session takes an [`Admission`] before it starts; the admission
//! gives its places back when it is dropped (with the session), so no path
//! that ends a session can leak a place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server holds `max_sessions` sessions.
    #[error("the server holds as many socket sessions as it is configured for")]
    Total,
    /// This address holds `max_anonymous_sessions_per_ip` unauthenticated sessions.
    #[error("too many unauthenticated socket sessions from this address")]
    PerAddress,
}

#[derive(Default)]
struct Counts {
    total: usize,
    anonymous: HashMap<String, usize>,
}

/// The shared counters behind every admission.
pub(crate) struct Admissions {
    max_total: usize,
    max_anonymous_per_address: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Admissions {
    pub(crate) fn new(max_total: usize, max_anonymous_per_address: usize) -> Admissions {
        Admissions { max_total, max_anonymous_per_address, counts: Arc::default() }
    }

    /// A place for a new, not yet authenticated session from `address`.
    pub(crate) fn admit(&self, address: &str) -> Result<Admission, Refusal> {
        let mut c = lock(&self.counts);
        if c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let anonymous = c.anonymous.get(address).copied().unwrap_or(0);
        if anonymous >= self.max_anonymous_per_address {
            return Err(Refusal::PerAddress);
        }
        c.total += 1;
        c.anonymous.insert(address.to_string(), anonymous + 1);
        Ok(Admission { counts: self.counts.clone(), anonymous_from: Some(address.to_string()) })
    }

    /// Sessions admitted now.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        lock(&self.counts).total
    }
}

/// One session's places; given back on drop.
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    /// The address whose anonymous place this holds, until the session authenticates.
    anonymous_from: Option<String>,
}

impl Admission {
    /// The session authenticated: it no longer counts against its address.
    pub fn authenticated(&mut self) {
        if let Some(address) = self.anonymous_from.take() {
            release_anonymous(&mut lock(&self.counts), &address);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(address) = self.anonymous_from.take() {
            release_anonymous(&mut c, &address);
        }
    }
}

fn release_anonymous(c: &mut Counts, address: &str) {
    if let Some(n) = c.anonymous.get_mut(address) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            // Addresses come and go: keep only those holding places.
            c.anonymous.remove(address);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_until_authenticated_and_given_back_on_drop() {
        let a = Admissions::new(3, 2);
        let x1 = a.admit("x").unwrap();
        let mut x2 = a.admit("x").unwrap();
        assert_eq!(a.admit("x").err(), Some(Refusal::PerAddress));
        x2.authenticated();
        let x3 = a.admit("x").unwrap();
        assert_eq!(a.admit("y").err(), Some(Refusal::Total), "three sessions held");
        drop(x2);
        assert_eq!(a.total(), 2);
        assert_eq!(a.admit("x").err(), Some(Refusal::PerAddress), "x1 and x3 are still anonymous");
        let y = a.admit("y").unwrap();
        drop((x1, x3, y));
        assert_eq!(a.total(), 0);
        assert!(lock(&a.counts).anonymous.is_empty());
    }
}
