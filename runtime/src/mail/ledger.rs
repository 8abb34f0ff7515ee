//! Remembers the mail each job has sent, so that a job run again (after a
//! crash between sending and recording success, after a time-out while a
//! server was answering, or after a later step failed) doesn't send the
//! same mail twice.
//!
//! Each `send-mail` call of a job is keyed by the job's jid and the call's
//! number within that run (the first call is 0, the next 1, ...). A job
//! performs the same calls in the same order when it runs again, so a
//! repeated call finds its key instead of sending again. The key is claimed
//! *before* the message is handed to a transport (marked "sending") and
//! confirmed with the Message-ID once the server accepted it; a send that
//! fails with an error (refused, no connection) gives the claim back, so
//! the retry sends. A run that ran out of time while the server was still
//! answering marks the call "interrupted", and a rerun counts that as sent:
//! the server most likely has the message, and every rerun would otherwise
//! time out the same way and send it again. A run killed mid-send can mark
//! nothing; its "sending" is sent again by the rerun, with the same
//! Message-ID, because the kill most likely came before the server had it
//! and a lost mail is the greater harm there. The entries of a job live in
//! one hash, `jobrunner:sent:<jid>`, dropped when the job is done and
//! expiring after the retry window otherwise.
//!
//! Redis replicates asynchronously, so a failover can lose the entries the
//! old master took last, and the rerun sends those mails again. With
//! `--mail-replicas N` the claim and the confirmation each wait (`WAIT`)
//! until N replicas hold them: a mail whose claim no replica holds isn't
//! sent (its job is retried), and a confirmation is written again, to
//! whichever server is master by then, until replicas hold it.

use crate::queue::Queue;
use crate::queue::keys::sent_mail as key;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::Script;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long a job's sent mail is remembered: the 25 retries of Sidekiq's
/// default policy take about 20 days.
const REMEMBER_SECS: i64 = 21 * 24 * 3600;

/// How long one `WAIT` for replicas may take.
const REPLICA_WAIT: Duration = Duration::from_secs(2);
/// How long a confirmation is written again until replicas hold it; a
/// failover takes the sentinels a few seconds.
const CONFIRM_PATIENCE: Duration = Duration::from_secs(10);

/// What marks a claimed call whose outcome isn't known yet.
const SENDING: &str = "sending ";
/// What marks a call cut off by the job's deadline while being sent.
const INTERRUPTED: &str = "interrupted ";

/// Turns a call's "sending" mark into "interrupted", leaving any other
/// value alone. KEYS: the job's hash. ARGV: the call's number.
static INTERRUPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, 8) == 'sending ' then
  redis.call('HSET', KEYS[1], ARGV[1], 'interrupted ' .. string.sub(v, 9))
end
return 0",
    )
});

/// The mail sent per job, in Redis.
#[derive(Clone)]
pub struct Ledger {
    /// Where the ledger lives: each shard's Redis, for the jobs it holds,
    /// so a shard that is down stops only its own jobs' mail.
    shards: Vec<Queue>,
    /// The (shard, jid) of every job that claimed mail since it started
    /// here, so that the record is dropped at the end only for a job that
    /// has one: a job that sends no mail costs the ledger nothing.
    touched: Arc<Mutex<HashSet<(usize, String)>>>,
    /// Replicas that must hold each claim and confirmation (0: no wait).
    replicas: u32,
}

/// What the ledger knew of a call when it was claimed.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nothing: this run sends it.
    Ours,
    /// An earlier run sent it, as this Message-ID.
    Sent(String),
    /// An earlier run ran out of time while sending it, as this Message-ID.
    Interrupted(String),
    /// An earlier run was killed while sending it, as this Message-ID: this
    /// run sends it again.
    Unfinished(String),
}

impl Ledger {
    /// A ledger kept in each of `shards`, by index.
    pub fn new(shards: Vec<Queue>) -> Ledger {
        Ledger { shards, touched: Arc::default(), replicas: 0 }
    }

    /// Has each claim and confirmation wait until `replicas` replicas hold it.
    pub fn replicated(self, replicas: u32) -> Ledger {
        Ledger { replicas, ..self }
    }

    /// Whether job `jid` of `shard` claimed mail here since it started;
    /// forgets it. A job run again claims the same calls again, so a job
    /// whose earlier run sent mail is told apart too.
    pub fn forget(&self, shard: usize, jid: &str) -> bool {
        let mut touched = self.touched.lock().expect("ledger lock");
        !touched.is_empty() && touched.remove(&(shard, jid.to_string()))
    }

    fn queue(&self, shard: usize) -> &Queue {
        &self.shards[shard.min(self.shards.len() - 1)]
    }

    /// Claims call `seq` of job `jid`, about to be sent as `message_id`,
    /// unless an earlier run claimed it. One round trip (and a `WAIT` with
    /// replicas to wait for).
    pub async fn claim(&self, shard: usize, jid: &str, seq: u32, message_id: &str) -> Result<Claim> {
        self.touched.lock().expect("ledger lock").insert((shard, jid.to_string()));
        let (key, mut pipe) = (key(jid), redis::pipe());
        pipe.hset_nx(&key, seq, format!("{SENDING}{message_id}"))
            .hget(&key, seq)
            .expire(&key, REMEMBER_SECS)
            .ignore();
        let ((claimed, current), held): ((bool, Option<String>), u32) = self
            .write(shard, &pipe)
            .await
            .with_context(|| format!("claiming mail {seq} of job {jid} in the sent-mail ledger"))?;
        let claim = match current {
            _ if claimed => Claim::Ours,
            None => Claim::Ours,
            Some(value) => {
                if let Some(id) = value.strip_prefix(INTERRUPTED) {
                    Claim::Interrupted(id.to_string())
                } else if let Some(id) = value.strip_prefix(SENDING) {
                    Claim::Unfinished(id.to_string())
                } else {
                    Claim::Sent(value)
                }
            }
        };
        // About to send: only once replicas hold the mark a rerun would find.
        if matches!(claim, Claim::Ours | Claim::Unfinished(_)) && held < self.replicas {
            if claimed {
                // Best effort: where the claim didn't reach, neither may this.
                let _ = self.release(shard, jid, seq).await;
            }
            anyhow::bail!(
                "mail {seq} of job {jid} not sent: its claim in the sent-mail ledger reached {held} of the {} replicas --mail-replicas asks for within {}s, so a failover could lose it",
                self.replicas,
                REPLICA_WAIT.as_secs()
            );
        }
        Ok(claim)
    }

    /// Notes that call `seq` of job `jid` was accepted as `message_id`.
    /// With replicas to wait for, writes it again (to whichever server is
    /// master by then) until they hold it.
    pub async fn confirm(&self, shard: usize, jid: &str, seq: u32, message_id: &str) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.hset(key(jid), seq, message_id).ignore();
        let started = Instant::now();
        loop {
            let written = self.write::<()>(shard, &pipe).await;
            let held = match written {
                Ok(((), held)) if held >= self.replicas => return Ok(()),
                Ok(((), held)) => held,
                Err(_) if self.replicas > 0 && started.elapsed() < CONFIRM_PATIENCE => 0,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("noting mail {seq} of job {jid} in the sent-mail ledger"));
                }
            };
            if started.elapsed() >= CONFIRM_PATIENCE {
                anyhow::bail!(
                    "mail {seq} of job {jid} was sent, but its note in the sent-mail ledger reached only {held} of the {} replicas --mail-replicas asks for",
                    self.replicas
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `pipe` on `shard`'s master and returns its replies and how many
    /// replicas hold its writes: on the shared connection when no replicas
    /// are asked for, else on one of its own followed by `WAIT`, which
    /// blocks the connection it runs on.
    async fn write<T: redis::FromRedisValue>(
        &self,
        shard: usize,
        pipe: &redis::Pipeline,
    ) -> Result<(T, u32)> {
        if self.replicas == 0 {
            return Ok((pipe.query_async(&mut self.queue(shard).connection()).await?, 0));
        }
        let waited = async {
            let mut conn = self.queue(shard).own_connection().await?;
            let replies: T = pipe.query_async(&mut conn).await?;
            let held: u32 = redis::cmd("WAIT")
                .arg(self.replicas)
                .arg(REPLICA_WAIT.as_millis() as u64)
                .query_async(&mut conn)
                .await?;
            anyhow::Ok((replies, held))
        };
        match tokio::time::timeout(REPLICA_WAIT * 2, waited).await {
            Ok(written) => written,
            Err(_) => anyhow::bail!("Redis did not answer within {}s", (REPLICA_WAIT * 2).as_secs()),
        }
    }

    /// Notes that call `seq` of job `jid` ran out of time while being sent.
    pub async fn interrupt(&self, shard: usize, jid: &str, seq: u32) -> Result<()> {
        let mut conn = self.queue(shard).connection();
        INTERRUPT
            .key(key(jid))
            .arg(seq)
            .invoke_async::<()>(&mut conn)
            .await
            .with_context(|| format!("marking mail {seq} of job {jid} interrupted in the sent-mail ledger"))
    }

    /// Gives back the claim on call `seq` of job `jid`: sending it failed.
    pub async fn release(&self, shard: usize, jid: &str, seq: u32) -> Result<()> {
        let mut conn = self.queue(shard).connection();
        conn.hdel::<_, _, ()>(key(jid), seq)
            .await
            .with_context(|| format!("releasing mail {seq} of job {jid} in the sent-mail ledger"))
    }
}
