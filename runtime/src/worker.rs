//! Performing one fetched job and recording how it ended.
//!
//! [`Worker::process`] parses the payload, finds the plugin for its class,
//! runs it, and turns the result into an [`Outcome`]: done, retry, dead or
//! discard, following Sidekiq's retry policy. [`Worker::settle`] records
//! it, after the job's slot has gone to the next job. Recording the outcome
//! is what takes the job out of this runner's in-progress list, so it is
//! retried until Redis accepts it; if the runner dies first, the job is
//! recovered and runs again (at least once, never lost).

use crate::backoff::Backoff;
use crate::busy::Running;
use crate::cancel::Cancels;
use crate::iteration::{End, Iteration, Stop, continuation};
use crate::job::Job;
use crate::mail::Ledger;
use crate::metrics::{Metrics, NO_PLUGIN, UNHANDLED_CLASS};
use crate::plugin::CallError;
use crate::queue::ack::Acker;
use crate::queue::executions::Executions;
use crate::queue::{Outcome, Queue};
use crate::registry::Registry;
use crate::retry::{self, Disposition, Failure};
use crate::unique::{self, Unique};
use crate::wit;
use crate::{clock, expiry, shutdown::Shutdown};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Everything a job needs besides itself; shared by all running jobs.
pub struct Worker {
    /// Records outcomes in Redis, in batches.
    pub acker: Acker,
    /// Which plugin performs which class.
    pub registry: Arc<Registry>,
    /// Lets outcome recording give up waiting for Redis at shutdown.
    pub shutdown: Shutdown,
    /// The largest payload accepted, in bytes; larger ones go to the dead set.
    pub max_payload: usize,
    /// Counts jobs and their durations.
    pub metrics: Arc<Metrics>,
    /// Redis, for the locks of unique jobs.
    pub queue: Queue,
    /// Cancelled jobs, and the stop switches of running ones.
    pub cancels: Arc<Cancels>,
    /// Which Redis shard its jobs come from (0 when there is one).
    pub shard: usize,
    /// The sent-mail ledger, which says whose records to drop.
    pub ledger: Ledger,
    /// The Metrics tab's numbers for this shard, written at each heartbeat.
    pub executions: Arc<Executions>,
    /// How long one run of an iterable job goes on before it is told to
    /// stop at its next checkpoint (`--slice`).
    pub slice: Duration,
}

/// A job that has run (or couldn't), with the outcome still to record.
pub struct Ended {
    /// The queue it was taken from.
    queue: String,
    /// Its JSON exactly as fetched.
    raw: Arc<[u8]>,
    /// Its jid, empty if it had none.
    jid: String,
    /// How it ended; `None` for a job stopped at the end of the shutdown
    /// timeout, which stays in progress to be handed back to its queue.
    outcome: Option<Outcome>,
    /// Its uniqueness lock, if it has one.
    unique: Option<Unique>,
    /// The job's span, for the recording's log lines.
    span: tracing::Span,
}

impl Worker {
    /// Performs the job `raw` taken from `queue`; its outcome is recorded
    /// by [`Worker::settle`], once its slot is free for the next job.
    pub async fn process(&self, queue: String, raw: Arc<[u8]>, running: &Running) -> Ended {
        let parsed = if raw.len() > self.max_payload {
            Err(anyhow::anyhow!(
                "the payload is {} bytes, more than the limit of {} (--max-payload)",
                raw.len(),
                self.max_payload
            ))
        } else {
            Job::parse(raw.clone(), &queue)
        };
        // The span is made with every field it will have: recording a
        // field later formats the span's fields a second time. Class and
        // jid are given as strings, quoted in the log as they always were.
        let (span, job) = match parsed {
            Ok(job) => (
                tracing::info_span!("job", queue = %queue, class = job.class.as_str(), jid = job.jid.as_str()),
                Ok(job),
            ),
            Err(err) => (tracing::info_span!("job", queue = %queue), Err(err)),
        };
        async {
            let (jid, outcome, unique) = match job {
                Ok(job) => {
                    let unique = unique::of(&job);
                    (job.jid.clone(), self.perform(job, unique.as_ref(), running).await, unique)
                }
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "invalid job payload; moved to the dead set");
                    self.metrics.job_finished("InvalidJob", NO_PLUGIN, true, 0.0);
                    let payload = invalid_payload(&raw, &queue, &format!("{err:#}"));
                    (String::new(), Some(Outcome::Dead { payload }), None)
                }
            };
            Ended { queue, raw, jid, outcome, unique, span: tracing::Span::current() }
        }
        .instrument(span)
        .await
    }

    /// Records how a job ended, which takes it out of this runner's
    /// in-progress list, and ends its uniqueness lock unless it waits for
    /// a retry.
    pub async fn settle(&self, ended: Ended) {
        let Ended { queue, raw, jid, outcome, unique, span } = ended;
        // Stopped at shutdown: left in progress for the hand-back, its
        // uniqueness lock and sent mail kept for the run that follows.
        let Some(outcome) = outcome else { return };
        async {
            self.record(&queue, &raw, &jid, &outcome).await;
            // A job waiting for its retry still holds its lock.
            if let Some(unique) = &unique
                && !matches!(outcome, Outcome::Retry { .. })
            {
                unique::ended(&self.queue, &jid, unique).await;
            }
        }
        .instrument(span)
        .await
    }

    /// The outcome for a job whose processing panicked: a retry, as for
    /// any exception, or the dead set if it can't even be read.
    pub fn panicked(&self, queue: String, raw: Arc<[u8]>, message: String) -> Ended {
        let parsed = std::panic::catch_unwind(|| Job::parse(raw.clone(), &queue));
        let (jid, outcome) = match parsed {
            Ok(Ok(job)) => {
                let jid = job.jid.clone();
                tracing::error!(queue = %queue, class = %job.class, jid = %jid, panic = %message,
                    "the runner panicked performing this job; it is recorded as failed");
                let failure = Failure::retryable("RunnerPanic", format!("the runner panicked: {message}"));
                (jid, self.failed(job, failure))
            }
            _ => {
                tracing::error!(queue = %queue, panic = %message, "the runner panicked reading a job; it goes to the dead set");
                let reason = format!("the runner panicked reading it: {message}");
                (String::new(), Outcome::Dead { payload: invalid_payload(&raw, &queue, &reason) })
            }
        };
        Ended { queue, raw, jid, outcome: Some(outcome), unique: None, span: tracing::Span::none() }
    }

    /// Performs `job`; `None` when the end of the shutdown timeout stopped it.
    async fn perform(&self, job: Job, unique: Option<&Unique>, running: &Running) -> Option<Outcome> {
        crate::faults::at(crate::faults::Point::Perform { class: &job.class });
        if let Some(expired_at) = expiry::expired(job.fields(), clock::now()) {
            tracing::info!(expired_at, "job expired before it started; discarded unrun");
            self.metrics.job_expired(self.class_label(&job.class));
            return Some(Outcome::Discard);
        }
        if let Some(unique) = unique
            && let Some(holder) = unique::duplicate_of(&self.queue, &job, unique).await
        {
            tracing::info!(held_by = %holder, "a duplicate of a pending unique job; dropped unrun");
            self.metrics.job_duplicate(self.class_label(&job.class));
            return Some(Outcome::Discard);
        }
        let Some(registered) = self.cancels.start(&job.jid) else {
            tracing::info!("job cancelled before it started; discarded unrun");
            self.metrics.job_cancelled(self.class_label(&job.class), false);
            return Some(Outcome::Discard);
        };
        let started = Instant::now();
        // How long the job waited in its queue, for the latency benchmark.
        let wait_us = job.enqueued_at().map(|at| ((clock::now() - at).max(0.0) * 1e6) as u64);
        let Some(plugin) = self.registry.serving(&job.class).await else {
            self.metrics.job_finished(UNHANDLED_CLASS, NO_PLUGIN, true, 0.0);
            let failure =
                Failure::retryable("NoPluginError", format!("no plugin handles class {}", job.class));
            return Some(self.failed(job, failure));
        };
        running.set_plugin(plugin.meta.label.clone());
        let iteration = match self.begin_iteration(&job, plugin.meta.iterates).await {
            Ok(iteration) => iteration,
            Err(failure) => return Some(self.failed(job, failure)),
        };
        if let Some(iteration) = iteration.as_ref().filter(|it| it.cancelled_before()) {
            tracing::info!("iterable job cancelled before this run; discarded unrun");
            self.metrics.job_cancelled(&job.class, false);
            iteration.ended(&End::Stopped(Stop::Cancelled)).await;
            return Some(Outcome::Discard);
        }
        let token = registered.token.clone();
        let report = Arc::new(crate::outbound::Report::default());
        let run = (token, report.clone());
        let result = plugin.perform_unless_cancelled(&job.to_wit(), self.shard, run, iteration.clone()).await;
        let elapsed = started.elapsed();
        let elapsed_us = elapsed.as_micros() as u64;
        let failed = !matches!(result, Ok(Ok(())) | Err(CallError::Cancelled));
        self.metrics.job_finished(&job.class, &plugin.meta.name, failed, elapsed.as_secs_f64());
        // A job stopped by a cancel or the shutdown didn't run to its end.
        if !matches!(result, Err(CallError::Cancelled)) {
            self.executions.record(&job.class, elapsed.as_secs_f64(), failed);
        }
        let stopped = iteration.as_ref().and_then(|it| it.stopped());
        if let Some(iteration) = &iteration {
            iteration
                .ended(&iteration_end(&result, stopped, self.cancels.stopped_for_shutdown(&job.jid)))
                .await;
        }
        let outcome = match result {
            Err(CallError::Cancelled) if self.cancels.stopped_for_shutdown(&job.jid) => {
                tracing::info!(plugin = %plugin.meta.name, elapsed_us, "job stopped at the end of the shutdown timeout; it goes back to its queue");
                return None;
            }
            Ok(Ok(())) if stopped == Some(Stop::Cancelled) => {
                tracing::info!(plugin = %plugin.meta.name, elapsed_us, "iterable job cancelled; stopped at its checkpoint");
                self.metrics.job_cancelled(&job.class, true);
                Outcome::Discard
            }
            Ok(Ok(())) if stopped.is_some() => {
                tracing::info!(plugin = %plugin.meta.name, elapsed_us, "iterable job stopped at its checkpoint; back to its queue to resume");
                Outcome::Requeue { payload: requeued(job, iteration.as_deref()) }
            }
            Ok(Ok(())) => {
                // Per-job success lines are debug: at thousands of jobs per
                // second they would cost more than the jobs.
                tracing::debug!(plugin = %plugin.meta.name, sha256 = %&plugin.meta.sha256[..12], elapsed_us, wait_us, "job done");
                Outcome::Done
            }
            Ok(Err(wit::JobError::Retryable(message))) => {
                let failure = Failure::retryable("RetryableError", message).not_before(report.retry_after());
                self.failed(job, failure)
            }
            Ok(Err(wit::JobError::Permanent(message))) => {
                self.failed(job, Failure::permanent("PermanentError", message))
            }
            Err(CallError::Cancelled) => {
                tracing::info!(plugin = %plugin.meta.name, elapsed_us, "job cancelled while running; stopped");
                self.metrics.job_cancelled(&job.class, true);
                Outcome::Discard
            }
            Err(err) => self.failed(job, host_failure(&err)),
        };
        Some(outcome)
    }

    /// The run of an iterable job `job` is, when its plugin `iterates`.
    async fn begin_iteration(&self, job: &Job, iterates: bool) -> Result<Option<Arc<Iteration>>, Failure> {
        if !iterates {
            return Ok(None);
        }
        let rails = job.payload().ok().and_then(|payload| continuation::of(&payload));
        let begun =
            Iteration::begin(self.queue.clone(), (&job.jid, rails), self.slice, self.shutdown.clone()).await;
        match begun {
            Ok(iteration) => Ok(Some(Arc::new(iteration))),
            Err(err) => Err(Failure::retryable("IterationStateError", format!("{err:#}"))),
        }
    }

    /// The metric label for `class`: itself once a plugin serves it, else
    /// [`UNHANDLED_CLASS`], so whoever can push jobs can't make series.
    fn class_label<'a>(&self, class: &'a str) -> &'a str {
        match self.registry.lookup(class) {
            Some(_) => class,
            None => UNHANDLED_CLASS,
        }
    }

    fn failed(&self, job: Job, failure: Failure) -> Outcome {
        // The job was read as JSON already, so this can't fail; if it did,
        // the job would go to the dead set as it came, not be lost.
        let mut payload = match job.payload() {
            Ok(payload) => payload,
            Err(err) => {
                let reason = format!("{err:#}");
                return Outcome::Dead { payload: invalid_payload(job.raw(), &job.queue, &reason) };
            }
        };
        let jitter = rand::random_range(0..10);
        let disposition = retry::decide(&mut payload, &failure, clock::now(), jitter);
        let payload = Value::Object(payload).to_string();
        tracing::warn!(error_class = failure.error_class, error = %crate::untrusted::escape(&failure.message),
            next = ?disposition, "job failed");
        match disposition {
            Disposition::Retry { at } => Outcome::Retry { payload, at },
            Disposition::Dead => Outcome::Dead { payload },
            Disposition::Discard => Outcome::Discard,
        }
    }

    /// Records `outcome`, retrying while Redis is unreachable. Gives up only
    /// at shutdown, leaving the job in the in-progress list to be recovered.
    async fn record(&self, queue: &str, raw: &[u8], jid: &str, outcome: &Outcome) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let sent_mail_of = if self.ledger.forget(self.shard, jid) { jid } else { "" };
        loop {
            match self.acker.finish(queue, raw, sent_mail_of, outcome).await {
                Ok(()) => return,
                Err(err) if self.shutdown.is_started() => {
                    tracing::error!(error = %format!("{err:#}"), "cannot record the job's outcome; it stays in progress and will run again");
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "recording the job's outcome failed; retrying")
                }
            }
            self.shutdown.sleep(backoff.next_wait()).await;
        }
    }
}

/// What a run of an iterable job comes to, for its saved state: `stopped`
/// says whether a checkpoint told it to stop, `handed_back` whether the
/// shutdown's end cut it off.
fn iteration_end(
    result: &Result<Result<(), wit::JobError>, CallError>,
    stopped: Option<Stop>,
    handed_back: bool,
) -> End {
    match (result, stopped) {
        (Err(CallError::Cancelled), _) if handed_back => End::Unfinished,
        (Err(CallError::Cancelled), _) => End::Stopped(Stop::Cancelled),
        (Ok(Ok(())), Some(stop)) => End::Stopped(stop),
        (Ok(Ok(())), None) => End::Complete,
        _ => End::Unfinished,
    }
}

/// The payload of an iterable job going back to its queue, stamped as
/// pushed now, as Sidekiq's client stamps a job it pushes again; a Rails
/// continuable job's continuation advanced to its cursor.
fn requeued(job: Job, iteration: Option<&Iteration>) -> String {
    // The job was read as JSON already; if it couldn't be read whole, it
    // goes back as it came.
    let Ok(mut payload) = job.payload() else {
        return String::from_utf8_lossy(job.raw()).into_owned();
    };
    payload.insert("enqueued_at".into(), json!(clock::now()));
    if let Some(iteration) = iteration.filter(|it| it.continuable())
        && let Some(cursor) = iteration.resume_from().and_then(|c| serde_json::from_str(&c).ok())
    {
        continuation::advance(&mut payload, &cursor, iteration.resumed());
    }
    Value::Object(payload).to_string()
}

/// A failure of the host's making: the time limit, the memory cap, a trap.
/// All are retryable, as an exception is in Sidekiq.
fn host_failure(err: &CallError) -> Failure {
    let class = match err {
        CallError::Timeout(_) => "Timeout",
        CallError::Memory(_) => "MemoryLimitExceeded",
        CallError::Trap(_) => "Trap",
        CallError::MissingRecord(_) => "ActiveJob::DeserializationError",
        CallError::Cancelled => "Cancelled",
    };
    let failure = Failure::retryable(class, err.to_string());
    match err {
        // The guest's frames, after the trap's first line.
        CallError::Trap(message) => {
            failure.with_backtrace(message.lines().skip(1).map(str::to_string).collect())
        }
        _ => failure,
    }
}

/// The most of an invalid payload kept in its dead-set entry.
const KEEP_INVALID: usize = 64 * 1024;

/// The dead-set entry for a payload that isn't a job: Sidekiq's fields
/// around the original text (bytes that aren't UTF-8 replaced, a huge one
/// cut), so it can be inspected and fixed by hand.
fn invalid_payload(raw: &[u8], queue: &str, reason: &str) -> String {
    let now = clock::now();
    let mut text = String::from_utf8_lossy(&raw[..raw.len().min(KEEP_INVALID)]).into_owned();
    if raw.len() > KEEP_INVALID {
        text.push_str("… (cut)");
    }
    json!({
        "class": "InvalidJob",
        "args": [],
        "jid": hex::encode(rand::random::<[u8; 12]>()),
        "queue": queue,
        "retry": false,
        "payload": text,
        "error_class": "InvalidJobError",
        "error_message": format!("invalid job payload: {reason}"),
        "failed_at": now,
        "created_at": now,
    })
    .to_string()
}
