//! Model check of the group-commit hand-off: many writers, one committer,
//! every item committed in exactly one group and answered exactly once, in
//! push order per writer, including writers that race the shutdown.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p utalk-storage --test loom_group_commit --release`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use utalk_storage::group_commit::{Closed, GroupQueue};

/// One write: who sent it, its per-writer sequence, and how often it was answered.
struct Item {
    writer: usize,
    n: usize,
    answers: Arc<AtomicUsize>,
}

fn answer(item: &Item) {
    item.answers.fetch_add(1, Ordering::SeqCst);
}

/// Runs `writers` threads pushing `per_writer` items each against one committer
/// that commits groups of at most `cap`; `close_early` closes the queue while
/// writers may still be pushing.
fn model(writers: usize, per_writer: usize, cap: usize, close_early: bool) {
    let mut builder = loom::model::Builder::new();
    // Bounding preemptions keeps the search finite and fast; bugs in hand-offs
    // like this one show up within two or three preemptions.
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let q = Arc::new(GroupQueue::<Item>::new());
        let counters: Vec<Vec<Arc<AtomicUsize>>> =
            (0..writers).map(|_| (0..per_writer).map(|_| Arc::new(AtomicUsize::new(0))).collect()).collect();

        let committer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut committed: Vec<(usize, usize)> = Vec::new();
                let mut groups = 0;
                while let Some(group) = q.take_group(cap, Vec::new()) {
                    assert!(!group.is_empty() && group.len() <= cap);
                    groups += 1;
                    // "Commit" the group, then answer each item once.
                    for item in &group {
                        committed.push((item.writer, item.n));
                    }
                    for item in &group {
                        answer(item);
                    }
                }
                (committed, groups)
            })
        };

        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let q = q.clone();
                let mine = counters[w].clone();
                thread::spawn(move || {
                    for (n, answers) in mine.into_iter().enumerate() {
                        let item = Item { writer: w, n, answers };
                        if let Err(Closed(item)) = q.push(item) {
                            // Refused: the writer answers itself (an error to its caller).
                            answer(&item);
                        }
                    }
                })
            })
            .collect();

        if close_early {
            q.close();
        }
        for h in handles {
            h.join().unwrap();
        }
        q.close();
        let (committed, groups) = committer.join().unwrap();

        // Each item answered exactly once, whether committed or refused.
        for per in &counters {
            for c in per {
                assert_eq!(c.load(Ordering::SeqCst), 1);
            }
        }
        // Committed at most once each, and in push order per writer.
        for w in 0..writers {
            let seen: Vec<usize> = committed.iter().filter(|(cw, _)| *cw == w).map(|(_, n)| *n).collect();
            let expected: Vec<usize> = (0..seen.len()).collect();
            assert_eq!(seen, expected, "writer {w} committed out of order or twice");
        }
        if !close_early {
            assert_eq!(committed.len(), writers * per_writer);
        }
        assert!(groups <= committed.len());
    });
}

#[test]
fn one_writer_two_items_group_cap_one() {
    model(1, 2, 1, false);
}

#[test]
fn two_writers_two_items_each_group_cap_two() {
    model(2, 2, 2, false);
}

#[test]
fn three_writers_one_item_each_one_group_may_take_all() {
    model(3, 1, 8, false);
}

#[test]
fn writers_racing_shutdown_are_answered_once() {
    model(2, 2, 8, true);
}
