//! Cancelling jobs on the runner's side: which jids are cancelled, and
//! stopping the ones this process is running.
//!
//! `runner cancel`, the dashboard and the JSON API all go through
//! [`crate::queue::Queue::cancel`], which records the jid in Redis and
//! publishes it. [`listen`] hears it at once and stops the job if it runs
//! here (a guest stops at its next epoch tick, a host call at once); it
//! also rereads the recorded jids every few seconds and after any
//! reconnection, so a message missed while Redis was away still counts.
//! A job taken after its cancellation is not run at all.
//!
//! The same switches stop every running job when the shutdown timeout
//! ends ([`Cancels::stop_all`]); such a job is not cancelled but handed
//! back to its queue, to run again elsewhere.

use crate::backoff::Backoff;
use crate::queue::Queue;
use crate::shutdown::Shutdown;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the recorded cancellations are reread.
const RESYNC: Duration = Duration::from_secs(5);

/// Cancelled jids, and the stop switch of each job running here.
#[derive(Default)]
pub struct Cancels {
    /// Jids cancelled in the last day, as far as this process knows.
    cancelled: Mutex<HashSet<String>>,
    /// The running jobs' stop switches, by jid.
    running: Mutex<HashMap<Arc<str>, CancellationToken>>,
    /// Set once the shutdown timeout stopped every running job.
    stopping: AtomicBool,
}

/// A running job's place in [`Cancels`]; dropping it takes the job out.
pub struct Registered {
    cancels: Arc<Cancels>,
    /// Shared with its key in `running`: one copy of the jid per job.
    jid: Arc<str>,
    /// Fires when the job is cancelled.
    pub token: CancellationToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cancels.running.lock().expect("cancels lock").remove(&*self.jid);
    }
}

impl Cancels {
    /// Enters the job `jid` as running; `None` if it is cancelled already.
    pub fn start(self: &Arc<Self>, jid: &str) -> Option<Registered> {
        if self.cancelled.lock().expect("cancels lock").contains(jid) {
            return None;
        }
        let token = CancellationToken::new();
        let jid: Arc<str> = Arc::from(jid);
        self.running.lock().expect("cancels lock").insert(jid.clone(), token.clone());
        Some(Registered { cancels: self.clone(), jid, token })
    }

    /// Notes that `jid` is cancelled and stops it if it runs here.
    pub fn cancel(&self, jid: &str) {
        self.cancelled.lock().expect("cancels lock").insert(jid.to_string());
        if let Some(token) = self.running.lock().expect("cancels lock").get(jid) {
            tracing::info!(jid, "stopping a cancelled job");
            token.cancel();
        }
    }

    /// Stops every running job, at the end of the shutdown timeout.
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for token in self.running.lock().expect("cancels lock").values() {
            token.cancel();
        }
    }

    /// Whether job `jid`, stopped, was stopped by [`Cancels::stop_all`]
    /// rather than cancelled: it goes back to its queue instead of away.
    pub fn stopped_for_shutdown(&self, jid: &str) -> bool {
        self.stopping.load(Ordering::SeqCst) && !self.cancelled.lock().expect("cancels lock").contains(jid)
    }

    /// Replaces what this process knows with the jids recorded in Redis.
    pub fn resync(&self, jids: Vec<String>) {
        let running: Vec<String> = {
            let running = self.running.lock().expect("cancels lock");
            jids.iter().filter(|jid| running.contains_key(jid.as_str())).cloned().collect()
        };
        *self.cancelled.lock().expect("cancels lock") = jids.into_iter().collect();
        for jid in running {
            self.cancel(&jid);
        }
    }
}

/// Hears cancellations until shutdown.
pub fn listen(queue: Queue, cancels: Arc<Cancels>, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    crate::supervise::spawn("cancel listener", move || hear(queue.clone(), cancels.clone(), shutdown.clone()))
}

async fn hear(queue: Queue, cancels: Arc<Cancels>, shutdown: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    while !shutdown.is_started() {
        match queue.cancellations().await {
            Ok(mut jids) => {
                backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
                let mut resync = tokio::time::interval(RESYNC);
                loop {
                    tokio::select! {
                        jid = jids.next() => match jid {
                            Some(jid) => cancels.cancel(&jid),
                            None => break,
                        },
                        _ = resync.tick() => match queue.cancelled_jids().await {
                            Ok(jids) => cancels.resync(jids),
                            Err(err) => tracing::warn!(error = %format!("{err:#}"), "could not read the cancelled jobs"),
                        },
                        _ = shutdown.wait() => return,
                    }
                }
                tracing::warn!("the cancellation channel closed; subscribing again");
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "could not subscribe to cancellations; retrying")
            }
        }
        shutdown.sleep(backoff.next_wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_stops_the_running_job_and_keeps_out_a_later_one() {
        let cancels = Arc::new(Cancels::default());
        let running = cancels.start("a").unwrap();
        cancels.cancel("a");
        assert!(running.token.is_cancelled());
        drop(running);
        assert!(cancels.start("a").is_none(), "a cancelled job is not started again");
        let other = cancels.start("b").unwrap();
        cancels.resync(vec!["b".to_string()]);
        assert!(other.token.is_cancelled(), "a resync stops a running job it names");
        assert!(cancels.start("a").is_some(), "a resync forgets what Redis no longer holds");
    }

    #[test]
    fn stopping_at_shutdown_stops_every_job_without_cancelling_it() {
        let cancels = Arc::new(Cancels::default());
        let (a, b) = (cancels.start("a").unwrap(), cancels.start("b").unwrap());
        cancels.cancel("b");
        assert!(!cancels.stopped_for_shutdown("a"), "not before the stop");
        cancels.stop_all();
        assert!(a.token.is_cancelled() && b.token.is_cancelled());
        assert!(cancels.stopped_for_shutdown("a"), "a goes back to its queue");
        assert!(!cancels.stopped_for_shutdown("b"), "b was cancelled by a user");
    }
}
