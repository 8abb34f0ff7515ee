//! Moves jobs whose time has come from the `schedule` and `retry` sets back
//! into their queues, like Sidekiq's scheduler, so scheduled jobs and retries
//! run. The move is atomic, so any number of runners could poll at once;
//! they take turns instead (see [`Queue::take_turn`]), so the polling costs
//! Redis the same however many runners there are.
//!
//! Each runner asks for the turn every half to whole `--poll-interval`
//! (randomized, so runners spread out), and a turn lasts half the interval.
//! So across all runners the sets are polled at least once and at most
//! about twice per interval, and a due job is moved to its queue within
//! one interval of its time, with one runner or a hundred. Sidekiq gets
//! the same average by stretching each process's interval by the process
//! count, with no bound on a single wait.

use crate::queue::{Queue, keys};
use crate::shutdown::Shutdown;
use rand::Rng;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The most jobs moved per set and call, so one call never blocks Redis long.
const BATCH: u32 = 100;

/// Polls every half to whole `interval` when it is `identity`'s turn, until shutdown.
pub fn spawn(queue: Queue, identity: String, interval: Duration, shutdown: Shutdown) -> JoinHandle<()> {
    crate::supervise::spawn("schedule poller", move || {
        poll(queue.clone(), identity.clone(), interval, shutdown.clone())
    })
}

async fn poll(queue: Queue, identity: String, interval: Duration, shutdown: Shutdown) {
    while !shutdown.is_started() {
        match queue.take_turn("poll", &identity, interval / 2).await {
            Ok(true) => enqueue_due(&queue).await,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "enqueuing due jobs failed"),
        }
        let jitter = rand::rng().random_range(0.5..1.0);
        shutdown.sleep(interval.mul_f64(jitter)).await;
    }
}

/// Moves every due job of both sets, a batch at a time.
async fn enqueue_due(queue: &Queue) {
    for set in [keys::SCHEDULE, keys::RETRY] {
        loop {
            match queue.enqueue_due(set, BATCH).await {
                Ok(moved) if moved == u64::from(BATCH) => continue,
                Ok(0) => {}
                Ok(moved) => tracing::debug!(set, jobs = moved, "enqueued due jobs"),
                Err(err) => {
                    tracing::warn!(set, error = %format!("{err:#}"), "enqueuing due jobs failed")
                }
            }
            break;
        }
    }
}
