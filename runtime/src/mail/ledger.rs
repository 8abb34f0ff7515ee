//! Remembers the mail each job has sent, so that a job run again (after a
//! crash between sending and recording success, or after a later step
//! failed) doesn't send the same mail twice.
//!
//! Each `send-mail` call of a job is keyed by the job's jid and the call's
//! number within that run (the first call is 0, the next 1, ...). A job
//! performs the same calls in the same order when it runs again, so a
//! repeated call finds its key and gets the remembered Message-ID back
//! instead of a second delivery. The entries of a job live in one hash,
//! `jobrunner:sent:<jid>`, dropped when the job is done and expiring after
//! the retry window otherwise. What remains possible is a crash in the
//! instant between the server accepting a message and the ledger noting it.

use crate::queue::keys::sent_mail as key;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// How long a job's sent mail is remembered: the 25 retries of Sidekiq's
/// default policy take about 20 days.
const REMEMBER_SECS: i64 = 21 * 24 * 3600;

/// The mail sent per job, in Redis.
#[derive(Clone)]
pub struct Ledger {
    /// Shared with the queue; reconnects by itself.
    conn: ConnectionManager,
}

impl Ledger {
    pub fn new(conn: ConnectionManager) -> Ledger {
        Ledger { conn }
    }

    /// The Message-ID of call `seq` of job `jid`, if it was sent before.
    pub async fn recall(&self, jid: &str, seq: u32) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.hget(key(jid), seq)
            .await
            .with_context(|| format!("looking up mail {seq} of job {jid} in the sent-mail ledger"))
    }

    /// Notes that call `seq` of job `jid` was sent as `message_id`.
    pub async fn remember(&self, jid: &str, seq: u32, message_id: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .hset(key(jid), seq, message_id)
            .expire(key(jid), REMEMBER_SECS)
            .exec_async(&mut conn)
            .await
            .with_context(|| format!("noting mail {seq} of job {jid} in the sent-mail ledger"))
    }
}
