//! The runner: wires the parts together and runs until shut down.
//!
//! Three steps, one file each. [`settings`] checks everything the command
//! line asks for before anything starts, so a mistake stops the runner
//! with one clear line. [`start`] connects to Redis and starts loading the
//! plugins; on each Redis shard ([`shard`]) it announces the process,
//! recovers jobs lost by dead runners and starts the background tasks. [`serve`] takes a job whenever a worker
//! slot is free; at shutdown, fetching stops, running jobs get
//! `--shutdown-timeout` to finish, and whatever is still in progress goes
//! back to the front of its queue.

mod serve;
mod settings;
mod shard;
mod start;

use crate::cli::RunArgs;
use anyhow::{Context, Result};

pub use settings::Settings;

/// Runs jobs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> Result<()> {
    let settings = Settings::check(args)?;
    let mut running = start::start(settings).await?;
    // Served from a task on the worker threads, not from the thread that
    // blocks on `main`: a job spawned there lands on that worker's own run
    // queue, and a freed slot wakes the server on the worker that freed
    // it, instead of two threads waking each other for every job.
    let running = tokio::spawn(async move {
        running.serve().await;
        running
    })
    .await
    .context("the server task failed")?;
    running.stop().await;
    tracing::info!("runner stopped");
    Ok(())
}
