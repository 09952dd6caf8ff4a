//! What the backfill's steps cost, for its pace. The index writer tokenizes
//! and indexes on threads of its own: a step only hands them documents, so
//! its wall time says little of what it costs the machine, and the segments
//! it adds are merged later on threads of the index too. The cost of a step
//! is its own time plus the CPU time the index's threads spent since the
//! step before, in the share of the documents that came from the
//! backfill (the rest were live writes, which are not the backfill's to pay).

use std::time::Duration;

/// The names the index gives its writer's threads (indexing, merging,
/// publishing segments), cut to 15 bytes as the kernel keeps them.
const WRITER_THREADS: [&str; 3] = ["thrd-tantivy-in", "merge_thread_", "segment_updater"];

/// The CPU time of the index writer's threads, read from `/proc` (Linux);
/// where it cannot be read, the step's own time is its whole cost.
pub(crate) struct WriterCpu {
    last: Option<Duration>,
    backfill_docs: u64,
    live_docs: u64,
}

impl WriterCpu {
    pub(crate) fn new() -> WriterCpu {
        WriterCpu { last: writer_cpu(), backfill_docs: 0, live_docs: 0 }
    }

    /// Counts documents handed to the writer since the last step.
    pub(crate) fn handed(&mut self, backfill: bool) {
        if backfill {
            self.backfill_docs += 1;
        } else {
            self.live_docs += 1;
        }
    }

    /// The cost of a step that took `own` on the indexer's thread.
    pub(crate) fn step_cost(&mut self, own: Duration) -> Duration {
        self.cost_with(own, writer_cpu())
    }

    /// [`step_cost`](Self::step_cost) with the writer threads' time read as `now`.
    fn cost_with(&mut self, own: Duration, now: Option<Duration>) -> Duration {
        let spent = match (self.last, now) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        };
        self.last = now;
        let total = self.backfill_docs + self.live_docs;
        let share = if total == 0 { 0.0 } else { self.backfill_docs as f64 / total as f64 };
        self.backfill_docs = 0;
        self.live_docs = 0;
        own + spent.mul_f64(share)
    }
}

/// Clock ticks per second of `/proc/<pid>/task/<tid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: u64 = 100;

/// User and system time of this process's index writer threads.
fn writer_cpu() -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let is_writer =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|c| WRITER_THREADS.iter().any(|w| c.trim_end().starts_with(w)));
        if !is_writer {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        // The name may hold spaces: the fields that follow start after its ')'.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += field(11) + field(12);
    }
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_threads_time_counts_in_the_share_of_the_backfill_documents() {
        let ms = Duration::from_millis;
        let mut c = WriterCpu { last: Some(ms(1000)), backfill_docs: 0, live_docs: 0 };
        // Nothing handed: the step's own time alone, whatever the threads did.
        assert_eq!(c.cost_with(ms(3), Some(ms(1100))), ms(3));
        // A quarter of the documents were the backfill's: a quarter of the threads' 80 ms.
        c.handed(true);
        for _ in 0..3 {
            c.handed(false);
        }
        assert_eq!(c.cost_with(ms(1), Some(ms(1180))), ms(21));
        // Counted afresh for each step; a clock that went back counts nothing.
        c.handed(true);
        assert_eq!(c.cost_with(ms(2), Some(ms(1000))), ms(2));
        // Where the threads cannot be read, the step's own time.
        c.handed(true);
        assert_eq!(c.cost_with(ms(4), None), ms(4));
    }

    #[test]
    fn this_process_s_writer_threads_are_read_on_linux() {
        // No index here: no such thread, and nothing counted.
        if cfg!(target_os = "linux") {
            assert_eq!(writer_cpu(), Some(Duration::ZERO));
        }
    }
}
