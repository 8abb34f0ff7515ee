//! `runner measure-sandbox`: what a fresh sandboxed instance costs per job,
//! next to a native Rust handler run through the same path (payload
//! decoding, the job record, the call), for the benchmark.

use super::{default_limits, load};
use crate::job::Job;
use crate::mail::Mailer;
use crate::plugin::CompileLimits;
use crate::policy::Policy;
use crate::wit;
use anyhow::{Result, ensure};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Percentiles of a set of timings.
pub struct Timings {
    pub p50: Duration,
    pub p99: Duration,
}

fn timings(mut samples: Vec<Duration>) -> Timings {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Timings { p50: at(0.50), p99: at(0.99) }
}

/// A handler compiled into the runner, doing what the no-op plugin does.
fn native_noop(job: &wit::Job) -> Result<(), wit::JobError> {
    std::hint::black_box(job);
    Ok(())
}

/// Performs a job of `class` with `args` `iterations` times through the
/// plugin in `file`, each in a fresh instance, and as many times through a
/// native no-op handler.
pub async fn sandbox_overhead(
    file: &Path,
    (class, args): (&str, &str),
    iterations: usize,
) -> Result<(Timings, Timings)> {
    let mailer = Arc::new(Mailer::capture("jobrunner <jobrunner@localhost>")?);
    let plugin =
        load(file, (mailer, Policy::default()), None, (default_limits(), CompileLimits::default())).await?;
    let (_, payload) = crate::client::new_job(class, args, "default", true)?;
    let payload = payload.to_string();
    let mut sandboxed = Vec::with_capacity(iterations);
    let mut native = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let job = Job::parse(payload.as_bytes(), "default")?;
        let result = plugin.perform(&job.to_wit()).await;
        sandboxed.push(started.elapsed());
        ensure!(matches!(result, Ok(Ok(()))), "{class} failed: {result:?}");

        let started = Instant::now();
        let job = Job::parse(payload.as_bytes(), "default")?;
        let result = native_noop(&job.to_wit());
        native.push(started.elapsed());
        ensure!(result.is_ok());
    }
    Ok((timings(sandboxed), timings(native)))
}
