//! Serving: a job whenever a worker slot is free, until shutdown; then
//! the drain and the hand-back of whatever is still in progress.

use crate::feed::Feed;
use crate::queue::Queue;
use crate::shutdown::Shutdown;
use crate::supervise;
use crate::worker::Worker;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// How long stopped jobs get to end at the end of the shutdown timeout.
const STOPPED_WITHIN: Duration = Duration::from_secs(10);

/// A started runner: what serving and stopping need.
pub struct Running {
    /// Per shard, performs one job and records its outcome there.
    pub workers: Vec<Arc<Worker>>,
    /// Jobs fetched from the queues, ahead of the slots.
    pub feed: Feed,
    /// One permit per job that may run at once.
    pub slots: Arc<Semaphore>,
    /// How long running jobs get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Quiet and shutdown, from signals or the dashboard.
    pub shutdown: Shutdown,
    /// Each shard's Redis, for the hand-back at the end.
    pub queues: Vec<Queue>,
    /// This runner's identity in Redis.
    pub identity: String,
    /// Tasks stopped at the end (the heartbeat and the dashboard).
    pub background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Puts each fetched job into a free slot, until the runner is quiet
    /// or shutting down; then gives back the jobs fetched ahead and, when
    /// only quiet, waits for the shutdown.
    pub async fn serve(&mut self) {
        let unstarted = loop {
            let job = tokio::select! {
                job = self.feed.next() => job,
                _ = self.shutdown.wait_quiet() => None,
            };
            let Some(job) = job else { break None };
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot.expect("the slot semaphore is never closed"),
                _ = self.shutdown.wait_quiet() => break Some(job),
            };
            let worker = self.workers[job.shard].clone();
            let (queue, raw, running, mut ticket) = job.start(slot);
            tokio::spawn(async move {
                // A panic, whatever its cause, must not leave the job in
                // progress with nobody to finish it.
                let work = AssertUnwindSafe(boxed(|| worker.process(queue.clone(), raw.clone(), &running)));
                let ended = match work.catch_unwind().await {
                    Ok(ended) => ended,
                    Err(panic) => worker.panicked(queue, raw, supervise::panic_message(&*panic)),
                };
                // The next job may start while this one's outcome is
                // recorded, so outcomes are recorded many to a round trip.
                ticket.free_slot();
                worker.settle(ended).await;
                drop((running, ticket));
            });
        };
        self.feed.give_back(unstarted).await;
        if !self.shutdown.is_started() {
            tracing::info!("quiet: taking no new jobs; waiting for SIGTERM or SIGINT");
            self.shutdown.wait().await;
        }
    }

    /// Gives running jobs the shutdown timeout to run and be recorded;
    /// then stops those still running and waits for their host calls to
    /// end, so that none is still sending mail when another runner takes
    /// it; leaves the process set and puts whatever is still in progress
    /// back at the front of its queue.
    pub async fn stop(self) {
        if tokio::time::timeout(self.shutdown_timeout, self.feed.settled()).await.is_err() {
            tracing::warn!(
                timeout_s = self.shutdown_timeout.as_secs_f64(),
                "jobs still running at the end of the shutdown timeout; stopping them"
            );
            for worker in &self.workers {
                worker.cancels.stop_all();
            }
            // A guest stops at its next epoch tick and a host call at once,
            // so this is a bound that a healthy runner never reaches.
            if tokio::time::timeout(STOPPED_WITHIN, self.feed.settled()).await.is_err() {
                tracing::error!(
                    waited_s = STOPPED_WITHIN.as_secs_f64(),
                    "jobs still running after being stopped; handing them back regardless"
                );
            }
        }
        for task in &self.background {
            task.abort();
        }
        for (shard, queue) in self.queues.iter().enumerate() {
            hand_back(shard, queue, &self.identity).await;
        }
    }
}

/// `make`'s future, boxed where it is made. A job's future is about 6.5 KB.
/// Made inside the task's own future (even boxed at once), it also takes
/// that much room in the task's state, which tokio copies when it spawns
/// the task and when the task ends: the task was 7.8 KB that way, 1.1 KB
/// this way.
fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::pin(make())
}

/// Leaves a shard's process set and puts whatever is still in progress
/// there back at the front of its queue.
async fn hand_back(shard: usize, queue: &Queue, identity: &str) {
    if let Err(err) = queue.retire(identity).await {
        tracing::warn!(shard, error = %format!("{err:#}"), "could not leave the process set; the entry expires by itself");
    }
    match queue.recover(identity, 0.0, true).await {
        Ok(Some(n)) if n > 0 => {
            tracing::warn!(shard, jobs = n, "unfinished jobs put back at the front of their queues")
        }
        Ok(_) => {}
        Err(err) => {
            tracing::error!(shard, error = %format!("{err:#}"), "could not requeue unfinished jobs; another runner will recover them")
        }
    }
}
