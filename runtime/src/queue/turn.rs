//! Taking turns at chores every runner could do but one at a time is
//! enough: looking for dead runners, and moving due scheduled jobs and
//! retries. A turn is a key set with NX and a time to live: the first
//! runner to ask after it lapses takes the chore, and the others skip it
//! at the cost of one cheap command. However many runners there are, the
//! chore runs at most once per turn across all of them.

use super::{Queue, keys};
use anyhow::{Context, Result};
use std::time::Duration;

impl Queue {
    /// Whether `identity` gets the turn at `chore` for the next `length`;
    /// false while another runner's (or its own earlier) turn lasts.
    pub async fn take_turn(&self, chore: &str, identity: &str, length: Duration) -> Result<bool> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(keys::turn(chore))
            .arg(identity)
            .arg("NX")
            .arg("PX")
            .arg(length.as_millis().max(1) as u64)
            .query_async(&mut self.connection())
            .await
            .with_context(|| format!("taking the turn at {chore}"))?;
        Ok(taken.is_some())
    }
}
