//! The dashboard's changes to Sidekiq's data, done as Sidekiq's Web UI does
//! them: retry a failed job now, add a scheduled job to its queue now, kill
//! a retry (into the dead set), delete a job, clear a queue or a set.
//!
//! A job in a sorted set is named by its score and jid (`score|jid`), as the
//! Web UI names it. Each move runs as one script guarded by the `ZREM`, so
//! two people pressing "retry" at once enqueue the job once.

use super::{Admin, keys};
use crate::clock;
use anyhow::{Context, Result, bail};
use redis::{AsyncCommands, Script};
use serde_json::Value;
use std::sync::LazyLock;

/// Removes ARGV[1] from the sorted set KEYS[1]; only if it was there,
/// either pushes ARGV[3] onto the queue list KEYS[2] (and names ARGV[4] in
/// the queue set KEYS[3]), or adds it to the dead set KEYS[2] at ARGV[4]
/// and trims that to ARGV[5] entries and scores above ARGV[6].
/// ARGV[2] says which: `queue` or `dead`. Returns 1 if it moved.
static MOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'queue' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('LPUSH', KEYS[2], ARGV[3])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
end
return 1
",
    )
});

/// What to do with jobs in a sorted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAction {
    /// Back to its queue now; a failed job's retry count is not charged.
    Retry,
    /// Back to its queue now, as it is (a scheduled job's "add to queue").
    Enqueue,
    /// Into the dead set.
    Kill,
    /// Gone.
    Delete,
}

impl SetAction {
    pub fn parse(name: &str) -> Result<SetAction> {
        Ok(match name {
            "retry" => SetAction::Retry,
            "enqueue" => SetAction::Enqueue,
            "kill" => SetAction::Kill,
            "delete" => SetAction::Delete,
            other => bail!("unknown action {other:?}: expected retry, enqueue, kill or delete"),
        })
    }
}

impl Admin {
    /// What Redis holds about periodic job `name`.
    pub async fn periodic_state(&self, name: &str) -> Result<super::PeriodicState> {
        self.queue.periodic_state(name).await
    }

    /// Turns periodic job `name` on or off for every runner.
    pub async fn set_periodic_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        self.queue.set_periodic_enabled(name, enabled).await
    }

    /// Pushes periodic job `name`'s job now.
    pub async fn enqueue_periodic_now(&self, name: &str, job: (&str, &str, &str)) -> Result<()> {
        self.queue.enqueue_periodic_now(name, job).await
    }

    /// Cancels the job `jid`, wherever it is (see [`Queue::cancel`]).
    pub async fn cancel(&self, jid: &str) -> Result<super::Cancelled> {
        self.queue.cancel(jid).await
    }

    /// Applies `action` to the job `key` (`score|jid`) of `set`. Returns
    /// whether it was still there.
    pub async fn act_on_entry(&self, set: &str, key: &str, action: SetAction) -> Result<bool> {
        let Some(member) = self.find_entry(set, key).await? else { return Ok(false) };
        self.act_on_member(set, &member, action).await
    }

    /// Applies `action` to every job `set` holds now; returns how many.
    /// The jobs are read once, so the work is bounded by what was there
    /// whatever the action puts back (killing a dead job would re-add it).
    pub async fn act_on_all(&self, set: &str, action: SetAction) -> Result<u64> {
        let mut conn = self.connection();
        if action == SetAction::Delete {
            let count: u64 = conn.zcard(set).await.with_context(|| format!("counting the {set} set"))?;
            conn.del::<_, ()>(set).await.with_context(|| format!("clearing the {set} set"))?;
            return Ok(count);
        }
        let snapshot: Vec<String> =
            conn.zrange(set, 0, -1).await.with_context(|| format!("reading the {set} set"))?;
        let mut done = 0;
        for member in &snapshot {
            done += u64::from(self.act_on_member(set, member, action).await?);
        }
        Ok(done)
    }

    /// Deletes one waiting job, given exactly as stored, from `queue`.
    pub async fn delete_queued(&self, queue: &str, raw: &str) -> Result<bool> {
        let removed: u64 = self
            .connection()
            .lrem(keys::queue(queue), 1, raw)
            .await
            .with_context(|| format!("deleting a job from queue {queue}"))?;
        Ok(removed > 0)
    }

    /// Drops every job waiting in `queue`, and the queue's name, as Sidekiq's
    /// `Queue#clear` does.
    pub async fn clear_queue(&self, queue: &str) -> Result<()> {
        redis::pipe()
            .atomic()
            .del(keys::queue(queue))
            .srem(keys::QUEUES, queue)
            .exec_async(&mut self.connection())
            .await
            .with_context(|| format!("clearing queue {queue}"))
    }

    /// Leaves `signal` (`TSTP`: quiet, `TERM`: stop) for the process
    /// `identity`, which picks it up at its next heartbeat, as the Web UI's
    /// Quiet and Stop buttons do.
    pub async fn signal_process(&self, identity: &str, signal: &str) -> Result<()> {
        if !matches!(signal, "TSTP" | "TERM") {
            bail!("unknown signal {signal:?}: expected TSTP (quiet) or TERM (stop)");
        }
        let key = keys::signals(identity);
        redis::pipe()
            .atomic()
            .lpush(&key, signal)
            .expire(&key, 60)
            .exec_async(&mut self.connection())
            .await
            .with_context(|| format!("signalling process {identity}"))
    }

    /// The stored JSON of the job `key` (`score|jid`) in `set`, if still there.
    async fn find_entry(&self, set: &str, key: &str) -> Result<Option<String>> {
        let Some((score, jid)) = key.split_once('|') else {
            bail!("{key:?} does not name a job: expected score|jid");
        };
        let members: Vec<String> = self
            .connection()
            .zrangebyscore(set, score, score)
            .await
            .with_context(|| format!("looking up job {jid} in the {set} set"))?;
        Ok(members
            .into_iter()
            .find(|m| jid_of(m).as_deref() == Some(jid) || (jid.is_empty() && jid_of(m).is_none())))
    }

    async fn act_on_member(&self, set: &str, member: &str, action: SetAction) -> Result<bool> {
        if action == SetAction::Kill && set == keys::DEAD {
            bail!("a job in the dead set is dead already");
        }
        let mut conn = self.connection();
        if action == SetAction::Delete {
            let removed: u64 =
                conn.zrem(set, member).await.with_context(|| format!("deleting from {set}"))?;
            return Ok(removed > 0);
        }
        let mut invocation = MOVE.prepare_invoke();
        invocation.key(set).arg(member);
        if action == SetAction::Kill {
            let now = clock::now();
            let dead = self.dead_limits();
            invocation.key(keys::DEAD).arg("dead").arg(member).arg(now).arg(dead.max_jobs);
            invocation.arg(now - dead.max_age_secs);
        } else {
            let (queue, payload) = requeued(member, action == SetAction::Retry);
            invocation.key(keys::queue(&queue)).key(keys::QUEUES).arg("queue").arg(payload).arg(queue);
        }
        let moved: u64 =
            invocation.invoke_async(&mut conn).await.with_context(|| format!("moving a job out of {set}"))?;
        Ok(moved > 0)
    }
}

/// The jid of a stored job, if it is a job.
fn jid_of(member: &str) -> Option<String> {
    let value: Value = serde_json::from_str(member).ok()?;
    value["jid"].as_str().map(str::to_string)
}

/// The queue a job goes back to and its JSON as Sidekiq's client pushes it:
/// `enqueued_at` now, and with `uncharge`, one less retry counted (the
/// next failure counts it again), as the Web UI's "Retry Now" does.
fn requeued(member: &str, uncharge: bool) -> (String, String) {
    let Ok(Value::Object(mut job)) = serde_json::from_str::<Value>(member) else {
        return ("default".into(), member.to_string());
    };
    if uncharge && let Some(count) = job.get("retry_count").and_then(Value::as_i64) {
        job.insert("retry_count".into(), (count - 1).into());
    }
    job.insert("enqueued_at".into(), clock::now().into());
    let queue = job.get("queue").and_then(Value::as_str).unwrap_or("default").to_string();
    (queue, Value::Object(job).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_now_uncharges_one_attempt() {
        let (queue, payload) = requeued(r#"{"class":"A","queue":"mailers","retry_count":2,"jid":"j"}"#, true);
        let job: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(queue, "mailers");
        assert_eq!(job["retry_count"], 1);
        assert!(job["enqueued_at"].is_f64());
        let (_, payload) = requeued(r#"{"class":"A","retry_count":2}"#, false);
        assert_eq!(serde_json::from_str::<Value>(&payload).unwrap()["retry_count"], 2);
    }

    #[test]
    fn actions_parse() {
        assert_eq!(SetAction::parse("kill").unwrap(), SetAction::Kill);
        assert!(SetAction::parse("explode").unwrap_err().to_string().contains("explode"));
    }
}
