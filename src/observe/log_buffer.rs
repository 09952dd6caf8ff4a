//! A buffered log output. Lines are gathered in memory and written when the
//! buffer passes [`FLUSH_BYTES`], every [`FLUSH_EVERY`] by a thread of its
//! own, at a panic and when the process ends through [`flush_all`].
//!
//! Why: a write to stdout or the log file per line is a system call per
//! line, and at info the socket's message path logs two lines per message;
//! gathered, a busy server writes tens of lines per call. The cost is that a
//! SIGKILL or an abort loses at most the last [`FLUSH_EVERY`] of lines.
//! Memory is bounded: past [`FLUSH_BYTES`] the logging thread writes the
//! buffer itself, as an unbuffered writer would have.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Written out by the thread that passes it.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Inner {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl Inner {
    fn drain(&mut self) {
        if !self.buf.is_empty() {
            // A log output that fails (a closed pipe, a full disk) must not
            // stop the server; the lines are dropped, as `eprintln!` would.
            let _ = self.out.write_all(&self.buf);
            let _ = self.out.flush();
            self.buf.clear();
        }
    }
}

/// A buffered output, cheap to clone; see the module's documentation.
#[derive(Clone)]
pub struct Buffered(Arc<Mutex<Inner>>);

fn every() -> &'static Mutex<Vec<Weak<Mutex<Inner>>>> {
    static ALL: OnceLock<Mutex<Vec<Weak<Mutex<Inner>>>>> = OnceLock::new();
    ALL.get_or_init(|| {
        // One thread flushes every output; it holds only weak references.
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            flush_all();
        });
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // The panicking thread may hold an output's lock: skip that one rather than wait on itself.
            flush_each(false);
        }));
        Mutex::new(Vec::new())
    })
}

impl Buffered {
    /// Buffers writes to `out`.
    pub fn new(out: impl Write + Send + 'static) -> Buffered {
        let inner = Arc::new(Mutex::new(Inner { buf: Vec::with_capacity(FLUSH_BYTES), out: Box::new(out) }));
        let mut all = every().lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&inner));
        Buffered(inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole lines or a cleared buffer; both are usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
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
        Err(_) => every().lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect(),
    };
    for o in outputs {
        let inner = if wait { Some(o.lock().unwrap_or_else(|e| e.into_inner())) } else { o.try_lock().ok() };
        if let Some(mut inner) = inner {
            inner.drain();
        }
    }
}

impl Write for Buffered {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        inner.buf.extend_from_slice(bytes);
        if inner.buf.len() >= FLUSH_BYTES {
            inner.drain();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().drain();
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
        std::thread::sleep(FLUSH_EVERY * 4);
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
            assert!(out.lock().buf.len() < FLUSH_BYTES);
        }
        assert!(sink.0.lock().expect("sink").0.len() >= 190_000);
        out.flush().expect("flush");
        assert_eq!(sink.0.lock().expect("sink").0.len(), 200_000);
    }
}
