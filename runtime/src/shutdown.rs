//! Graceful shutdown, signalled to every task that must stop.
//!
//! The first SIGINT or SIGTERM starts a shutdown: fetching stops, running
//! jobs get the configured time to finish, and whatever is still running then
//! is put back at the front of its queue. Tasks hold a [`Shutdown`] and ask
//! it whether to go on, or sleep on it to be woken when shutdown begins.

use std::time::Duration;
use tokio::sync::watch;

/// A handle on the process's shutdown state; cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    /// Flips to true once, when shutdown begins.
    started: watch::Receiver<bool>,
}

/// Starts the shutdown that the paired [`Shutdown`]s observe.
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

/// A new, not yet started shutdown.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown { started: rx })
}

impl Shutdown {
    pub fn is_started(&self) -> bool {
        *self.started.borrow()
    }

    /// Waits until shutdown begins.
    pub async fn wait(&self) {
        let mut rx = self.started.clone();
        let _ = rx.wait_for(|started| *started).await;
    }

    /// Sleeps for `duration`, or less if shutdown begins meanwhile.
    pub async fn sleep(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.wait() => {}
        }
    }
}

/// Fires `trigger` on the first SIGINT or SIGTERM.
pub fn on_signals(trigger: Trigger) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::error!("cannot listen for signals; stop the runner with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
        trigger.fire();
    });
}
