//! The state of an iterable job in Redis, in Sidekiq 7.3's layout: the hash
//! `it-<jid>` with `ex` (executions), `c` (the cursor as JSON), `rt`
//! (seconds run so far) and `cancelled` (epoch seconds, set by a cancel),
//! kept 30 days after its last write, so that Sidekiq's Web UI and its
//! `cancel!` work on our jobs as on its own. We add `m`: how many mails
//! the job had sent at the cursor, so a resumed run numbers its mail where
//! the sent-mail ledger expects it.

use super::{Queue, keys};
use anyhow::{Context, Result};
use redis::AsyncCommands;
use std::collections::HashMap;

/// How long the state outlives its last write, as Sidekiq's `STATE_TTL`:
/// a job waiting for a retry must still find its cursor.
pub const STATE_TTL_SECS: i64 = 30 * 24 * 3600;

/// What `it-<jid>` holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Saved {
    /// How many runs have begun.
    pub executions: u32,
    /// Where the next run starts (JSON text); `None` before the first checkpoint.
    pub cursor: Option<String>,
    /// Seconds run so far, over every run.
    pub runtime: f64,
    /// Mails sent before the cursor.
    pub mail_calls: u32,
    /// Whether the job was cancelled (Sidekiq's `cancel!` or ours).
    pub cancelled: bool,
}

impl Saved {
    fn from_hash(hash: HashMap<String, String>) -> Saved {
        let number = |field: &str| hash.get(field).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        Saved {
            executions: number("ex") as u32,
            // Sidekiq writes `null` before the first item.
            cursor: hash.get("c").filter(|c| !c.is_empty() && c.as_str() != "null").cloned(),
            runtime: number("rt"),
            mail_calls: number("m") as u32,
            cancelled: hash.get("cancelled").is_some_and(|c| !c.is_empty()),
        }
    }
}

impl Queue {
    /// The saved state of job `jid`; the default when it has none.
    pub async fn iteration_state(&self, jid: &str) -> Result<Saved> {
        let mut conn = self.connection();
        let hash: HashMap<String, String> = conn
            .hgetall(keys::iteration(jid))
            .await
            .with_context(|| format!("reading the iteration state of job {jid}"))?;
        Ok(Saved::from_hash(hash))
    }

    /// The saved states of jobs `jids`, in one round trip; `None` for a
    /// job that has none (one that doesn't iterate).
    pub async fn iteration_states(&self, jids: &[&str]) -> Result<Vec<Option<Saved>>> {
        if jids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for jid in jids {
            pipe.hgetall(keys::iteration(jid));
        }
        let hashes: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.connection())
            .await
            .context("reading the iteration states of running jobs")?;
        Ok(hashes.into_iter().map(|hash| (!hash.is_empty()).then(|| Saved::from_hash(hash))).collect())
    }

    /// Writes `saved` for job `jid` and says whether the job has been
    /// cancelled meanwhile.
    pub async fn save_iteration(&self, jid: &str, saved: &Saved) -> Result<bool> {
        let key = keys::iteration(jid);
        let cursor = saved.cursor.as_deref().unwrap_or("null");
        let mut conn = self.connection();
        let (cancelled,): (Option<String>,) = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("ex", saved.executions.to_string()),
                    ("c", cursor.to_string()),
                    ("rt", format!("{:.3}", saved.runtime)),
                    ("m", saved.mail_calls.to_string()),
                ],
            )
            .ignore()
            .expire(&key, STATE_TTL_SECS)
            .ignore()
            .hget(&key, "cancelled")
            .query_async(&mut conn)
            .await
            .with_context(|| format!("saving the iteration state of job {jid}"))?;
        Ok(cancelled.is_some_and(|c| !c.is_empty()))
    }

    /// Drops the state of job `jid`, once it is complete or cancelled.
    pub async fn drop_iteration(&self, jid: &str) -> Result<()> {
        let mut conn = self.connection();
        let _: () = conn
            .unlink(keys::iteration(jid))
            .await
            .with_context(|| format!("dropping the iteration state of job {jid}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_sidekiq_writes() {
        let hash = [("ex", "3"), ("c", "{\"id\":42}"), ("rt", "12.5"), ("cancelled", "1733300000")];
        let saved = Saved::from_hash(hash.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let expected = Saved {
            executions: 3,
            cursor: Some("{\"id\":42}".into()),
            runtime: 12.5,
            mail_calls: 0,
            cancelled: true,
        };
        assert_eq!(saved, expected);
        let fresh = Saved::from_hash([("c".to_string(), "null".to_string())].into_iter().collect());
        assert_eq!(fresh.cursor, None, "Sidekiq's cursor before the first item");
    }
}
