//! Where the log lines go: stderr, a batch at a time.
//!
//! Written one at a time, each line was a system call on the thread that
//! ran the job: a mail job logs two lines, and an order mail drained at
//! -c 10 to smtp-sink took about 10 µs more of the runner's CPU with info
//! lines written than with `RUST_LOG=warn` (150 to 190 µs per mail,
//! 2026-12-07). Batched, the writes were 0.17 per mail instead of 2, and
//! five alternating drains gave a median of 168 µs against 177.
//!
//! Here a line at info or below joins a batch that a thread of its own
//! writes at most [`GATHER`] later, in one write; a warning or an error is
//! written at once, after the batch before it, so what needs attention is
//! never held back and the order of lines is kept. The batch is written
//! when the runner exits, before a panic's message, and before the
//! outcomes of finished jobs are recorded in Redis (`queue::ack`), so a
//! job's lines are out before it counts as done: a SIGKILL can only cost
//! lines of the last [`GATHER`] from jobs that will run again, or from
//! the runner's own loops.
//!
//! The writer doesn't outrun stderr: a batch that grows past [`MAX_BATCH`]
//! (stderr blocked by a slow reader) is written by the thread that logs,
//! which waits for it as it waited for each line before.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest a line waits in a batch.
pub const GATHER: Duration = Duration::from_millis(1);
/// A batch this big is written by the thread that logs.
const MAX_BATCH: usize = 256 * 1024;

/// The process's one batch, for [`flush`].
static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

/// A [`MakeWriter`] for stderr in batches.
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

struct Shared {
    /// The lines not yet written.
    batch: Mutex<Batch>,
    /// Wakes the writing thread when a batch starts.
    started: Condvar,
    /// Held while writing, so batches go out in the order they were taken.
    out: Mutex<Out>,
}

/// Where batches are written, and the spare buffer the next one gathers in.
struct Out {
    sink: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    /// Whether the writing thread waits for a line.
    idle: bool,
}

/// The process's batched stderr, its writing thread started on first use.
pub fn stderr() -> BatchedStderr {
    let shared = SHARED.get_or_init(|| {
        let shared = Arc::new(Shared::new(Box::new(std::io::stderr())));
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.write_batches())
            .expect("spawning the log writer thread");
        chain_panic_hook();
        shared
    });
    BatchedStderr { shared: shared.clone() }
}

/// Writes the lines waiting in the batch, if logging is batched.
pub fn flush() {
    if let Some(shared) = SHARED.get() {
        shared.flush();
    }
}

/// A panic's message goes straight to stderr: the lines before it first.
fn chain_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        previous(info);
    }));
}

impl Shared {
    fn new(sink: Box<dyn Write + Send>) -> Shared {
        let out = Mutex::new(Out { sink, spare: Vec::new() });
        Shared { batch: Mutex::new(Batch::default()), started: Condvar::new(), out }
    }

    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writing thread: waits for a line, lets the batch gather, writes it.
    fn write_batches(&self) {
        loop {
            {
                let mut batch = self.batch();
                while batch.lines.is_empty() {
                    batch.idle = true;
                    batch = self.started.wait(batch).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                batch.idle = false;
            }
            std::thread::sleep(GATHER);
            self.flush();
        }
    }

    /// Adds `line` to the batch; writes the batch now if `urgent` or big.
    fn add(&self, line: &[u8], urgent: bool) {
        let mut batch = self.batch();
        let was_empty = batch.lines.is_empty();
        batch.lines.extend_from_slice(line);
        if urgent || batch.lines.len() >= MAX_BATCH {
            drop(batch);
            self.flush();
        } else if was_empty && batch.idle {
            batch.idle = false;
            drop(batch);
            self.started.notify_one();
        }
    }

    /// Writes what the batch holds, after any batch being written.
    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Out { sink, spare } = &mut *out;
        std::mem::swap(spare, &mut self.batch().lines);
        if !spare.is_empty() {
            // As tracing's own writer does: a log line that can't be
            // written is dropped, and the job goes on.
            let _ = sink.write_all(spare);
            spare.clear();
        }
    }
}

/// One event's line, added to the batch as the formatter writes it.
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared.add(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line { shared: &self.shared, urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        // Levels order from ERROR, the least verbose, up to TRACE.
        Line { shared: &self.shared, urgent: *meta.level() <= Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn info_lines_wait_in_the_batch_and_a_warning_writes_them_first() {
        let written = Written::default();
        let shared = Shared::new(Box::new(written.clone()));
        shared.add(b"one\n", false);
        shared.add(b"two\n", false);
        assert_eq!(written.text(), "");
        shared.add(b"warning\n", true);
        assert_eq!(written.text(), "one\ntwo\nwarning\n");
        shared.add(b"three\n", false);
        shared.flush();
        assert_eq!(written.text(), "one\ntwo\nwarning\nthree\n");
    }

    #[test]
    fn a_batch_past_its_cap_is_written_by_the_thread_that_logs() {
        let written = Written::default();
        let shared = Shared::new(Box::new(written.clone()));
        let line = [b'x'; 1024];
        for _ in 0..(MAX_BATCH / line.len() - 1) {
            shared.add(&line, false);
        }
        assert_eq!(written.text().len(), 0);
        shared.add(&line, false);
        assert_eq!(written.text().len(), MAX_BATCH);
    }

    #[test]
    fn the_writing_thread_writes_a_batch_soon_after_it_starts() {
        let written = Written::default();
        let shared = Arc::new(Shared::new(Box::new(written.clone())));
        let writer = shared.clone();
        std::thread::spawn(move || writer.write_batches());
        // Wait for the thread to wait, so the first line wakes it.
        while !shared.batch().idle {
            std::thread::yield_now();
        }
        for round in 0..3 {
            shared.add(format!("line {round}\n").as_bytes(), false);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !written.text().contains(&format!("line {round}")) {
                assert!(std::time::Instant::now() < deadline, "line {round} never written");
                std::thread::sleep(GATHER);
            }
        }
    }
}
