//! The run's settings, checked: every flag turned into the value its part
//! needs, before anything connects or starts.
//!
//! clap already parses durations and sizes (see `cli.rs`). URLs are checked
//! here rather than by clap, because clap repeats a refused value in its
//! error, and these carry passwords; the errors here name them redacted.

use crate::cli::RunArgs;
use crate::fetch::QueueOrder;
use crate::heartbeat::Timing;
use crate::mail::Mailer;
use crate::periodic::spec::Periodic;
use crate::plugin::{CompileLimits, Limits};
use crate::policy::Policy;
use crate::queue::{DeadLimits, Endpoint};
use crate::web::Credentials;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The queues served when none are given.
const DEFAULT_QUEUES: &[&str] = &["default", "mailers"];

/// Everything a run needs to know, checked.
pub struct Settings {
    /// Which queues to serve, and how to choose among them.
    pub order: QueueOrder,
    /// The most jobs run at once.
    pub concurrency: usize,
    /// The most jobs fetched beyond the free slots (see [`crate::feed`]).
    pub fetch_ahead: usize,
    /// Heartbeat interval and the silence after which a runner is dead.
    pub timing: Timing,
    /// Average time between checks of the schedule and retry sets.
    pub poll_interval: Duration,
    /// How long running jobs get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// How many dead jobs are kept, and for how long.
    pub dead: DeadLimits,
    /// Time and memory one job may use.
    pub limits: Limits,
    /// How long one run of an iterable job goes on before it is told to
    /// stop at its next checkpoint.
    pub slice: Duration,
    /// Where plugins come from and how they are loaded.
    pub plugins: PluginSettings,
    /// The largest job payload accepted, in bytes.
    pub max_payload: usize,
    /// The mail transport (its ledger is added once Redis is connected).
    pub mailer: Mailer,
    /// Replicas that must hold each ledger entry of a mail (`--mail-replicas`).
    pub mail_replicas: u32,
    /// Limits on what plugins may do.
    pub policy: Arc<Policy>,
    /// Where the dashboard listens and who may see it, unless it is off.
    pub http: Option<(SocketAddr, Credentials)>,
    /// The app's database URL, for `records`.
    pub database: Option<String>,
    /// The app's storage services, for `blobs`.
    pub storage: Arc<crate::storage::Storage>,
    /// Where each Redis shard is and how to trust it; one for most.
    pub endpoints: Vec<Endpoint>,
    /// The periodic jobs.
    pub periodic: Arc<Vec<Periodic>>,
}

/// Where plugins come from and how they are loaded.
pub struct PluginSettings {
    /// The plugins directory, canonical.
    pub dir: PathBuf,
    /// Whether the directory is watched for changes.
    pub watch: bool,
    /// Where compiled plugins are kept, unless caching is off.
    pub cache_dir: Option<PathBuf>,
    /// Bounds on compiling one plugin.
    pub compile: CompileLimits,
    /// The largest plugin file loaded, in bytes.
    pub max_size: u64,
}

impl Settings {
    /// Checks the command line; the error names the flag and the reason.
    pub fn check(args: RunArgs) -> Result<Settings> {
        let specs: Vec<String> = match args.queues.is_empty() {
            true => DEFAULT_QUEUES.iter().map(|q| q.to_string()).collect(),
            false => args.queues.clone(),
        };
        let endpoints = args.redis.endpoints();
        for endpoint in &endpoints {
            endpoint.check().with_context(|| {
                format!("--redis {} is not a valid Redis URL", crate::secret::redact_url(&endpoint.url))
            })?;
        }
        if let Some(url) = endpoints
            .iter()
            .map(|e| &e.url)
            .enumerate()
            .find_map(|(i, url)| endpoints[..i].iter().any(|e| &e.url == url).then_some(url))
        {
            anyhow::bail!("--redis {} is given twice", crate::secret::redact_url(url));
        }
        let concurrency = usize::from(args.concurrency);
        let mailer = match &args.smtp {
            Some(url) => Mailer::smtp(url, args.smtp_ca.as_deref(), &args.mail_from, concurrency)?,
            None => Mailer::outbox(&args.outbox, &args.mail_from)?,
        };
        tracing::info!(mail = %mailer.describe(), "mail transport ready");
        Ok(Settings {
            order: QueueOrder::parse(&specs)?,
            concurrency,
            fetch_ahead: usize::from(args.fetch_ahead),
            timing: Timing::new(args.heartbeat, args.process_timeout)?,
            poll_interval: args.poll_interval,
            shutdown_timeout: args.shutdown_timeout,
            dead: DeadLimits { max_jobs: args.dead_max_jobs, max_age_secs: args.dead_timeout.as_secs_f64() },
            limits: Limits { timeout: args.timeout, memory_bytes: args.memory as usize * 1024 * 1024 },
            slice: slice(args.slice, args.timeout)?,
            plugins: PluginSettings {
                dir: std::fs::canonicalize(&args.plugins).with_context(|| {
                    format!("the plugins directory {} is not usable", args.plugins.display())
                })?,
                watch: args.watch,
                cache_dir: args.code_cache_dir(),
                compile: args.compile.limits(),
                max_size: u64::from(args.max_plugin_size) * 1024 * 1024,
            },
            max_payload: args.max_payload,
            mailer,
            mail_replicas: args.mail_replicas,
            policy: Arc::new(match &args.policy {
                Some(path) => Policy::load(path)?,
                None => Policy::default(),
            }),
            http: match args.no_http {
                true => None,
                false => Some((args.http, Credentials::new(args.http, args.http_auth, args.http_token)?)),
            },
            periodic: Arc::new(match &args.periodic {
                Some(json) => crate::periodic::spec::parse(json).context("reading the periodic jobs")?,
                None => Vec::new(),
            }),
            database: args.database,
            storage: Arc::new(
                crate::storage::store::load(args.storage_config.as_deref(), args.storage_service)
                    .context("reading the storage services")?,
            ),
            endpoints,
        })
    }
}

/// The slice of an iterable job's run: `--slice`, or three quarters of
/// `--timeout`, which leaves the last step a quarter of it to reach its
/// checkpoint. A slice must end before the time limit does.
fn slice(given: Option<Duration>, timeout: Duration) -> Result<Duration> {
    match given {
        Some(slice) if slice >= timeout => anyhow::bail!(
            "--slice {}s must be shorter than --timeout {}s: a run that outlives its time limit fails instead of stopping at a checkpoint",
            slice.as_secs_f64(),
            timeout.as_secs_f64()
        ),
        Some(slice) => Ok(slice),
        None => Ok(timeout * 3 / 4),
    }
}
