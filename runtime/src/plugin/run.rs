//! Running one call into a plugin under its limits.
//!
//! Every call gets a fresh [`Store`] and instance. A running guest yields to
//! the async runtime once per epoch tick, and at each tick its deadline is
//! checked: past it, the call fails with [`Timeout`]. A host call that hangs
//! (a mail server that never answers) is caught by an outer timer a little
//! later. A cancelled job stops the same way: guest code at its next tick,
//! a host call at once. Growing memory past the cap fails with [`MemoryExceeded`]. A trap
//! carries the panic message the guest printed, when there is one. Each
//! way a call can fail on the host's side is a [`CallError`].

use super::host::{Capabilities, HostState, LogTags, MemoryExceeded};
use super::records_host::COMMIT_RACE_WINDOW;
use super::warm::{Pool, Warm};
use crate::iteration::Iteration;
use crate::outbound::Report;
use crate::wit;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};

/// Why a call into a plugin did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// It ran past its time limit.
    #[error("{0}")]
    Timeout(Timeout),
    /// It tried to grow its memory past the cap.
    #[error("{0}")]
    Memory(MemoryExceeded),
    /// It trapped (a panic, an unreachable, a bad access), or couldn't be
    /// instantiated; the message says which.
    #[error("{0}")]
    Trap(String),
    /// It failed after a record it looked up wasn't there, as Rails'
    /// `ActiveJob::DeserializationError`.
    #[error("Error while trying to deserialize arguments: {0}")]
    MissingRecord(String),
    /// It was cancelled and stopped.
    #[error("cancelled")]
    Cancelled,
}

/// The error a call is stopped with when its job is cancelled.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
struct Cancelled;

impl CallError {
    fn from_wasmtime(err: wasmtime::Error, state: &HostState) -> CallError {
        if let Some(timeout) = err.downcast_ref::<Timeout>() {
            return CallError::Timeout(Timeout(timeout.0));
        }
        if err.downcast_ref::<Cancelled>().is_some() {
            return CallError::Cancelled;
        }
        if let Some(exceeded) = err.downcast_ref::<MemoryExceeded>() {
            return CallError::Memory(MemoryExceeded(exceeded.0));
        }
        // What trapped, then where: the guest's panic message if it printed
        // one, the trap's kind, and the innermost frames of the backtrace
        // (a stack overflow's full backtrace runs to thousands of lines).
        let trap = match err.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => err.root_cause().to_string(),
        };
        let what = match state.panic_message() {
            Some(panic) => format!("{panic} ({trap})"),
            None => trap,
        };
        match err.downcast_ref::<wasmtime::WasmBacktrace>() {
            Some(backtrace) => {
                let frames: Vec<String> =
                    backtrace.to_string().lines().take(BACKTRACE_LINES).map(str::to_string).collect();
                CallError::Trap(format!("{what}\n{}", frames.join("\n")))
            }
            None => CallError::Trap(what),
        }
    }
}

/// How much of a trap's backtrace an error message keeps.
const BACKTRACE_LINES: usize = 8;

/// Limits applied to every instance.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock time one call may take.
    pub timeout: Duration,
    /// Bytes of linear memory one instance may use.
    pub memory_bytes: usize,
}

/// The error a call fails with when it runs past its time limit.
#[derive(Debug)]
pub struct Timeout(pub Duration);

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {}", humanize(self.0))
    }
}

impl std::error::Error for Timeout {}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// Grace given to a call stuck in a host function before the outer timer
/// gives up on it (the epoch deadline only fires while guest code runs).
const HOST_CALL_GRACE: Duration = Duration::from_secs(2);

fn new_store(engine: &wasmtime::Engine, state: HostState, limits: Limits) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    // The deadline, the cancel token and the pacing are read from the state
    // at each tick: a reused instance's store gets new ones for every job.
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        if Instant::now() >= state.deadline {
            return Err(wasmtime::Error::new(Timeout(limits.timeout)));
        }
        if state.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Cancelled));
        }
        let pause = match state.pace.as_mut() {
            Some(pace) => pace.tick(crate::engine::EPOCH_TICK),
            None => Box::pin(tokio::task::yield_now()),
        };
        Ok(UpdateDeadline::YieldCustom(1, pause))
    });
    store
}

/// When a call started now under `limits` must be over.
fn deadline(limits: Limits) -> Instant {
    Instant::now().checked_add(limits.timeout).unwrap_or_else(far_future)
}

/// An instant no deadline reaches: a year from now.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 86_400)
}

/// Runs `call` against a fresh instance, turning a hang into a timeout.
async fn with_instance<R>(
    pre: &wit::JobPluginPre<HostState>,
    state: HostState,
    limits: Limits,
    call: impl AsyncFnOnce(&wit::JobPlugin, &mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, CallError> {
    let mut store = new_store(pre.engine(), state, limits);
    bounded_call(&mut store, limits, async |store| {
        let instance = pre.instantiate_checked(&mut *store).await?;
        call(&instance, store).await
    })
    .await
}

/// Runs `work` on `store` under the call's time limit and its cancel
/// token, and says how it ended.
async fn bounded_call<R>(
    store: &mut Store<HostState>,
    limits: Limits,
    work: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, CallError> {
    let cancel = store.data().cancel.clone();
    let ended = bounded(work(&mut *store), limits.timeout.saturating_add(HOST_CALL_GRACE), &cancel).await;
    match ended {
        _ if store.data().ran_out => Err(CallError::Timeout(Timeout(limits.timeout))),
        _ if store.data().cancelled => Err(CallError::Cancelled),
        Some(Ok(value)) => Ok(value),
        _ if cancel.is_cancelled() => Err(CallError::Cancelled),
        Some(Err(err)) => Err(CallError::from_wasmtime(err, store.data())),
        None => Err(CallError::Timeout(Timeout(limits.timeout))),
    }
}

/// How long a cancelled call may take to stop by itself (the epoch tick
/// stops guest code within a millisecond) before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(20);

/// Runs `work` for at most `limit`, or [`CANCEL_GRACE`] past `cancel`;
/// `None` when it was cut off.
async fn bounded<F: Future>(work: F, limit: Duration, cancel: &CancellationToken) -> Option<F::Output> {
    tokio::pin!(work);
    tokio::select! {
        ended = tokio::time::timeout(limit, &mut work) => ended.ok(),
        _ = cancel.cancelled() => tokio::time::timeout(CANCEL_GRACE, &mut work).await.ok(),
    }
}

/// Asks a freshly compiled plugin to describe itself.
pub async fn describe(
    pre: &wit::JobPluginPre<HostState>,
    caps: Capabilities,
    limits: Limits,
    file: &str,
) -> Result<wit::PluginInfo, CallError> {
    let tags = LogTags { plugin: Arc::from(file), ..LogTags::default() };
    // Describing is a few microseconds of work: a plugin that takes longer
    // is refused without holding up the loads behind it for a job's time.
    let limits = Limits { timeout: limits.timeout.min(DESCRIBE_TIMEOUT), ..limits };
    let state = HostState::new(caps, limits.memory_bytes, tags, (deadline(limits), Default::default()));
    with_instance(pre, state, limits, async |instance, store| instance.call_describe(store).await).await
}

/// The longest `describe` may take.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Performs one job. The outer `Result` is the host's view (trap, timeout,
/// memory cap); the inner one is what the plugin returned, except that a
/// broken policy rule fails the job permanently whatever the plugin said.
/// What the job's requests asked of its retry goes into `report`.
/// With `warm`, the plugin's policy lets it reuse instances: the job runs
/// in an idle one if there is one, which goes back if the job ended normally.
pub async fn perform(
    pre: &wit::JobPluginPre<HostState>,
    (caps, limits): (Capabilities, Limits),
    tags: LogTags,
    job: &wit::Job,
    (cancel, iteration, warm): (CancellationToken, Option<Arc<Iteration>>, Option<&Pool>),
    report: Arc<Report>,
) -> Result<Result<(), wit::JobError>, CallError> {
    let until = deadline(limits);
    let commit_race = commit_race_until(job, limits);
    let result = match (warm, warm.and_then(Pool::take)) {
        (Some(pool), Some(mut idle)) => {
            idle.store.data_mut().begin_job(tags, (until, commit_race), (cancel, report));
            idle.store.data_mut().set_iteration(iteration);
            idle.store.set_epoch_deadline(1);
            let Warm { mut store, instance, served } = idle;
            let call = async |store: &mut Store<HostState>| perform_call(&instance, store, job).await;
            let result = bounded_call(&mut store, limits, call).await;
            if result.is_ok() {
                pool.put_back(store, instance, Some(served));
            }
            result?
        }
        (warm, _) => {
            let state = HostState::new(caps, limits.memory_bytes, tags, (until, report))
                .with_commit_race_until(commit_race)
                .with_cancel(cancel)
                .with_iteration(iteration);
            let mut store = new_store(pre.engine(), state, limits);
            let (instance, result) = bounded_call(&mut store, limits, async |store| {
                let instance = pre.instantiate_checked(&mut *store).await?;
                let result = perform_call(&instance, store, job).await?;
                Ok((instance, result))
            })
            .await?;
            if let Some(pool) = warm {
                pool.put_back(store, instance, None);
            }
            result
        }
    };
    result.map_err(CallError::MissingRecord)
}

/// Calls `perform` on `instance`, and turns a broken policy rule or a
/// record that isn't there into the job's outcome.
async fn perform_call(
    instance: &wit::JobPlugin,
    store: &mut Store<HostState>,
    job: &wit::Job,
) -> wasmtime::Result<Result<Result<(), wit::JobError>, String>> {
    let result = instance.call_perform(&mut *store, job).await?;
    let state = store.data();
    if state.dropped_logs > 0 {
        note_dropped_logs(state);
    }
    let violation = state.violation.clone().or_else(|| state.report().violation());
    Ok(match (&violation, &state.missing_record) {
        (Some(rule), _) => Ok(Err(wit::JobError::Permanent(format!("policy violation: {rule}")))),
        (None, Some(missing)) if result.is_err() => Err(missing.clone()),
        _ => Ok(result),
    })
}

/// Counts the log lines this job dropped at its plugin's log rate, and
/// notes them in the log when it is time to (see [`crate::policy::Guard::dropped_logs`]).
fn note_dropped_logs(state: &HostState) {
    let (guard, plugin) = (&state.caps.guard, &state.tags.plugin);
    state.caps.metrics.log_lines_dropped(plugin, state.dropped_logs);
    if let Some(note) = guard.dropped_logs(state.dropped_logs) {
        let per_second = guard.log_lines_per_second();
        tracing::warn!(%plugin, dropped = note.lines, jobs = note.jobs, log_lines_per_second = per_second,
            "log lines dropped by the plugin's log rate limit, counted since the last such note");
    }
}

/// Until when a record missing in `job` may still be uncommitted: a
/// while after the job was created, on its first run only, and never past
/// the job's own deadline.
fn commit_race_until(job: &wit::Job, limits: Limits) -> Option<Instant> {
    if job.retry_count > 0 {
        return None;
    }
    let created = job.created_at.or(job.enqueued_at)?;
    let age = crate::clock::now() - created;
    let left = COMMIT_RACE_WINDOW.as_secs_f64() - age.max(0.0);
    let budget = limits.timeout.as_secs_f64() - COMMIT_RACE_MARGIN.as_secs_f64();
    let left = left.min(budget);
    (left > 0.0).then(|| Instant::now() + Duration::from_secs_f64(left))
}

/// Time kept for the rest of a job after waiting out the commit race.
const COMMIT_RACE_MARGIN: Duration = Duration::from_secs(1);
