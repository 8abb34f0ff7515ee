//! The `iteration` interface: a plugin's checkpoints, answered by the run's
//! [`Iteration`](crate::iteration::Iteration). Outside a job's run (while
//! describing, or in `runner try`) a plugin starts from nothing and is
//! never told to stop.

use super::host::HostState;
use crate::wit::jobrunner::plugin::iteration::{self, IterationError, Next};
use std::sync::Arc;

impl HostState {
    /// Runs this job as a run of an iterable job: its mail is numbered on
    /// from what was sent before its cursor.
    pub fn with_iteration(mut self, iteration: Option<Arc<crate::iteration::Iteration>>) -> HostState {
        self.set_iteration(iteration);
        self
    }

    /// As [`HostState::with_iteration`], for a reused instance.
    pub fn set_iteration(&mut self, iteration: Option<Arc<crate::iteration::Iteration>>) {
        if let Some(iteration) = &iteration {
            self.mail_calls = iteration.mail_calls();
        }
        self.iteration = iteration;
    }
}

impl iteration::Host for HostState {
    fn resume_from(&mut self) -> Option<String> {
        self.iteration.as_ref().and_then(|it| it.resume_from())
    }

    fn executions(&mut self) -> u32 {
        self.iteration.as_ref().map_or(1, |it| it.executions())
    }

    async fn checkpoint(&mut self, cursor: String) -> Result<Next, IterationError> {
        let Some(iteration) = self.iteration.clone() else {
            return Ok(Next::GoOn);
        };
        let stop = iteration
            .checkpoint(cursor, self.mail_calls, self.cancel.is_cancelled())
            .await
            .map_err(IterationError::InvalidInput)?;
        Ok(match stop {
            Some(why) => {
                let tags = &self.tags;
                tracing::info!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                    "the job stops at its checkpoint: {}", why.reason());
                Next::Stop
            }
            None => Next::GoOn,
        })
    }
}
