//! Rails 8.1 continuations (`ActiveJob::Continuable`) in a plugin: a job
//! in named steps, each with an optional cursor, that resumes at the step
//! and cursor it stopped at, whichever side (a Rails worker or this
//! runner) ran it before.
//!
//! ```no_run
//! use jobrunner_plugin_sdk::continuation::Continuation;
//! use jobrunner_plugin_sdk::iteration::Flow;
//!
//! # let total = 100u64;
//! # let process = |_id: u64| Ok::<(), jobrunner_plugin_sdk::JobError>(());
//! let mut job = Continuation::resume()?;
//! if job.step("validate", |_| Ok(Flow::GoOn))? == Flow::Stop {
//!     return Ok(());
//! }
//! let flow = job.step("process", |step| {
//!     for id in step.cursor::<u64>()?.unwrap_or(0)..total {
//!         process(id)?;
//!         if step.set(id + 1)? == Flow::Stop {
//!             return Ok(Flow::Stop);
//!         }
//!     }
//!     Ok(Flow::GoOn)
//! })?;
//! # Ok::<(), jobrunner_plugin_sdk::JobError>(())
//! ```
//!
//! As in Rails, a completed step is skipped when the job runs again, there
//! is a checkpoint before every step but a run's first, and setting a
//! cursor is one. The progress is what Rails serializes:
//! `{"completed": [names], "current": [name, cursor]}`.

use crate::JobError;
use crate::iteration::{self, Flow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A continuable job's progress through its steps; see the [module's
/// example](self).
pub struct Continuation {
    completed: Vec<String>,
    /// The step in progress and its cursor.
    current: Option<(String, Value)>,
    /// Whether a step has begun in this run (the first has no checkpoint).
    begun: bool,
}

impl Continuation {
    /// The progress this run resumes from: what the job's last run (here
    /// or in Rails) left, or nothing done.
    ///
    /// ```no_run
    /// use jobrunner_plugin_sdk::continuation::Continuation;
    ///
    /// let job = Continuation::resume()?;
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn resume() -> Result<Continuation, JobError> {
        let saved: Value = iteration::resume_from()?.unwrap_or_else(|| json!({}));
        let invalid = || JobError::Permanent(format!("continuation: {saved} is not Rails' progress"));
        let completed = match saved.get("completed") {
            None => Vec::new(),
            Some(steps) => serde_json::from_value(steps.clone()).map_err(|_| invalid())?,
        };
        let current = match saved.get("current") {
            None | Some(Value::Null) => None,
            Some(Value::Array(pair)) if pair.len() == 2 && pair[0].is_string() => {
                Some((pair[0].as_str().unwrap_or_default().to_string(), pair[1].clone()))
            }
            Some(_) => return Err(invalid()),
        };
        Ok(Continuation { completed, current, begun: false })
    }

    /// The names of the steps done, in order.
    ///
    /// ```no_run
    /// use jobrunner_plugin_sdk::continuation::Continuation;
    ///
    /// let job = Continuation::resume()?;
    /// let fresh = job.completed().is_empty();
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn completed(&self) -> &[String] {
        &self.completed
    }

    /// Runs step `name` unless an earlier run completed it. `body` gets
    /// the step, with its cursor when it resumes; it returns `Flow::Stop`
    /// when told to stop, and the job then returns from `perform`.
    ///
    /// ```no_run
    /// use jobrunner_plugin_sdk::continuation::Continuation;
    /// use jobrunner_plugin_sdk::iteration::Flow;
    ///
    /// let mut job = Continuation::resume()?;
    /// if job.step("notify", |_step| Ok(Flow::GoOn))? == Flow::Stop {
    ///     return Ok(());
    /// }
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn step(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Step<'_>) -> Result<Flow, JobError>,
    ) -> Result<Flow, JobError> {
        if self.completed.iter().any(|done| done == name) {
            return Ok(Flow::GoOn);
        }
        if self.begun && self.checkpoint()? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        self.begun = true;
        let cursor = match self.current.take() {
            Some((current, cursor)) if current == name => cursor,
            _ => Value::Null,
        };
        self.current = Some((name.to_string(), cursor));
        if body(&mut Step { continuation: self })? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        self.completed.push(name.to_string());
        self.current = None;
        Ok(Flow::GoOn)
    }

    /// The progress as Rails serializes it.
    fn to_value(&self) -> Value {
        match &self.current {
            Some((name, cursor)) => json!({"completed": self.completed, "current": [name, cursor]}),
            None => json!({"completed": self.completed}),
        }
    }

    fn checkpoint(&self) -> Result<Flow, JobError> {
        iteration::checkpoint(&self.to_value())
    }
}

/// The step in progress.
/// A step in progress, given to [`Continuation::step`]'s body: its
/// cursor, and its checkpoints.
pub struct Step<'a> {
    continuation: &'a mut Continuation,
}

impl Step<'_> {
    /// The step's cursor; `None` when it starts afresh.
    ///
    /// ```no_run
    /// # use jobrunner_plugin_sdk::{continuation::Continuation, iteration::Flow};
    /// # let mut job = Continuation::resume()?;
    /// job.step("import", |step| {
    ///     let from: u64 = step.cursor()?.unwrap_or(0);
    ///     Ok(Flow::GoOn)
    /// })?;
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn cursor<T: DeserializeOwned>(&self) -> Result<Option<T>, JobError> {
        let cursor = self.continuation.current.as_ref().map(|(_, c)| c.clone()).unwrap_or(Value::Null);
        if cursor.is_null() {
            return Ok(None);
        }
        serde_json::from_value(cursor.clone())
            .map(Some)
            .map_err(|e| JobError::Permanent(format!("continuation: the cursor {cursor} doesn't fit: {e}")))
    }

    /// Sets the cursor (Rails' `set!`), a checkpoint: says whether to go on.
    ///
    /// ```no_run
    /// # use jobrunner_plugin_sdk::{continuation::Continuation, iteration::Flow};
    /// # let mut job = Continuation::resume()?;
    /// job.step("import", |step| {
    ///     for page in step.cursor::<u32>()?.unwrap_or(0)..10 {
    ///         if step.set(page + 1)? == Flow::Stop {
    ///             return Ok(Flow::Stop);
    ///         }
    ///     }
    ///     Ok(Flow::GoOn)
    /// })?;
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn set(&mut self, cursor: impl Serialize) -> Result<Flow, JobError> {
        let cursor = serde_json::to_value(cursor)
            .map_err(|e| JobError::Permanent(format!("continuation: the cursor can't be JSON: {e}")))?;
        if let Some((_, current)) = &mut self.continuation.current {
            *current = cursor;
        }
        self.continuation.checkpoint()
    }

    /// A checkpoint that keeps the cursor (Rails' `checkpoint!`).
    ///
    /// ```no_run
    /// # use jobrunner_plugin_sdk::{continuation::Continuation, iteration::Flow};
    /// # let mut job = Continuation::resume()?;
    /// job.step("cleanup", |step| step.checkpoint())?;
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn checkpoint(&mut self) -> Result<Flow, JobError> {
        self.continuation.checkpoint()
    }
}
