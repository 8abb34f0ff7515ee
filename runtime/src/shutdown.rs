//! Quieting and graceful shutdown, signalled to every task that must stop.
//!
//! SIGTSTP (or "Quiet" in Sidekiq's Web UI) makes the runner quiet: it takes
//! no new jobs but finishes the running ones and keeps beating. The first
//! SIGINT or SIGTERM (or "Stop") starts a shutdown: fetching stops, running
//! jobs get the configured time to finish, and whatever is still running
//! then is put back at the front of its queue. A second SIGINT or SIGTERM
//! exits at once; the jobs left in progress are recovered like those of a
//! killed runner. Tasks hold a [`Shutdown`] and ask it whether to go on, or
//! sleep on it to be woken when shutdown begins.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where the runner is in its life; it only ever moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Running,
    Quiet,
    Stopping,
}

/// A handle on the process's shutdown state; cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    /// The current state, observed.
    state: watch::Receiver<State>,
}

/// Moves the state forward for every paired [`Shutdown`]; cheap to clone.
#[derive(Clone)]
pub struct Trigger(Arc<watch::Sender<State>>);

impl Trigger {
    /// Starts the shutdown.
    pub fn fire(&self) {
        self.advance(State::Stopping);
    }

    /// Stops taking new jobs, unless shutdown has begun already.
    pub fn quiet(&self) {
        self.advance(State::Quiet);
    }

    fn advance(&self, to: State) {
        self.0.send_if_modified(|state| {
            let moved = to > *state;
            *state = (*state).max(to);
            moved
        });
    }
}

/// A new, running state.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(State::Running);
    (Trigger(Arc::new(tx)), Shutdown { state: rx })
}

impl Shutdown {
    /// Whether shutdown has begun.
    pub fn is_started(&self) -> bool {
        *self.state.borrow() == State::Stopping
    }

    /// Whether new jobs may no longer be taken (quiet, or shutting down).
    pub fn is_quiet(&self) -> bool {
        *self.state.borrow() >= State::Quiet
    }

    /// Waits until shutdown begins.
    pub async fn wait(&self) {
        self.wait_for(State::Stopping).await
    }

    /// Waits until the runner is quiet or shutting down.
    pub async fn wait_quiet(&self) {
        self.wait_for(State::Quiet).await
    }

    async fn wait_for(&self, state: State) {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|now| *now >= state).await;
    }

    /// Sleeps for `duration`, or less if shutdown begins meanwhile.
    pub async fn sleep(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.wait() => {}
        }
    }
}

/// Acts on signals: SIGTSTP quiets, the first SIGINT or SIGTERM fires
/// `trigger`, a second one exits the process.
pub fn on_signals(trigger: Trigger) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut tstp)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::from_raw(libc::SIGTSTP)),
        ) else {
            tracing::error!("cannot listen for signals; stop the runner with SIGKILL");
            return;
        };
        let mut stops = 0;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = tstp.recv() => {
                    tracing::info!("SIGTSTP received; quiet: no new jobs");
                    trigger.quiet();
                    continue;
                }
            };
            stops += 1;
            if stops > 1 {
                tracing::warn!(
                    signal = name,
                    "second stop signal; exiting now, unfinished jobs will be recovered"
                );
                crate::logs::flush();
                std::process::exit(1);
            }
            tracing::info!(signal = name, "shutting down");
            trigger.fire();
        }
    });
}
