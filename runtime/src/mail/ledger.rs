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

use crate::queue::Queue;
use crate::queue::keys::sent_mail as key;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::Script;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// How long a job's sent mail is remembered: the 25 retries of Sidekiq's
/// default policy take about 20 days.
const REMEMBER_SECS: i64 = 21 * 24 * 3600;

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
        Ledger { shards, touched: Arc::default() }
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
    /// unless an earlier run claimed it. One round trip.
    pub async fn claim(&self, shard: usize, jid: &str, seq: u32, message_id: &str) -> Result<Claim> {
        self.touched.lock().expect("ledger lock").insert((shard, jid.to_string()));
        let mut conn = self.queue(shard).connection();
        let (claimed, current): (bool, Option<String>) = redis::pipe()
            .hset_nx(key(jid), seq, format!("{SENDING}{message_id}"))
            .hget(key(jid), seq)
            .expire(key(jid), REMEMBER_SECS)
            .ignore()
            .query_async(&mut conn)
            .await
            .with_context(|| format!("claiming mail {seq} of job {jid} in the sent-mail ledger"))?;
        Ok(match current {
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
        })
    }

    /// Notes that call `seq` of job `jid` was accepted as `message_id`.
    pub async fn confirm(&self, shard: usize, jid: &str, seq: u32, message_id: &str) -> Result<()> {
        let mut conn = self.queue(shard).connection();
        conn.hset::<_, _, _, ()>(key(jid), seq, message_id)
            .await
            .with_context(|| format!("noting mail {seq} of job {jid} in the sent-mail ledger"))
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
