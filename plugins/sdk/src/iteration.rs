//! Iterable jobs: long work done in steps, each ended by a checkpoint, so
//! that the job runs in slices and resumes where it stopped after a
//! deploy, a crash or the end of its slice (Sidekiq's `IterableJob`).
//!
//! ```no_run
//! use jobrunner_plugin_sdk::JobError;
//! use jobrunner_plugin_sdk::iteration::{self, Flow};
//!
//! fn perform_steps(total: u64, do_step: impl Fn(u64) -> Result<(), JobError>) -> Result<(), JobError> {
//!     let start: u64 = iteration::resume_from()?.unwrap_or(0);
//!     for step in start..total {
//!         do_step(step)?;
//!         if iteration::checkpoint(&(step + 1))? == Flow::Stop {
//!             return Ok(()); // resumes at step + 1
//!         }
//!     }
//!     Ok(()) // complete
//! }
//! ```
//!
//! The host keeps the cursor in Redis (every few seconds, and always when
//! it says stop); a plugin told to stop returns `Ok(())` at once and the
//! job goes back to its queue. A job that returns without being told to
//! stop is complete. After a crash the job resumes from the last cursor
//! kept, so a step may run again: make steps safe to repeat, or keep what
//! they produced in the cursor. [`batches`] walks a records scan this way.

use crate::JobError;
use crate::bindings::jobrunner::plugin::iteration as host;
use crate::scan::{Batch, Batches, Scan};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What the host says at a checkpoint: see [`checkpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next step.
    GoOn,
    /// Return from `perform` now; the job resumes from this cursor.
    Stop,
}

/// The cursor this run resumes from; `None` on the job's first run. A
/// cursor that doesn't deserialize as `T` is a permanent error.
///
/// ```no_run
/// use jobrunner_plugin_sdk::iteration;
///
/// #[derive(serde::Deserialize, Default)]
/// struct Cursor { next_page: u32 }
///
/// let cursor: Cursor = iteration::resume_from()?.unwrap_or_default();
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn resume_from<T: DeserializeOwned>() -> Result<Option<T>, JobError> {
    let Some(text) = host::resume_from() else { return Ok(None) };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| JobError::Permanent(format!("iteration: the saved cursor {text} doesn't fit: {e}")))
}

/// How many runs of this job have begun, this one included (Sidekiq's
/// `executions`): 1 on the first run.
///
/// ```no_run
/// use jobrunner_plugin_sdk::{Level, iteration, log};
///
/// if iteration::executions() > 1 {
///     log(Level::Info, "resuming");
/// }
/// ```
pub fn executions() -> u32 {
    host::executions()
}

/// Records that everything before `cursor` is done; says whether to go on.
/// The host saves the cursor at most every 5 s, and always before it says
/// [`Flow::Stop`] (the slice is over, the runner is quieting or stopping,
/// or the job was cancelled).
///
/// ```no_run
/// use jobrunner_plugin_sdk::iteration::{self, Flow};
///
/// for page in 0..100u32 {
///     // ... the page's work ...
///     if iteration::checkpoint(&(page + 1))? == Flow::Stop {
///         break; // return from perform: the job resumes at page + 1
///     }
/// }
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn checkpoint<T: Serialize + ?Sized>(cursor: &T) -> Result<Flow, JobError> {
    let text = serde_json::to_string(cursor)
        .map_err(|e| JobError::Permanent(format!("iteration: the cursor can't be written as JSON: {e}")))?;
    match host::checkpoint(&text) {
        Ok(host::Next::GoOn) => Ok(Flow::GoOn),
        Ok(host::Next::Stop) => Ok(Flow::Stop),
        Err(host::IterationError::InvalidInput(why)) => Err(JobError::Permanent(format!("iteration: {why}"))),
    }
}

/// The batches of `scan` as an iterable job walks them: from after the
/// key the last run checkpointed, each batch's last key checkpointed once
/// the loop has handled it, ending early when the host says stop.
///
/// ```no_run
/// use jobrunner_plugin_sdk::{iteration, records};
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64, total: String }
///
/// let mut orders = iteration::batches::<Order>(records::scan("Order").batch_size(500))?;
/// for batch in &mut orders {
///     for order in batch?.rows { /* ... */ }
/// }
/// if orders.stopped() {
///     return Ok(()); // resumes after the last batch handled
/// }
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn batches<T: DeserializeOwned>(scan: Scan) -> Result<Resumed<T>, JobError> {
    let scan = match resume_from::<String>()? {
        Some(key) => scan.after(key),
        None => scan,
    };
    Ok(Resumed { batches: scan.batches(), handled: None, stopped: false })
}

/// The batches of a scan, checkpointed; see [`batches`].
pub struct Resumed<T> {
    batches: Batches<T>,
    /// The last key of the batch the loop is handling.
    handled: Option<String>,
    stopped: bool,
}

impl<T> Resumed<T> {
    /// Whether the host said stop: the job returns, to resume later. See
    /// [`batches`] for an example.
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

impl<T: DeserializeOwned> Iterator for Resumed<T> {
    type Item = Result<Batch<T>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        if let Some(key) = self.handled.take() {
            match checkpoint(&key) {
                Ok(Flow::GoOn) => {}
                Ok(Flow::Stop) => {
                    self.stopped = true;
                    return None;
                }
                Err(err) => return Some(Err(err)),
            }
        }
        let batch = self.batches.next()?;
        if let Ok(batch) = &batch {
            self.handled = batch.last_key.clone();
        }
        Some(batch)
    }
}
