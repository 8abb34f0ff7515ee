//! Commands for plugin authors: `runner check`, `runner try` and
//! `runner new-plugin`. They use the same loader and limits as the runner,
//! without Redis: `check` loads a component and says what it declares or
//! what is wrong; `try` performs one job and shows the mail it would send.
//! `measure-sandbox` (hidden, for the benchmark) times fresh instances.

mod measure;
mod template;

pub use measure::{Measure, sandbox_overhead};
pub use template::{Lang, build_command, new_plugin};

use crate::engine::{self, EngineLimits};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::plugin::{self, CodeCache, CompileLimits, Compiler, Limits, Loader, Plugin};
use crate::policy::Policy;
use crate::records::Records;
use crate::retry::Failure;
use crate::wit;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What `runner try` exits with, so scripts and tests can tell outcomes apart.
pub mod exit {
    /// The job was done.
    pub const DONE: u8 = 0;
    /// The job failed and would be retried.
    pub const RETRYABLE: u8 = 1;
    /// The job failed for good (or broke the policy).
    pub const PERMANENT: u8 = 2;
    /// The plugin didn't load, or the command was wrong.
    pub const UNUSABLE: u8 = 3;
}

/// Loads `file` as the runner would, with `mailer` behind `send-mail`, the
/// database at `database` behind `records`, and compiled code kept in
/// `cache_dir` if given.
async fn load(
    file: &Path,
    (mailer, policy): (Arc<Mailer>, Policy),
    (database, cache_dir): (Option<&str>, Option<&Path>),
    (limits, compile): (Limits, CompileLimits),
) -> Result<Plugin> {
    let bytes = plugin::file::read(file, plugin::file::DEFAULT_MAX_SIZE)
        .with_context(|| format!("{} is not a usable plugin", file.display()))?;
    let engine_limits = EngineLimits {
        concurrency: 1,
        memory_bytes: limits.memory_bytes,
        warm_instances: 1,
        codegen: compile.codegen,
    };
    let engine = engine::build(engine_limits)?;
    let metrics = Arc::new(Metrics::new());
    let records = Records::new(database, 1, policy.models().clone(), metrics.clone())?;
    let loader = Loader {
        linker: plugin::linker(&engine)?,
        mailer,
        policy: Arc::new(policy),
        limits,
        cache: Arc::new(CodeCache::new(cache_dir, &engine)?),
        compiler: Arc::new(Compiler::new(engine_limits, compile)),
        metrics,
        records: Arc::new(records),
        storage: Arc::new(crate::storage::Storage::default()),
        max_plugin_size: plugin::file::DEFAULT_MAX_SIZE,
    };
    let sha256 = crate::digest::sha256_hex(&bytes);
    loader
        .load(file, bytes, sha256)
        .await
        .with_context(|| format!("{} is not a usable plugin", file.display()))
}

fn default_limits() -> Limits {
    Limits { timeout: Duration::from_secs(30), memory_bytes: 64 * 1024 * 1024 }
}

/// `runner check FILE`: prints what the plugin declares, or what is wrong.
pub async fn check(file: &Path, compile: CompileLimits) -> ExitCode {
    let mailer =
        Arc::new(Mailer::capture("jobrunner <jobrunner@localhost>").expect("a valid default sender"));
    match load(file, (mailer, Policy::default()), (None, None), (default_limits(), compile)).await {
        Ok(plugin) => {
            let meta = &plugin.meta;
            println!("{}: ok", file.display());
            println!("  plugin   {} {}", meta.name, meta.version);
            println!("  classes  {}", meta.classes.join(", "));
            println!("  contract {}", plugin::contract_of(&plugin));
            println!("  sha256   {}", meta.sha256);
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("{}: refused: {err:#}", file.display());
            ExitCode::from(exit::UNUSABLE)
        }
    }
}

/// What `runner try` runs.
pub struct Trial<'a> {
    pub file: &'a Path,
    pub class: &'a str,
    pub args: &'a str,
    pub mail_from: &'a str,
    pub policy: Option<&'a Path>,
    /// The app's database, for plugins that read records.
    pub database: Option<&'a str>,
    pub limits: Limits,
    /// The bounds on compiling the plugin.
    pub compile: CompileLimits,
}

/// `runner try FILE --class X --args JSON`: performs one job, prints the
/// mail it sent and how it ended; the exit status says which way.
pub async fn try_job(trial: Trial<'_>) -> ExitCode {
    match run_trial(&trial).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::UNUSABLE)
        }
    }
}

async fn run_trial(trial: &Trial<'_>) -> Result<u8> {
    let (_, payload) = crate::client::new_job(trial.class, trial.args, "default", true)?;
    let payload = payload.to_string();
    let job = crate::job::Job::parse(payload.as_bytes(), "default")?;
    let policy = match trial.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    let mailer = Arc::new(Mailer::capture(trial.mail_from)?);
    let plugin =
        load(trial.file, (mailer.clone(), policy), (trial.database, None), (trial.limits, trial.compile))
            .await?;
    anyhow::ensure!(
        plugin.meta.classes.iter().any(|c| c == trial.class),
        "{} handles {}, not {}",
        plugin.meta.name,
        plugin.meta.classes.join(", "),
        trial.class
    );
    let result = plugin.perform(&job.to_wit()).await;
    for (i, message) in mailer.captured().iter().enumerate() {
        println!("--- mail {} ---\n{}", i + 1, message.trim_end());
    }
    // Cut and escaped as the runner's log has them: the message is the plugin's.
    let shown =
        |message: String| crate::untrusted::escape(&Failure::retryable("", message).message).into_owned();
    let (code, outcome) = match result {
        Ok(Ok(())) => (exit::DONE, "done".to_string()),
        Ok(Err(wit::JobError::Retryable(m))) => {
            (exit::RETRYABLE, format!("failed, would be retried: {}", shown(m)))
        }
        Ok(Err(wit::JobError::Permanent(m))) => (exit::PERMANENT, format!("failed for good: {}", shown(m))),
        Err(err) => (exit::RETRYABLE, format!("failed, would be retried: {}", shown(err.to_string()))),
    };
    println!("--- {} {}: {outcome}", trial.class, job.jid);
    Ok(code)
}
