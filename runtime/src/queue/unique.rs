//! The locks behind unique jobs (see [`crate::unique`]): one key per
//! class, queue and arguments, holding the jid of the job that owns it, or
//! `done:<epoch s>` once that job has ended, until `unique_for` runs out.

use super::{Queue, keys};
use anyhow::{Context, Result};
use redis::Script;
use std::sync::LazyLock;

/// Claims the lock for a job, unless another job holds it, or ended after
/// this job was created (this one was pushed while that one was queued,
/// scheduled or running).
/// KEYS: the lock. ARGV: jid, the job's creation time (epoch s), seconds to
/// keep the lock. Returns "" when claimed, else what holds it.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return '' end
if held then
  local ended = string.match(held, '^done:(.+)$')
  if not ended or tonumber(ARGV[2]) < tonumber(ended) then return held end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return ''
",
    )
});

/// Marks the lock's job as ended, if it still owns the lock, keeping the
/// lock's expiry. KEYS: the lock. ARGV: jid, now (epoch s).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[2], 'KEEPTTL')
end
return 0
",
    )
});

impl Queue {
    /// Claims the unique lock `digest` for `jid`; `None` when claimed,
    /// else what holds it (a jid, or `done:<time>`).
    pub async fn claim_unique(
        &self,
        digest: &str,
        jid: &str,
        created_at: f64,
        ttl_secs: u64,
    ) -> Result<Option<String>> {
        let mut conn = self.connection();
        let held: String = CLAIM
            .key(keys::unique(digest))
            .arg(jid)
            .arg(created_at)
            .arg(ttl_secs.max(1))
            .invoke_async(&mut conn)
            .await
            .with_context(|| format!("claiming the unique lock of job {jid}"))?;
        Ok((!held.is_empty()).then_some(held))
    }

    /// Records that `jid`, which owned the unique lock `digest`, has ended.
    pub async fn release_unique(&self, digest: &str, jid: &str, now: f64) -> Result<()> {
        let mut conn = self.connection();
        RELEASE
            .key(keys::unique(digest))
            .arg(jid)
            .arg(now)
            .invoke_async::<i64>(&mut conn)
            .await
            .with_context(|| format!("releasing the unique lock of job {jid}"))?;
        Ok(())
    }
}
