//! Iterable jobs: long jobs that run in slices and resume where they
//! stopped, as Sidekiq 7.3's `Sidekiq::IterableJob` and job-iteration's
//! `max_job_runtime` do.
//!
//! A plugin that imports the `iteration` interface gets an [`Iteration`]
//! for each run: the cursor the job resumes from (kept in Redis as
//! Sidekiq keeps it, see [`crate::queue::iteration`]), and at every
//! checkpoint an answer, go on or stop. The answer is stop when the run's
//! slice is over (`--slice`), when the runner is quieting or shutting
//! down, or when the job was cancelled. The cursor is written to Redis at
//! most every [`FLUSH_EVERY`] and always before a stop, so a runner killed
//! mid-run loses at most that much work: its recovered job resumes from
//! the last cursor written. When the run ends, [`Iteration::ended`] says
//! what it comes to: complete (the state is dropped), stopped (the job
//! goes back to its queue), cancelled, or failed (the cursor is kept for
//! the retry). A Rails 8.1 continuable job keeps its progress in its
//! payload too ([`continuation`]).

pub mod continuation;

use crate::queue::Queue;
use crate::queue::iteration::Saved;
use crate::shutdown::Shutdown;
use anyhow::Result;
use continuation::Continuable;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a moving cursor is written to Redis, as Sidekiq's
/// `STATE_FLUSH_INTERVAL`; a checkpoint that stops always writes.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The longest cursor accepted, in bytes of JSON.
pub const MAX_CURSOR: usize = 64 * 1024;

/// Why a run was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Its slice is over.
    SliceOver,
    /// The runner is quiet or shutting down.
    Leaving,
    /// The job was cancelled.
    Cancelled,
}

impl Stop {
    /// Said in the log.
    pub fn reason(self) -> &'static str {
        match self {
            Stop::SliceOver => "its slice is over",
            Stop::Leaving => "the runner is quieting or shutting down",
            Stop::Cancelled => "it was cancelled",
        }
    }
}

/// One run of an iterable job.
pub struct Iteration {
    jid: String,
    queue: Queue,
    shutdown: Shutdown,
    /// When the run began.
    began: Instant,
    /// When its slice is over.
    slice_ends: Instant,
    /// The job's Rails continuation, when it is continuable.
    rails: Option<Continuable>,
    /// Whether this run resumes from progress an earlier one made.
    resumed: bool,
    /// The state as loaded, then as the checkpoints move it.
    state: Mutex<State>,
}

struct State {
    saved: Saved,
    /// The runtime of earlier runs, to which this one's is added.
    earlier_runtime: f64,
    /// When the state was last written.
    written_at: Instant,
    /// Whether a checkpoint moved the cursor since it was last written.
    moved: bool,
    /// Set once a checkpoint answered stop.
    stop: Option<Stop>,
}

/// How a run of an iterable job ended, for the worker.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The job is done.
    Complete,
    /// Told to stop, it did: back to its queue.
    Stopped(Stop),
    /// It failed, or was handed back at shutdown: the next run resumes
    /// from its cursor.
    Unfinished,
}

impl Iteration {
    /// Begins a run of job `jid` (with its Rails continuation, when it is
    /// continuable): loads its state and counts the run.
    pub async fn begin(
        queue: Queue,
        (jid, rails): (&str, Option<Continuable>),
        slice: Duration,
        shutdown: Shutdown,
    ) -> Result<Iteration> {
        let mut saved = queue.iteration_state(jid).await?;
        saved.executions += 1;
        // Counted at once, so the Busy page shows a resumed run as one.
        if !saved.cancelled {
            saved.cancelled = queue.save_iteration(jid, &saved).await?;
        }
        // A cursor saved here is newer than the payload's continuation: a
        // run killed after saving one left the payload as it was fetched.
        let resumed = saved.cursor.is_some() || rails.as_ref().is_some_and(|r| r.progress.is_some());
        let now = Instant::now();
        let state =
            State { earlier_runtime: saved.runtime, saved, written_at: now, moved: false, stop: None };
        Ok(Iteration {
            jid: jid.to_string(),
            queue,
            shutdown,
            began: now,
            slice_ends: now + slice,
            rails,
            resumed,
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("iteration state lock")
    }

    /// Whether the job was cancelled before this run began.
    pub fn cancelled_before(&self) -> bool {
        self.state().saved.cancelled
    }

    /// The cursor this run resumes from (the latest, once it has moved).
    pub fn resume_from(&self) -> Option<String> {
        let saved = self.state().saved.cursor.clone();
        saved.or_else(|| self.rails.as_ref()?.progress.clone())
    }

    /// Whether this run resumed from an earlier run's progress.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the job is a Rails continuable job.
    pub fn continuable(&self) -> bool {
        self.rails.is_some()
    }

    /// Runs begun, this one included.
    pub fn executions(&self) -> u32 {
        self.state().saved.executions
    }

    /// Mails the job had sent at its cursor: this run's first mail has that number.
    pub fn mail_calls(&self) -> u32 {
        self.state().saved.mail_calls
    }

    /// Why this run was told to stop, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.state().stop
    }

    /// Records `cursor`, reached after `mail_calls` mails, and says whether
    /// the run must stop; `cancelled` when the job's cancel has fired here.
    pub async fn checkpoint(
        &self,
        cursor: String,
        mail_calls: u32,
        cancelled: bool,
    ) -> Result<Option<Stop>, String> {
        check_cursor(&cursor)?;
        if self.rails.is_some() {
            let value = serde_json::from_str(&cursor).map_err(|e| e.to_string())?;
            continuation::check(&value)?;
        }
        let stop = match () {
            _ if cancelled => Some(Stop::Cancelled),
            _ if self.shutdown.is_quiet() => Some(Stop::Leaving),
            _ if Instant::now() >= self.slice_ends => Some(Stop::SliceOver),
            _ => None,
        };
        let due = {
            let mut state = self.state();
            state.saved.cursor = Some(cursor);
            state.saved.mail_calls = mail_calls;
            state.moved = true;
            stop.is_some() || state.written_at.elapsed() >= FLUSH_EVERY
        };
        let stop = match due {
            true => match self.write().await {
                Ok(true) => Some(Stop::Cancelled),
                Ok(false) => stop,
                // Not written: the job would resume further back than it
                // stopped. It goes on, and the next checkpoint tries again.
                Err(err) => {
                    tracing::warn!(jid = %self.jid, error = %format!("{err:#}"), "could not save the job's cursor; it goes on");
                    None
                }
            },
            false => None,
        };
        self.state().stop = stop;
        Ok(stop)
    }

    /// Writes the state now if it moved since it was last written.
    pub async fn save(&self) -> Result<()> {
        self.write().await.map(|_| ())
    }

    /// Writes the state if it moved; whether the job was cancelled.
    async fn write(&self) -> Result<bool> {
        let saved = {
            let mut state = self.state();
            if !state.moved {
                return Ok(false);
            }
            state.saved.runtime = state.earlier_runtime + self.began.elapsed().as_secs_f64();
            state.saved.clone()
        };
        let cancelled = self.queue.save_iteration(&self.jid, &saved).await?;
        let mut state = self.state();
        state.written_at = Instant::now();
        state.moved = false;
        Ok(cancelled)
    }

    /// Settles the state once the run is over: dropped when the job is
    /// complete or cancelled, written for a stop or a failure so that the
    /// next run resumes from the last cursor.
    pub async fn ended(&self, end: &End) {
        let result = match end {
            End::Complete | End::Stopped(Stop::Cancelled) => self.queue.drop_iteration(&self.jid).await,
            End::Stopped(_) | End::Unfinished => self.write().await.map(|_| ()),
        };
        if let Err(err) = result {
            tracing::warn!(jid = %self.jid, error = %format!("{err:#}"), "could not settle the job's iteration state");
        }
    }
}

/// Refuses a cursor that isn't JSON or is too long to keep.
fn check_cursor(cursor: &str) -> Result<(), String> {
    if cursor.len() > MAX_CURSOR {
        return Err(format!("the cursor is {} bytes, more than the {MAX_CURSOR} kept", cursor.len()));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(cursor)
        .map(|_| ())
        .map_err(|err| format!("the cursor is not JSON: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_must_be_json_of_bounded_size() {
        assert!(check_cursor("{\"id\":42}").is_ok());
        assert!(check_cursor("17").is_ok());
        assert!(check_cursor("{id:42}").unwrap_err().contains("not JSON"));
        let long = format!("\"{}\"", "x".repeat(MAX_CURSOR));
        assert!(check_cursor(&long).unwrap_err().contains("more than"));
    }
}
