//! Pacing guests so that long computations can't starve short jobs.
//!
//! A running guest yields at every epoch tick. It yields with tokio's
//! `yield_now`, which (unlike a plain self-wake) sends the task behind
//! pending I/O, so a busy guest can't delay the other jobs' replies. A call
//! that has run past [`LONG_AFTER`] is long; while shorter calls are in
//! progress beside it, a long one also pauses for four times as long as it
//! ran, so spinning or heavy jobs take at most a fifth of the machine from
//! the jobs queued behind them, and never starve Redis or the mail server.
//! A long call with nothing else running goes at full speed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a call runs before it counts as long.
const LONG_AFTER: Duration = Duration::from_millis(50);

/// Ticks a long call pauses for each tick it runs, while others wait.
const PAUSE_TICKS: u32 = 4;

/// Calls into plugins in progress.
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// Of those, the long ones.
static LONG: AtomicUsize = AtomicUsize::new(0);

/// What a future pauses with.
pub type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One call's pacing; counted while it lives.
pub struct Pace {
    /// When the call started.
    started: Instant,
    /// Whether it has been counted as long.
    long: bool,
}

impl Pace {
    pub fn new() -> Pace {
        CALLS.fetch_add(1, Ordering::Relaxed);
        Pace { started: Instant::now(), long: false }
    }

    /// How the guest pauses at this epoch tick.
    pub fn tick(&mut self, tick: Duration) -> Pause {
        if !self.long && self.started.elapsed() >= LONG_AFTER {
            self.long = true;
            LONG.fetch_add(1, Ordering::Relaxed);
        }
        let others_waiting = CALLS.load(Ordering::Relaxed) > LONG.load(Ordering::Relaxed);
        if self.long && others_waiting {
            Box::pin(tokio::time::sleep(tick * PAUSE_TICKS))
        } else {
            Box::pin(tokio::task::yield_now())
        }
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        CALLS.fetch_sub(1, Ordering::Relaxed);
        if self.long {
            LONG.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
