//! One Redis shard as a runner serves it. With several `--redis` URLs the
//! runner serves each shard as Sidekiq users run a process per shard: it
//! announces itself, beats, recovers dead runners' jobs, moves due
//! scheduled jobs and retries, hears cancels and records outcomes on each
//! shard, for the jobs of that shard. Plugins, worker slots, mail and the
//! dashboard are shared.

use super::settings::Settings;
use crate::backoff::Backoff;
use crate::busy::Busy;
use crate::cancel::{self, Cancels};
use crate::fetch::{Fetcher, QueueOrder};
use crate::heartbeat::{self, Process, Timing};
use crate::mail::Ledger;
use crate::metrics::Metrics;
use crate::periodic::spec::Periodic;
use crate::queue::ack::Acker;
use crate::queue::executions::Executions;
use crate::queue::{Endpoint, Queue};
use crate::registry::Registry;
use crate::scheduler;
use crate::shutdown::{Shutdown, Trigger};
use crate::worker::Worker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A shard connected, before its tasks start.
pub struct Connected {
    /// Its place among the `--redis` URLs.
    pub index: usize,
    /// Where it is, to follow its master behind Sentinel.
    pub endpoint: Endpoint,
    /// The connection.
    pub queue: Queue,
}

/// A shard being served.
pub struct Served {
    /// Performs its jobs and records their outcomes on it.
    pub worker: Arc<Worker>,
    /// Takes its jobs.
    pub fetcher: Fetcher,
    /// Tasks stopped at the end (its heartbeat).
    pub background: Vec<JoinHandle<()>>,
}

/// What every shard shares.
pub struct Shared<'a> {
    /// This runner, as each shard's process set lists it.
    pub process: &'a Arc<Process>,
    /// Which plugin performs which class.
    pub registry: &'a Arc<Registry>,
    /// This process's counters.
    pub metrics: &'a Arc<Metrics>,
    /// Quiet and shutdown.
    pub shutdown: &'a Shutdown,
    /// Fires them, for the Web UI's Quiet and Stop.
    pub trigger: &'a Trigger,
    /// Which queues to serve and how.
    pub order: &'a QueueOrder,
    /// Heartbeat interval and process timeout.
    pub timing: Timing,
    /// Within how long due scheduled jobs and retries are moved.
    pub poll_interval: Duration,
    /// The largest payload accepted, in bytes.
    pub max_payload: usize,
    /// How long one run of an iterable job goes on.
    pub slice: Duration,
    /// The sent-mail ledger, kept on every shard.
    pub ledger: &'a Ledger,
}

/// Connects to every shard, each waiting for its Redis to come up.
pub async fn connect_all(settings: &Settings) -> Vec<Connected> {
    let mut shards = Vec::new();
    for (index, endpoint) in settings.endpoints.iter().enumerate() {
        let queue = connect(index, endpoint).await.with_dead_limits(settings.dead);
        shards.push(Connected { index, endpoint: endpoint.clone(), queue });
    }
    shards
}

async fn connect(index: usize, endpoint: &Endpoint) -> Queue {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        match Queue::connect(endpoint).await {
            Ok(queue) => return queue,
            Err(err) => {
                tracing::warn!(shard = index, error = %format!("{err:#}"), "Redis is not reachable yet; retrying")
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

impl Connected {
    /// Announces the runner on this shard, recovers what dead runners left
    /// in progress, and starts its tasks; periodic jobs are pushed to the
    /// first shard only.
    pub async fn serve(self, shared: &Shared<'_>, periodic: Arc<Vec<Periodic>>, busy: Arc<Busy>) -> Served {
        let Connected { index, endpoint, queue } = self;
        let Shared { process, timing, shutdown, .. } = *shared;
        if let Err(err) = heartbeat::beat(&queue, process, timing, &busy, false).await {
            tracing::warn!(shard = index, error = %format!("{err:#}"), "first heartbeat failed");
        }
        if let Err(err) = heartbeat::recover_dead(&queue, process, timing).await {
            tracing::warn!(shard = index, error = %format!("{err:#}"), "looking for dead runners failed");
        }
        let rescue_asked = Arc::new(AtomicBool::new(false));
        let mut background = Vec::new();
        if endpoint.is_sentinel() {
            background.extend(follow_master(&queue, endpoint, rescue_asked.clone(), shutdown.clone()));
        }
        heartbeat::on_ttin(busy.clone());
        let lifeline = (shutdown.clone(), shared.trigger.clone());
        let executions = Arc::new(Executions::default());
        let beating = (process.clone(), busy.clone(), executions.clone());
        background.push(heartbeat::spawn(queue.clone(), beating, timing, lifeline));
        let identity = process.identity.clone();
        background.push(scheduler::spawn(
            queue.clone(),
            identity.clone(),
            shared.poll_interval,
            shutdown.clone(),
        ));
        if index == 0 {
            background.extend(crate::periodic::spawn(queue.clone(), periodic, shutdown.clone()));
        }
        let cancels = Arc::new(Cancels::default());
        // Known before the first fetch: a job cancelled while no runner ran
        // must not slip in before the listener's first read.
        match queue.cancelled_jids().await {
            Ok(jids) => cancels.resync(jids),
            Err(err) => {
                tracing::warn!(shard = index, error = %format!("{err:#}"), "could not read the cancelled jobs")
            }
        }
        background.push(cancel::listen(queue.clone(), cancels.clone(), shutdown.clone()));
        let (acker, recording) = Acker::spawn(queue.clone(), identity.clone());
        background.push(recording);
        let worker = Arc::new(Worker {
            acker,
            registry: shared.registry.clone(),
            shutdown: shutdown.clone(),
            max_payload: shared.max_payload,
            slice: shared.slice,
            metrics: shared.metrics.clone(),
            queue: queue.clone(),
            cancels,
            shard: index,
            ledger: shared.ledger.clone(),
            executions,
        });
        let order = shared.order.clone();
        let fetcher = Fetcher { queue: queue.clone(), identity, order, busy, rescue_asked };
        Served { worker, fetcher, background }
    }
}

/// Behind Sentinel, follows the master. After a switch, the jobs the new
/// master holds in progress for this runner but that aren't running (the
/// old master saw them finish; the new one never heard) go back to their
/// queues, run twice rather than lost: the fetcher does it before its next
/// fetch (see [`Fetcher::rescue_asked`]).
fn follow_master(
    queue: &Queue,
    endpoint: Endpoint,
    rescue_asked: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> Vec<JoinHandle<()>> {
    let (mut switches, mut tasks) = queue.follow_master(endpoint, shutdown);
    tasks.push(tokio::spawn(async move {
        while switches.changed().await.is_ok() {
            rescue_asked.store(true, Ordering::Release);
        }
    }));
    tasks
}
