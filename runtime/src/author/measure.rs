//! `runner measure-sandbox`: what a fresh sandboxed instance costs per job,
//! next to a native Rust handler run through the same path (payload
//! decoding, the job record, the call), for the benchmark.

use super::{default_limits, load};
use crate::engine::CodeGen;
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

/// What `runner measure-sandbox` measures.
pub struct Measure<'a> {
    /// The plugin.
    pub file: &'a Path,
    /// The class of the job performed, and its arguments (JSON).
    pub job: (&'a str, &'a str),
    /// How many times the job is performed.
    pub iterations: usize,
    /// The policy file, e.g. one that lets the plugin reuse instances.
    pub policy: Option<&'a Path>,
    /// A code cache to time a first load and a cached one with.
    pub cache_dir: Option<&'a Path>,
    /// The compiler.
    pub codegen: CodeGen,
}

/// What it found.
pub struct Measured {
    /// The first load (compiling) and a load from the code cache, when timed.
    pub loads: Option<(Duration, Duration)>,
    /// Per job through the plugin.
    pub sandboxed: Timings,
    /// Per job through a native no-op handler.
    pub native: Timings,
}

/// Performs `m.job` `m.iterations` times through the plugin, each in a
/// fresh instance unless the policy lets it reuse them, and as many times
/// through a native no-op handler; with a cache dir, times the plugin's
/// load, then its load from the cache by a new engine (as after a restart).
pub async fn sandbox_overhead(m: Measure<'_>) -> Result<Measured> {
    let mailer = Arc::new(Mailer::capture("jobrunner <jobrunner@localhost>")?);
    let policy = || m.policy.map_or_else(|| Ok(Policy::default()), Policy::load);
    let bounds = (default_limits(), CompileLimits { codegen: m.codegen, ..CompileLimits::default() });
    let started = Instant::now();
    let mut plugin = load(m.file, (mailer.clone(), policy()?), (None, m.cache_dir), bounds).await?;
    let mut loads = None;
    if m.cache_dir.is_some() {
        let first = started.elapsed();
        let started = Instant::now();
        plugin = load(m.file, (mailer, policy()?), (None, m.cache_dir), bounds).await?;
        loads = Some((first, started.elapsed()));
    }
    let (class, args) = m.job;
    let (_, payload) = crate::client::new_job(class, args, "default", true)?;
    let payload = payload.to_string();
    let mut sandboxed = Vec::with_capacity(m.iterations);
    let mut native = Vec::with_capacity(m.iterations);
    for _ in 0..m.iterations {
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
    Ok(Measured { loads, sandboxed: timings(sandboxed), native: timings(native) })
}
