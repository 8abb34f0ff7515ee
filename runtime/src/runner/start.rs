//! Start-up: from checked settings to a runner ready to take jobs.
//!
//! Redis may be starting too, so connecting waits for it. Plugins load in
//! the background and each serves as soon as it is ready. The process is
//! announced before the first fetch, and jobs that dead runners left in
//! progress are recovered; should Redis fail there, the heartbeat task
//! tries again.

use super::serve::Running;
use super::settings::{PluginSettings, Settings};
use crate::backoff::Backoff;
use crate::busy::Busy;
use crate::cancel::{self, Cancels};
use crate::feed::Feed;
use crate::fetch::Fetcher;
use crate::heartbeat::{self, Process};
use crate::mail::{Ledger, Mailer};
use crate::metrics::Metrics;
use crate::plugin::{self, CodeCache, Compiler, Limits, Loader};
use crate::policy::Policy;
use crate::queue::ack::Acker;
use crate::queue::{Endpoint, Queue};
use crate::records::Records;
use crate::registry::owners::Owners;
use crate::registry::{self, Registry};
use crate::shutdown::{self, Shutdown};
use crate::web::{self, Dashboard};
use crate::worker::Worker;
use crate::{engine, scheduler};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Connects, starts loading plugins and the background tasks, and returns
/// the runner ready to serve.
pub async fn start(settings: Settings) -> Result<Running> {
    let Settings {
        order,
        concurrency,
        fetch_ahead,
        timing,
        poll_interval,
        shutdown_timeout,
        dead,
        limits,
        plugins,
        max_payload,
        mailer,
        policy,
        http,
        database,
        endpoint,
        periodic,
    } = settings;
    let metrics = Arc::new(Metrics::new());
    let models = policy.models().clone();
    let records = Records::new(database.as_deref(), concurrency as u32, models, metrics.clone())?;
    // Everything is checked; only now wait for Redis, which may be starting.
    let queue = connect(&endpoint).await?.with_dead_limits(dead);
    let (trigger, shutdown) = shutdown::channel();
    let mailer = Arc::new(mailer.with_ledger(Ledger::new(queue.clone())));
    let jobs = JobSetup { concurrency, limits, mailer, policy, metrics: metrics.clone(), records };
    let registry = Arc::new(registry(&plugins, jobs, &queue)?);
    // Watch before the first scan, so a file dropped meanwhile isn't missed.
    if plugins.watch {
        registry::watch::spawn(registry.clone(), shutdown.clone())?;
    }
    let files = registry.plugin_files()?;
    tokio::spawn({
        let registry = registry.clone();
        async move { registry.load_all(files).await }
    });

    let process = Arc::new(Process::new(concurrency, order.weights()));
    let busy = Arc::new(Busy::default());
    let mut background = Vec::new();
    if let Some((addr, credentials)) = http {
        let dashboard = Dashboard {
            queue: queue.admin(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            busy: busy.clone(),
            periodic: periodic.clone(),
        };
        background.extend(web::spawn(addr, credentials, dashboard).await);
    }
    if let Err(err) = heartbeat::beat(&queue, &process, timing, &busy, false).await {
        tracing::warn!(error = %format!("{err:#}"), "first heartbeat failed");
    }
    if let Err(err) = heartbeat::recover_dead(&queue, &process, timing).await {
        tracing::warn!(error = %format!("{err:#}"), "looking for dead runners failed");
    }
    tracing::info!(identity = %process.identity, queues = ?order.names(), concurrency, "runner started");

    shutdown::on_signals(trigger.clone());
    let rescue_asked = Arc::new(AtomicBool::new(false));
    if endpoint.is_sentinel() {
        follow_master(&queue, endpoint, rescue_asked.clone(), shutdown.clone());
    }
    heartbeat::on_ttin(busy.clone());
    let lifeline = (shutdown.clone(), trigger);
    background.push(heartbeat::spawn(queue.clone(), process.clone(), busy.clone(), timing, lifeline));
    scheduler::spawn(queue.clone(), process.identity.clone(), poll_interval, shutdown.clone());
    crate::periodic::spawn(queue.clone(), periodic, shutdown.clone());
    let cancels = Arc::new(Cancels::default());
    cancel::listen(queue.clone(), cancels.clone(), shutdown.clone());

    let identity = process.identity.clone();
    let fetcher =
        Fetcher { queue: queue.clone(), identity: identity.clone(), order, busy: busy.clone(), rescue_asked };
    let slots = Arc::new(Semaphore::new(concurrency));
    Ok(Running {
        worker: Arc::new(Worker {
            acker: Acker::spawn(queue.clone(), identity.clone()),
            registry,
            shutdown: shutdown.clone(),
            max_payload,
            metrics,
            queue: queue.clone(),
            cancels,
        }),
        feed: Feed::start(fetcher, slots.clone(), fetch_ahead, shutdown.clone()),
        slots,
        shutdown_timeout,
        shutdown,
        queue,
        identity,
        background,
    })
}

/// What every job of every plugin gets: limits and capabilities.
struct JobSetup {
    concurrency: usize,
    limits: Limits,
    mailer: Arc<Mailer>,
    policy: Arc<Policy>,
    metrics: Arc<Metrics>,
    records: Records,
}

/// Behind Sentinel, follows the master. After a switch, the jobs the new
/// master holds in progress for this runner but that aren't running (the
/// old master saw them finish; the new one never heard) go back to their
/// queues, run twice rather than lost: the fetcher does it before its next
/// fetch (see [`Fetcher::rescue_asked`]).
fn follow_master(queue: &Queue, endpoint: Endpoint, rescue_asked: Arc<AtomicBool>, shutdown: Shutdown) {
    let mut switches = queue.follow_master(endpoint, shutdown);
    tokio::spawn(async move {
        while switches.changed().await.is_ok() {
            rescue_asked.store(true, Ordering::Release);
        }
    });
}

/// Connects to Redis, waiting for it to come up if it isn't yet.
async fn connect(endpoint: &Endpoint) -> Result<Queue> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match Queue::connect(endpoint).await {
            Ok(queue) => return Ok(queue),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "Redis is not reachable yet; retrying"),
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// The registry, with its engine and code cache; no plugin loaded yet.
fn registry(plugins: &PluginSettings, jobs: JobSetup, queue: &Queue) -> Result<Registry> {
    let owners = Owners::new(jobs.policy.class_pins().clone(), Some(queue.clone()));
    let engine_limits =
        engine::EngineLimits { concurrency: jobs.concurrency, memory_bytes: jobs.limits.memory_bytes };
    let engine = engine::build(engine_limits)?;
    let cache = Arc::new(CodeCache::new(plugins.cache_dir.as_deref(), &engine)?);
    let loader = Loader {
        compiler: Arc::new(Compiler::new(engine_limits, plugins.compile)),
        linker: plugin::linker(&engine)?,
        mailer: jobs.mailer,
        policy: jobs.policy,
        limits: jobs.limits,
        cache,
        metrics: jobs.metrics,
        records: Arc::new(jobs.records),
        max_plugin_size: plugins.max_size,
    };
    Ok(Registry::new(&plugins.dir, loader, owners))
}
