//! The job queue in Redis, in Sidekiq's layout, with reliable fetch.
//!
//! [`Queue::fetch`] moves a job atomically from `queue:<name>` into a list
//! private to this runner; [`Queue::finish`] removes it from there in the
//! same Redis script that records its outcome. A job is therefore
//! always somewhere: in its queue, in a runner's in-progress list, or in its
//! final place. When a runner dies, [`Queue::recover`] puts its in-progress
//! jobs back at the front of their queues.

pub mod ack;
mod admin;
pub mod backtrace;
mod browse;
mod cancel;
mod endpoint;
pub mod executions;
pub mod iteration;
pub mod keys;
mod link;
mod periodic;
mod process;
mod scripts;
mod turn;
mod unique;

pub use admin::SetAction;
pub use browse::{
    Day, Entry, JobView, PAGE_SIZE, Page, ProcessView, QueueSummary, RedisInfo, Stats, WorkView,
};
pub use cancel::{Cancelled, check_jid};
pub use endpoint::Endpoint;
pub use periodic::{PeriodicState, Tick};
pub use process::Beat;

use crate::clock;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the dead set is trimmed whenever a job is added to it.
#[derive(Clone, Copy, Debug)]
pub struct DeadLimits {
    /// The most jobs kept; the oldest go first.
    pub max_jobs: u32,
    /// How long a dead job is kept, in seconds.
    pub max_age_secs: f64,
}

impl Default for DeadLimits {
    /// Sidekiq's: 10,000 jobs, 180 days.
    fn default() -> Self {
        DeadLimits { max_jobs: 10_000, max_age_secs: 180.0 * 24.0 * 3600.0 }
    }
}

/// How the connection comes back after Redis went away: a few quick
/// attempts, then the command fails and the caller, which retries on its own
/// schedule, triggers the next round. The response timeout keeps a half-open
/// connection from hanging a command forever.
fn reconnect_policy() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(3)
        .set_max_delay(1000)
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(10))
}

/// Where a finished job goes.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Done: the job is simply removed.
    Done,
    /// Failed, to be tried again at `at` (epoch seconds).
    Retry { payload: String, at: f64 },
    /// Failed for good: into the dead set.
    Dead { payload: String },
    /// Failed and dropped, as the job asked (`retry: false`).
    Discard,
    /// An iterable job that stopped at a checkpoint: back at the end of
    /// its queue, to resume from its cursor. Not a failure, and its sent
    /// mail is kept for the runs to come.
    Requeue { payload: String },
}

/// A finished job, as [`Queue::finish`] records it.
pub struct Finished<'a> {
    /// The queue it was taken from.
    pub queue: &'a str,
    /// Its JSON exactly as fetched, to find it in the in-progress list.
    pub raw: &'a [u8],
    /// The jid whose sent-mail record goes with it when it won't run
    /// again; empty when it has none.
    pub sent_mail_of: &'a str,
    /// How it ended.
    pub outcome: &'a Outcome,
}

impl Finished<'_> {
    /// Whether recording it only takes it out of its in-progress list:
    /// done, counted as processed, with no sent-mail record to drop.
    fn only_leaves(&self) -> bool {
        matches!(self.outcome, Outcome::Done) && self.sent_mail_of.is_empty()
    }
}

/// A handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    /// The connection to the Redis master; replaced when Sentinel names
    /// another (see [`link`]).
    link: Arc<ArcSwap<link::Link>>,
    /// A connection of its own for blocking waits, which would hold up
    /// every other command on the shared one; opened on first use.
    waiter: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
    /// The waiting connection's `CLIENT ID` (0: none known), so that
    /// [`Queue::end_wait`] can end a wait from another connection.
    waiter_id: Arc<AtomicU64>,
    /// How the dead set is trimmed.
    dead: DeadLimits,
}

/// The dashboard's handle on the queue: reading every set and list and the
/// operator's actions, but none of the hot path (fetching, finishing,
/// recovering), so the web layer can't record a job's outcome.
#[derive(Clone)]
pub struct Admin {
    /// The queue it reads and changes.
    queue: Queue,
}

impl Admin {
    fn connection(&self) -> ConnectionManager {
        self.queue.connection()
    }

    /// How the dead set is trimmed, for moves into it.
    fn dead_limits(&self) -> DeadLimits {
        self.queue.dead
    }
}

impl Queue {
    /// The dashboard's handle on this queue.
    pub fn admin(&self) -> Admin {
        Admin { queue: self.clone() }
    }

    /// Connects to the Redis at `endpoint` (the master, behind Sentinel).
    pub async fn connect(endpoint: &Endpoint) -> Result<Queue> {
        let url = endpoint.master_url().await?;
        let link = Arc::new(ArcSwap::from_pointee(link::Link::open(endpoint, &url).await?));
        Ok(Queue { link, waiter: Arc::default(), waiter_id: Arc::default(), dead: DeadLimits::default() })
    }

    /// Trims the dead set to `limits` instead of Sidekiq's defaults.
    pub fn with_dead_limits(self, limits: DeadLimits) -> Queue {
        Queue { dead: limits, ..self }
    }

    /// A connection to the current master, for one command or pipeline.
    pub fn connection(&self) -> ConnectionManager {
        self.link.load().conn.clone()
    }

    /// A new connection of its own to the current master, for a command
    /// that blocks the connection it runs on (`WAIT`), which on the shared
    /// one would hold up every other command.
    pub async fn own_connection(&self) -> Result<MultiplexedConnection> {
        let link = self.link.load();
        link.client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis at {}", crate::secret::redact_url(&link.url)))
    }

    /// Pushes a job's JSON onto `queue` exactly as Sidekiq's client does.
    pub async fn push(&self, queue: &str, payload: &str) -> Result<()> {
        let mut conn = self.connection();
        redis::pipe()
            .atomic()
            .sadd(keys::QUEUES, queue)
            .lpush(keys::queue(queue), payload)
            .exec_async(&mut conn)
            .await
            .with_context(|| format!("pushing a job to queue {queue}"))
    }

    /// Puts a job's JSON into the `schedule` set, due at `at` (epoch
    /// seconds), exactly as Sidekiq's client does for `perform_at`.
    pub async fn schedule(&self, payload: &str, at: f64) -> Result<()> {
        let mut conn = self.connection();
        conn.zadd::<_, _, _, ()>(keys::SCHEDULE, payload, at).await.context("scheduling a job")
    }

    /// Takes up to `max` jobs, trying `queues` in order, into `identity`'s
    /// in-progress lists, in one round trip. Returns `(queue, job JSON)`
    /// pairs; the JSON is bytes, as a client may have pushed anything.
    pub async fn fetch(&self, identity: &str, queues: &[&str], max: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let mut invocation = scripts::FETCH.prepare_invoke();
        invocation.arg(max);
        for queue in queues {
            invocation.key(keys::queue(queue)).key(keys::inprogress(identity, queue)).arg(*queue);
        }
        let mut conn = self.connection();
        let taken: Vec<(String, Vec<Vec<u8>>)> =
            invocation.invoke_async(&mut conn).await.context("fetching jobs")?;
        Ok(taken
            .into_iter()
            .flat_map(|(queue, jobs)| jobs.into_iter().map(move |job| (queue.clone(), job)))
            .collect())
    }

    /// Waits up to `timeout` for a job on `queue` and moves it into
    /// `identity`'s in-progress list (BLMOVE), so an idle runner starts a
    /// job the moment it is pushed.
    pub async fn wait_for_job(
        &self,
        identity: &str,
        queue: &str,
        timeout: Duration,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let mut waiter = self.waiter.lock().await;
        if waiter.is_none() {
            let client = self.link.load().client.clone();
            let mut conn =
                client.get_multiplexed_async_connection().await.context("connecting to wait for jobs")?;
            // A Redis that refuses CLIENT (an ACL, a managed service) still
            // serves; its waits then end only at their timeout.
            let id: u64 = redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await.unwrap_or(0);
            self.waiter_id.store(id, Ordering::Release);
            *waiter = Some(conn);
        }
        let conn = waiter.as_mut().expect("connected above");
        let job: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("BLMOVE")
            .arg(keys::queue(queue))
            .arg(keys::inprogress(identity, queue))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await;
        match job {
            Ok(job) => Ok(job.map(|raw| (queue.to_string(), raw))),
            Err(err) => {
                // Reconnect next time.
                *waiter = None;
                self.waiter_id.store(0, Ordering::Release);
                Err(err).with_context(|| format!("waiting for a job on queue {queue}"))
            }
        }
    }

    /// Ends the wait for jobs in flight, if any, from another connection:
    /// Redis answers it at once as though it had timed out, or has already
    /// answered it with a job. A wait given up on this side goes on in
    /// Redis until its timeout, and would take a job pushed meanwhile into
    /// the in-progress list with nobody to run it.
    pub async fn end_wait(&self) -> Result<()> {
        let id = self.waiter_id.load(Ordering::Acquire);
        if id == 0 {
            return Ok(());
        }
        let mut conn = self.connection();
        let _: i64 = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(id)
            .query_async(&mut conn)
            .await
            .context("ending the wait for jobs (CLIENT UNBLOCK)")?;
        Ok(())
    }

    /// Records the outcomes of finished jobs and removes them from the
    /// in-progress lists, in one round trip; counts them in Sidekiq's stats. A
    /// job that won't run again (done or discarded) has its sent-mail
    /// record dropped. A job this runner no longer holds has another copy
    /// that will run, so its outcome isn't recorded (see
    /// [`scripts::FINISH`]); returns how many there were.
    pub async fn finish(&self, identity: &str, jobs: &[Finished<'_>]) -> Result<u64> {
        let date = clock::utc_date(clock::now());
        if jobs.iter().all(Finished::only_leaves) {
            return self.finish_done(identity, jobs, &date).await;
        }
        let failed =
            jobs.iter().filter(|job| !matches!(job.outcome, Outcome::Done | Outcome::Requeue { .. })).count();
        let mut invocation = scripts::FINISH.prepare_invoke();
        invocation
            .key(keys::STAT_PROCESSED)
            .key(keys::daily_stat("processed", &date))
            .key(keys::STAT_FAILED)
            .key(keys::daily_stat("failed", &date))
            .arg(clock::now())
            .arg(self.dead.max_age_secs)
            .arg(self.dead.max_jobs)
            .arg(jobs.len())
            .arg(failed);
        for job in jobs {
            let held = keys::inprogress(identity, job.queue);
            let (what, target, payload, at) = match job.outcome {
                Outcome::Done | Outcome::Discard if !job.sent_mail_of.is_empty() => {
                    ("forget", keys::sent_mail(job.sent_mail_of), "", 0.0)
                }
                Outcome::Done | Outcome::Discard => ("done", held.clone(), "", 0.0),
                Outcome::Retry { payload, at } => ("retry", keys::RETRY.to_string(), payload.as_str(), *at),
                Outcome::Dead { payload } => ("dead", keys::DEAD.to_string(), payload.as_str(), 0.0),
                Outcome::Requeue { payload } => ("requeue", keys::queue(job.queue), payload.as_str(), 0.0),
            };
            invocation.key(held).key(target).arg(what).arg(job.raw).arg(payload).arg(at);
        }
        let mut conn = self.connection();
        invocation.invoke_async(&mut conn).await.context("recording outcomes of jobs")
    }

    /// [`Queue::finish`] for a batch whose jobs all just leave their
    /// in-progress lists (done, with no sent-mail record): nothing depends
    /// on whether each was still held, so the removals and the counts go
    /// in one MULTI/EXEC instead of the script. Redis spends about half as
    /// long on each job (no Lua strings for its arguments, no call from
    /// Lua per command), and the result is the same: a job no longer held
    /// here is counted as gone, and a batch recorded twice changes nothing
    /// the second time but the counts, as with the script.
    async fn finish_done(&self, identity: &str, jobs: &[Finished<'_>], date: &str) -> Result<u64> {
        let mut transaction = redis::pipe();
        transaction.atomic();
        for job in jobs {
            transaction.lrem(keys::inprogress(identity, job.queue), -1, job.raw);
        }
        transaction.incr(keys::STAT_PROCESSED, jobs.len()).ignore();
        transaction.incr(keys::daily_stat("processed", date), jobs.len()).ignore();
        let mut conn = self.connection();
        let removed: Vec<u64> =
            transaction.query_async(&mut conn).await.context("recording outcomes of jobs")?;
        Ok(removed.iter().filter(|&&n| n == 0).count() as u64)
    }

    /// Every runner that may hold in-progress jobs.
    pub async fn runners(&self) -> Result<Vec<String>> {
        let mut conn = self.connection();
        conn.smembers(keys::RUNNERS).await.context("listing runners")
    }

    /// Requeues the jobs `identity` holds if its last heartbeat is older
    /// than `timeout_secs` (or at once when `force`). Returns the number
    /// requeued, or `None` when the runner is alive.
    pub async fn recover(&self, identity: &str, timeout_secs: f64, force: bool) -> Result<Option<u64>> {
        let mut conn = self.connection();
        let moved: i64 = scripts::RECOVER
            .key(keys::RUNNERS)
            .key(keys::inprogress_set(identity))
            .key(identity)
            .arg(identity)
            .arg(clock::now())
            .arg(timeout_secs)
            .arg(if force { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .with_context(|| format!("recovering the jobs of runner {identity}"))?;
        Ok(u64::try_from(moved).ok())
    }

    /// Puts back in `queue` the jobs in `identity`'s in-progress list for it
    /// that aren't among `running` (whose fetch reply was lost). Returns how
    /// many were put back.
    pub async fn rescue(&self, identity: &str, queue: &str, running: &[std::sync::Arc<[u8]>]) -> Result<u64> {
        let mut invocation = scripts::RESCUE.prepare_invoke();
        invocation.key(keys::inprogress(identity, queue)).key(keys::queue(queue));
        for job in running {
            invocation.arg(&**job);
        }
        let mut conn = self.connection();
        invocation
            .invoke_async(&mut conn)
            .await
            .with_context(|| format!("rescuing lost fetches from queue {queue}"))
    }

    /// Moves due jobs from the `schedule` or `retry` set to their queues.
    pub async fn enqueue_due(&self, set: &str, limit: u32) -> Result<u64> {
        let mut conn = self.connection();
        scripts::ENQUEUE_DUE
            .key(set)
            .arg(clock::now())
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .with_context(|| format!("enqueuing due jobs from {set}"))
    }
}
