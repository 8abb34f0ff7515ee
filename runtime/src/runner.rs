//! The runner: wires the parts together and runs until shut down.
//!
//! Start-up loads the plugins, connects to Redis, announces the process
//! and recovers jobs lost by dead runners. Then one loop takes a job
//! whenever a worker slot is free and spawns it. At shutdown, fetching
//! stops, running jobs get `--shutdown-timeout` to finish, and whatever is
//! still in progress goes back to the front of its queue.

use crate::backoff::Backoff;
use crate::busy::Busy;
use crate::cli::{self, RunArgs};
use crate::fetch::{Fetcher, QueueOrder};
use crate::heartbeat::{self, Process, Timing};
use crate::mail::{Ledger, Mailer};
use crate::metrics::Metrics;
use crate::plugin::{self, CodeCache, Compiler, Limits, Loader};
use crate::policy::Policy;
use crate::queue::ack::Acker;
use crate::queue::{DeadLimits, Endpoint, Queue};
use crate::records::Records;
use crate::registry::owners::Owners;
use crate::registry::{self, Registry};
use crate::shutdown::{self, Shutdown};
use crate::web::{self, Credentials, Dashboard};
use crate::worker::Worker;
use crate::{engine, scheduler};
use anyhow::{Context, Result, bail};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The queues served when none are given.
const DEFAULT_QUEUES: &[&str] = &["default", "mailers"];

/// Runs jobs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> Result<()> {
    let specs = if args.queues.is_empty() {
        DEFAULT_QUEUES.iter().map(|q| q.to_string()).collect()
    } else {
        args.queues.clone()
    };
    let order = QueueOrder::parse(&specs)?;
    let timing = Timing::new(
        cli::seconds(args.heartbeat, "--heartbeat")?,
        cli::seconds(args.process_timeout, "--process-timeout")?,
    )?;
    let poll_interval = cli::seconds(args.poll_interval, "--poll-interval")?;
    // Zero is fine here: requeue running jobs at once.
    let shutdown_timeout = match args.shutdown_timeout {
        0.0 => Duration::ZERO,
        value => cli::seconds(value, "--shutdown-timeout")?,
    };
    let dead = DeadLimits { max_jobs: args.dead_max_jobs, max_age_secs: days(args.dead_timeout)? };
    let concurrency = usize::from(args.concurrency);
    let limits = Limits {
        timeout: cli::seconds(args.timeout, "--timeout")?,
        memory_bytes: args.memory as usize * 1024 * 1024,
    };
    let plugins_dir = std::fs::canonicalize(&args.plugins)
        .with_context(|| format!("the plugins directory {} is not usable", args.plugins.display()))?;
    let mailer = mailer(&args)?;
    let policy = Arc::new(match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    });
    let http = (!args.no_http)
        .then(|| Credentials::new(args.http, args.http_auth.clone(), args.http_token.clone()))
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let records =
        Records::new(args.database.as_deref(), concurrency as u32, policy.models().clone(), metrics.clone())?;
    // Everything is checked; only now wait for Redis, which may be starting.
    let endpoint = args.redis.endpoint();
    let queue = connect(&endpoint).await?.with_dead_limits(dead);
    let mailer = Arc::new(mailer.with_ledger(Ledger::new(queue.clone())));
    let (trigger, shutdown) = shutdown::channel();
    let registry = Arc::new(registry(
        &args,
        concurrency,
        limits,
        &plugins_dir,
        (mailer, policy, metrics.clone(), records),
        &queue,
    )?);
    // Watch before the first scan, so a file dropped meanwhile isn't missed.
    if args.watch {
        registry::watch::spawn(registry.clone(), shutdown.clone())?;
    }
    // Each plugin serves as soon as it is ready; jobs start meanwhile.
    let files = registry.plugin_files()?;
    tokio::spawn({
        let registry = registry.clone();
        async move { registry.load_all(files).await }
    });

    let process = Arc::new(Process::new(concurrency, order.weights()));
    // Announce ourselves before the first fetch, then pick up what dead
    // runners left; should Redis fail here, the heartbeat task tries again.
    let busy = Arc::new(Busy::default());
    let dashboard = match http {
        Some(credentials) => {
            let dashboard = Dashboard {
                queue: queue.admin(),
                metrics: metrics.clone(),
                registry: registry.clone(),
                busy: busy.clone(),
            };
            web::spawn(args.http, credentials, dashboard).await
        }
        None => None,
    };
    if let Err(err) = heartbeat::beat(&queue, &process, timing, &busy, false).await {
        tracing::warn!(error = %format!("{err:#}"), "first heartbeat failed");
    }
    if let Err(err) = heartbeat::recover_dead(&queue, &process, timing).await {
        tracing::warn!(error = %format!("{err:#}"), "looking for dead runners failed");
    }
    tracing::info!(identity = %process.identity, queues = ?order.names(), concurrency, "runner started");

    shutdown::on_signals(trigger.clone());
    if endpoint.is_sentinel() {
        let queues = order.names().iter().map(|q| q.to_string()).collect();
        follow_master(&queue, endpoint, (process.identity.clone(), queues), busy.clone(), shutdown.clone());
    }
    heartbeat::on_ttin(busy.clone());
    let heartbeat =
        heartbeat::spawn(queue.clone(), process.clone(), busy.clone(), timing, (shutdown.clone(), trigger));
    scheduler::spawn(queue.clone(), poll_interval, shutdown.clone());

    let worker = Arc::new(Worker {
        acker: Acker::spawn(queue.clone(), process.identity.clone()),
        registry,
        shutdown: shutdown.clone(),
        max_payload: args.max_payload,
        metrics,
    });
    let fetcher =
        Fetcher { queue: queue.clone(), identity: process.identity.clone(), order, busy: busy.clone() };
    let slots = Arc::new(Semaphore::new(concurrency));
    serve(&fetcher, &worker, &slots, &busy, &shutdown).await;
    if !shutdown.is_started() {
        tracing::info!("quiet: taking no new jobs; waiting for SIGTERM or SIGINT");
        shutdown.wait().await;
    }

    drain(&slots, concurrency, shutdown_timeout).await;
    heartbeat.abort();
    if let Err(err) = queue.retire(&process.identity).await {
        tracing::warn!(error = %format!("{err:#}"), "could not leave the process set; the entry expires by itself");
    }
    if let Some(dashboard) = dashboard {
        dashboard.abort();
    }
    match queue.recover(&process.identity, 0.0, true).await {
        Ok(Some(n)) if n > 0 => {
            tracing::warn!(jobs = n, "unfinished jobs put back at the front of their queues")
        }
        Ok(_) => {}
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "could not requeue unfinished jobs; another runner will recover them")
        }
    }
    tracing::info!("runner stopped");
    Ok(())
}

/// Behind Sentinel, follows the master. After a switch, the jobs the new
/// master holds in progress for this runner but that aren't running (the
/// old master saw them finish; the new one never heard) go back to their
/// queues: run twice rather than lost.
fn follow_master(
    queue: &Queue,
    endpoint: Endpoint,
    (identity, queues): (String, Vec<String>),
    busy: Arc<Busy>,
    shutdown: shutdown::Shutdown,
) {
    let mut switches = queue.follow_master(endpoint, shutdown);
    let queue = queue.clone();
    tokio::spawn(async move {
        while switches.changed().await.is_ok() {
            for name in &queues {
                match queue.rescue(&identity, name, &busy.payloads(name)).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(queue = %name, jobs = n, "jobs the old master saw finish are back in their queue")
                    }
                    Err(err) => {
                        tracing::warn!(queue = %name, error = %format!("{err:#}"), "could not check in-progress jobs on the new master")
                    }
                }
            }
        }
    });
}

/// Connects to Redis, waiting for it to come up if it isn't yet.
async fn connect(endpoint: &Endpoint) -> Result<Queue> {
    endpoint.check().with_context(|| {
        format!("--redis {} is not a valid Redis URL", crate::secret::redact_url(&endpoint.url))
    })?;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match Queue::connect(endpoint).await {
            Ok(queue) => return Ok(queue),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "Redis is not reachable yet; retrying"),
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// Takes a job whenever a slot is free, until the runner is quiet or
/// shutting down.
async fn serve(
    fetcher: &Fetcher,
    worker: &Arc<Worker>,
    slots: &Arc<Semaphore>,
    busy: &Arc<Busy>,
    shutdown: &Shutdown,
) {
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            _ = shutdown.wait_quiet() => return,
        };
        // Take as many jobs as there are free slots, in one round trip.
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let Some(jobs) = fetcher.next(shutdown, permits.len()).await else {
            return;
        };
        for ((queue, raw), permit) in jobs.into_iter().zip(permits) {
            let running = busy.start(&queue, Arc::from(raw.as_slice()));
            let worker = worker.clone();
            tokio::spawn(async move {
                // A panic, whatever its cause, must not leave the job in
                // progress with nobody to finish it.
                let work = AssertUnwindSafe(worker.process(queue.clone(), raw.clone(), &running));
                if let Err(panic) = work.catch_unwind().await {
                    worker.panicked(queue, raw, panic_message(&*panic)).await;
                }
                drop((running, permit));
            });
        }
    }
}

/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (_, Some(text)) => text.clone(),
        _ => "(no message)".to_string(),
    }
}

/// Waits until every slot is free again, or `timeout` passes.
async fn drain(slots: &Arc<Semaphore>, concurrency: usize, timeout: Duration) {
    let all = slots.acquire_many(concurrency as u32);
    if tokio::time::timeout(timeout, all).await.is_err() {
        tracing::warn!(
            timeout_s = timeout.as_secs_f64(),
            "jobs still running at the end of the shutdown timeout"
        );
    }
}

/// The mail transport the flags ask for.
fn mailer(args: &RunArgs) -> Result<Mailer> {
    let mailer = match &args.smtp {
        Some(url) => Mailer::smtp(url, &args.mail_from, usize::from(args.concurrency))?,
        None => Mailer::outbox(&args.outbox, &args.mail_from)?,
    };
    tracing::info!(mail = %mailer.describe(), "mail transport ready");
    Ok(mailer)
}

/// The registry, with its engine and code cache; no plugin loaded yet.
fn registry(
    args: &RunArgs,
    concurrency: usize,
    limits: Limits,
    dir: &Path,
    (mailer, policy, metrics, records): (Arc<Mailer>, Arc<Policy>, Arc<Metrics>, Records),
    queue: &Queue,
) -> Result<Registry> {
    let owners = Owners::new(policy.class_pins().clone(), Some(queue.clone()));
    let engine_limits = engine::EngineLimits { concurrency, memory_bytes: limits.memory_bytes };
    let engine = engine::build(engine_limits)?;
    let cache = Arc::new(CodeCache::new(args.code_cache_dir().as_deref(), &engine)?);
    let loader = Loader {
        compiler: Arc::new(Compiler::new(engine_limits, args.compile_limits()?)),
        linker: plugin::linker(&engine)?,
        mailer,
        policy,
        limits,
        cache,
        metrics,
        records: Arc::new(records),
        max_plugin_size: u64::from(args.max_plugin_size) * 1024 * 1024,
    };
    Ok(Registry::new(dir, loader, owners))
}

fn days(value: f64) -> Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        bail!("--dead-timeout must be a positive number of days, not {value}");
    }
    Ok(value * 24.0 * 3600.0)
}
