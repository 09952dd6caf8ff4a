//! The hand-off between many writers and the one committer thread.
//!
//! Writers [`GroupQueue::push`] items; the committer [`GroupQueue::take_group`]s
//! everything queued so far (up to a cap) as one group, commits it with one
//! WAL sync and answers every item of the group. The queue guarantees:
//!
//! - every pushed item is returned by exactly one `take_group` call, or the push
//!   itself fails with [`Closed`] and hands the item back (so each writer is
//!   answered exactly once, by the committer or by its own push);
//! - items leave in the order they were pushed (a conversation's seq N is
//!   committed no later than its seq N+1);
//! - `take_group` returns `None` only once the queue is closed and drained.
//!
//! These properties are model-checked with loom (`tests/loom_group_commit.rs`).

#[cfg(loom)]
use loom::sync::{Condvar, Mutex};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex};

/// A push was refused because the queue is closed; the item comes back.
#[derive(Debug)]
pub struct Closed<T>(pub T);

struct State<T> {
    items: Vec<T>,
    closed: bool,
}

/// Multi-producer, single-consumer queue that hands out everything queued as one group.
pub struct GroupQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Default for GroupQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> GroupQueue<T> {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self { state: Mutex::new(State { items: Vec::new(), closed: false }), ready: Condvar::new() }
    }

    /// Queues `item` for the next group, or hands it back if the queue is closed.
    pub fn push(&self, item: T) -> Result<(), Closed<T>> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Closed(item));
        }
        let was_empty = state.items.is_empty();
        state.items.push(item);
        drop(state);
        // Only the transition from empty can find the committer asleep.
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Blocks until items are queued, then takes up to `max` of them (oldest first).
    ///
    /// Returns `None` once the queue is closed and empty. `spare` is an empty
    /// vector whose capacity is reused for the next group.
    pub fn take_group(&self, max: usize, spare: Vec<T>) -> Option<Vec<T>> {
        let mut state = lock(&self.state);
        loop {
            if !state.items.is_empty() {
                if state.items.len() <= max {
                    let mut spare = spare;
                    spare.clear();
                    return Some(std::mem::replace(&mut state.items, spare));
                }
                let rest = state.items.split_off(max);
                let group = std::mem::replace(&mut state.items, rest);
                return Some(group);
            }
            if state.closed {
                return None;
            }
            state = match self.ready.wait(state) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }

    /// Refuses further pushes; items already queued are still handed out.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    /// Whether [`GroupQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Items waiting for the committer.
    pub fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// A panic while holding the lock cannot leave `State` half-updated (every
// mutation is a single push/replace), so a poisoned lock is still consistent.
#[cfg(not(loom))]
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(loom)]
fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn groups_keep_push_order_and_respect_the_cap() {
        let q = GroupQueue::new();
        for i in 0..5 {
            q.push(i).unwrap();
        }
        assert_eq!(q.take_group(3, Vec::new()), Some(vec![0, 1, 2]));
        assert_eq!(q.take_group(3, Vec::new()), Some(vec![3, 4]));
        q.close();
        assert_eq!(q.take_group(3, Vec::new()), None);
    }

    #[test]
    fn push_after_close_hands_the_item_back() {
        let q = GroupQueue::new();
        q.push(1).unwrap();
        q.close();
        assert!(matches!(q.push(2), Err(Closed(2))));
        assert_eq!(q.take_group(10, Vec::new()), Some(vec![1]));
        assert_eq!(q.take_group(10, Vec::new()), None);
    }

    #[test]
    fn a_sleeping_committer_wakes_for_a_push() {
        let q = Arc::new(GroupQueue::new());
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.take_group(10, Vec::new()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.push(7).unwrap();
        assert_eq!(t.join().unwrap(), Some(vec![7]));
    }
}
