//! A buffered log output. Lines are gathered in memory and written when the
//! buffer passes [`FLUSH_BYTES`], every [`FLUSH_EVERY`] by a thread of its
//! own, at a panic and when the process ends through [`flush_all`].
//!
//! Why: a write to stdout or the log file per line is a system call per
//! line, and at info the socket's message path logs two lines per message;
//! gathered, a busy server writes tens of lines per call. The cost is that a
//! SIGKILL or an abort loses at most the last [`FLUSH_EVERY`] of lines.
//! The output is written outside the lock the logging threads append
//! under, and a logging thread that finds the output busy leaves the
//! buffer to the next drain, so a slow pipe or disk stalls only the thread
//! writing; the others go on appending up to [`MAX_BUFFERED`], past which
//! lines are dropped (and counted in a line of their own) rather than held.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Written out by the thread that passes it.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most bytes held while the output is busy; lines past it are dropped.
pub const MAX_BUFFERED: usize = 4 << 20;

struct Inner {
    /// Lines waiting; appended under this lock only.
    buf: Mutex<Vec<u8>>,
    /// The output; held while writing, so drains go out in order.
    out: Mutex<Box<dyn Write + Send>>,
    dropped: AtomicU64,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves whole lines or an emptied buffer; both are usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Writes out what is waiting. `wait`: block for the output, else skip
    /// it when busy (a panicking thread may hold it).
    fn drain(&self, wait: bool) {
        let mut out = match self.out.try_lock() {
            Ok(o) => o,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if !wait => return,
            Err(std::sync::TryLockError::WouldBlock) => locked(&self.out),
        };
        // Taken under the output's lock, so a later drain writes later lines.
        let chunk = std::mem::replace(&mut *locked(&self.buf), Vec::with_capacity(FLUSH_BYTES));
        if !chunk.is_empty() {
            // A log output that fails (a closed pipe, a full disk) must not
            // stop the server; the lines are dropped, as `eprintln!` would.
            let _ = out.write_all(&chunk);
            let _ = out.flush();
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{{\"service\":\"utalk\",\"level\":\"WARN\",\"message\":\"{dropped} log lines dropped: the output was too slow\"}}"
            );
        }
    }
}

/// A buffered output, cheap to clone; see the module's documentation.
#[derive(Clone)]
pub struct Buffered(Arc<Inner>);

fn every() -> &'static Mutex<Vec<Weak<Inner>>> {
    static ALL: OnceLock<Mutex<Vec<Weak<Inner>>>> = OnceLock::new();
    ALL.get_or_init(|| {
        // One thread flushes every output; it holds only weak references.
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            flush_all();
        });
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            flush_each(false);
        }));
        Mutex::new(Vec::new())
    })
}

impl Buffered {
    /// Buffers writes to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Buffered {
        let inner = Arc::new(Inner {
            buf: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            out: Mutex::new(Box::new(out)),
            dropped: AtomicU64::new(0),
        });
        let mut all = locked(every());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&inner));
        Buffered(inner)
    }
}

/// Writes out every buffered output now.
pub fn flush_all() {
    flush_each(true);
}

fn flush_each(wait: bool) {
    let outputs: Vec<_> = match every().try_lock() {
        Ok(all) => all.iter().filter_map(Weak::upgrade).collect(),
        Err(_) if !wait => return,
        Err(_) => locked(every()).iter().filter_map(Weak::upgrade).collect(),
    };
    for o in outputs {
        o.drain(wait);
    }
}

impl Write for Buffered {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let full = {
            let mut buf = locked(&self.0.buf);
            if buf.len() + bytes.len() > MAX_BUFFERED {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(bytes.len());
            }
            buf.extend_from_slice(bytes);
            buf.len() >= FLUSH_BYTES
        };
        if full {
            // Whoever holds the output will be followed by the next drain.
            self.0.drain(false);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.drain(true);
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Buffered;

    fn make_writer(&'a self) -> Buffered {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().expect("sink");
            s.0.extend_from_slice(b);
            s.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_gathered_then_written_in_order_within_the_interval() {
        let sink = Sink::default();
        let mut out = Buffered::new(sink.clone());
        for i in 0..100 {
            out.write_all(format!("line {i}\n").as_bytes()).expect("write");
        }
        // The flushing thread writes them; waited for, not timed.
        let started = std::time::Instant::now();
        while sink.0.lock().expect("sink").0.len() < 100 * 7 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(FLUSH_EVERY);
        }
        let (bytes, calls) = sink.0.lock().expect("sink").clone();
        let text = String::from_utf8(bytes).expect("utf8");
        assert_eq!(text.lines().count(), 100);
        assert!(text.lines().enumerate().all(|(i, l)| l == format!("line {i}")));
        assert!(calls <= 2, "{calls} writes for 100 lines");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_writer_and_memory_stays_bounded() {
        let sink = Sink::default();
        let mut out = Buffered::new(sink.clone());
        let line = vec![b'x'; 1000];
        for _ in 0..200 {
            out.write_all(&line).expect("write");
            assert!(locked(&out.0.buf).len() < FLUSH_BYTES);
        }
        assert!(sink.0.lock().expect("sink").0.len() >= 190_000);
        out.flush().expect("flush");
        assert_eq!(sink.0.lock().expect("sink").0.len(), 200_000);
    }

    /// An output that blocks until let go.
    #[derive(Clone, Default)]
    struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>, Sink);

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let (gate, cv) = &*self.0;
            let mut open = gate.lock().expect("gate");
            while !*open {
                open = cv.wait(open).expect("gate");
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_blocks_no_logging_thread_and_holds_at_most_the_bound() {
        let stalled = Stalled::default();
        let out = Buffered::new(stalled.clone());
        let mut first = out.clone();
        first.write_all(b"first\n").expect("write");
        // A drain that gets stuck in the output's write.
        let stuck = std::thread::spawn(move || first.flush());
        std::thread::sleep(Duration::from_millis(100));
        let mut other = out.clone();
        let line = vec![b'y'; 1023];
        let started = std::time::Instant::now();
        for _ in 0..(2 * MAX_BUFFERED / 1024) {
            other.write_all(&line).expect("write");
            other.write_all(b"\n").expect("write");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "appending did not wait for the output");
        assert!(locked(&out.0.buf).len() <= MAX_BUFFERED);
        assert!(out.0.dropped.load(Ordering::Relaxed) > 0);
        {
            let (gate, cv) = &*stalled.0;
            *gate.lock().expect("gate") = true;
            cv.notify_all();
        }
        stuck.join().expect("join").expect("flush");
        flush_all();
        let text = String::from_utf8(stalled.1 .0.lock().expect("sink").0.clone()).expect("utf8");
        assert!(text.starts_with("first\n"), "in order");
        assert!(text.contains("log lines dropped: the output was too slow"), "the loss is said");
        assert!(text.len() <= MAX_BUFFERED + 1024, "{}", text.len());
    }
}
