//! Moves jobs whose time has come from the `schedule` and `retry` sets back
//! into their queues, like Sidekiq's scheduler, so scheduled jobs and retries
//! run. Any number of runners can poll at once: the move is atomic.

use crate::queue::{Queue, keys};
use crate::shutdown::Shutdown;
use rand::Rng;
use std::time::Duration;

/// The most jobs moved per set and call, so one call never blocks Redis long.
const BATCH: u32 = 100;

/// Polls every `interval` (randomized by ±50% so runners spread out) until shutdown.
pub fn spawn(queue: Queue, interval: Duration, shutdown: Shutdown) {
    tokio::spawn(async move {
        while !shutdown.is_started() {
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
            let jitter = rand::rng().random_range(0.5..1.5);
            shutdown.sleep(interval.mul_f64(jitter)).await;
        }
    });
}
