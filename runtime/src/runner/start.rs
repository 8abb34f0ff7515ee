//! Start-up: from checked settings to a runner ready to take jobs.
//!
//! Redis may be starting too, so connecting waits for it. Plugins load in
//! the background and each serves as soon as it is ready. The process is
//! announced before the first fetch, and jobs that dead runners left in
//! progress are recovered; should Redis fail there, the heartbeat task
//! tries again.

use super::serve::Running;
use super::settings::{PluginSettings, Settings};
use super::shard;
use crate::busy::Busy;
use crate::engine;
use crate::feed::Feed;
use crate::heartbeat::Process;
use crate::mail::{Ledger, Mailer};
use crate::metrics::Metrics;
use crate::plugin::{self, CodeCache, Compiler, Limits, Loader};
use crate::policy::Policy;
use crate::queue::Queue;
use crate::records::Records;
use crate::registry::owners::Owners;
use crate::registry::{self, Registry};
use crate::shutdown;
use crate::web::{self, Dashboard, ShardView};
use anyhow::Result;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Connects, starts loading plugins and the background tasks, and returns
/// the runner ready to serve.
pub async fn start(settings: Settings) -> Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let models = settings.policy.models().clone();
    let database = settings.database.as_deref();
    let records = Records::new(database, settings.concurrency as u32, models, metrics.clone())?;
    // Everything is checked; only now wait for Redis, which may be starting.
    let shards = shard::connect_all(&settings).await;
    let Settings {
        order,
        concurrency,
        fetch_ahead,
        timing,
        poll_interval,
        shutdown_timeout,
        limits,
        slice,
        ..
    } = settings;
    let Settings { plugins, max_payload, mailer, mail_replicas, policy, http, periodic, storage, .. } =
        settings;
    let queues: Vec<Queue> = shards.iter().map(|shard| shard.queue.clone()).collect();
    let (trigger, shutdown) = shutdown::channel();
    let ledger = Ledger::new(queues.clone()).replicated(mail_replicas);
    let mailer = Arc::new(mailer.with_ledger(ledger.clone()));
    let jobs = JobSetup { concurrency, limits, mailer, policy, metrics: metrics.clone(), records, storage };
    let registry = Arc::new(registry(&plugins, jobs, &queues[0])?);
    // Watch before the first scan, so a file dropped meanwhile isn't missed.
    let mut background = Vec::new();
    if plugins.watch {
        background.push(registry::watch::spawn(registry.clone(), shutdown.clone())?);
    }
    let files = registry.plugin_files()?;
    background.push(crate::supervise::once("loading the plugins".into(), {
        let registry = registry.clone();
        async move { registry.load_all(files).await }
    }));

    let process = Arc::new(Process::new(concurrency, order.weights()));
    let busy: Vec<Arc<Busy>> = shards.iter().map(|_| Arc::new(Busy::default())).collect();
    if let Some((addr, credentials)) = http {
        let shards = queues.iter().zip(&busy);
        let dashboard = Dashboard {
            shards: shards
                .map(|(queue, busy)| ShardView { queue: queue.admin(), busy: busy.clone() })
                .collect(),
            metrics: metrics.clone(),
            registry: registry.clone(),
            periodic: periodic.clone(),
        };
        background.extend(web::spawn(addr, credentials, dashboard).await);
    }
    let shared = shard::Shared {
        process: &process,
        registry: &registry,
        metrics: &metrics,
        shutdown: &shutdown,
        trigger: &trigger,
        order: &order,
        timing,
        poll_interval,
        max_payload,
        slice,
        ledger: &ledger,
    };
    let (mut workers, mut fetchers) = (Vec::new(), Vec::new());
    for (shard, busy) in shards.into_iter().zip(busy) {
        let served = shard.serve(&shared, periodic.clone(), busy).await;
        workers.push(served.worker);
        fetchers.push(served.fetcher);
        background.extend(served.background);
    }
    tracing::info!(identity = %process.identity, queues = ?order.names(), concurrency, shards = queues.len(), "runner started");
    shutdown::on_signals(trigger);

    let slots = Arc::new(Semaphore::new(concurrency));
    Ok(Running {
        workers,
        feed: Feed::start(fetchers, slots.clone(), fetch_ahead, shutdown.clone()),
        slots,
        shutdown_timeout,
        shutdown,
        queues,
        identity: process.identity.clone(),
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
    storage: Arc<crate::storage::Storage>,
}

/// The registry, with its engine and code cache; no plugin loaded yet.
fn registry(plugins: &PluginSettings, jobs: JobSetup, queue: &Queue) -> Result<Registry> {
    let owners = Owners::new(jobs.policy.class_pins().clone(), Some(queue.clone()));
    let engine_limits = engine::EngineLimits {
        concurrency: jobs.concurrency,
        memory_bytes: jobs.limits.memory_bytes,
        warm_instances: jobs.policy.reusing_plugins() * jobs.concurrency,
        codegen: plugins.compile.codegen,
    };
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
        storage: jobs.storage,
        max_plugin_size: plugins.max_size,
    };
    Ok(Registry::new(&plugins.dir, loader, owners))
}
