//! The process registry, as the Web UIs of Sidekiq 6, 7 and 8 read it.
//!
//! Each heartbeat adds the runner to `processes` and rewrites its
//! `<identity>` hash (`info`, `concurrency`, `busy`, `beat`, `quiet`,
//! `rss`, `rtt_us`: every field the newest Web UI reads) and the hash of
//! the jobs it is running, under both names Sidekiq has used for it:
//! `<identity>:workers` (6.x) and `<identity>:work` (7.0+). A 6.x UI reads
//! only the first, a 7+ UI only the second. All of it expires unless the
//! next beat refreshes it; a clean stop removes it at once. The same beat
//! declares the runner in `jobrunner:runners` with the queues it holds
//! jobs of, for recovery.

use super::{Queue, keys};
use anyhow::{Context, Result};

/// One heartbeat's record of a process.
pub struct Beat<'a> {
    /// The process's identity, `host:pid:nonce`.
    pub identity: &'a str,
    /// The queues it fetches from, so a recovery knows which of its
    /// in-progress lists to look at.
    pub queues: &'a [&'a str],
    /// The `info` JSON.
    pub info: String,
    /// The most jobs it runs at once (a hash field from Sidekiq 8.1.2 on).
    pub concurrency: usize,
    /// Its running jobs: a worker id and `{queue, payload, run_at}` JSON.
    pub running: &'a [(String, String)],
    /// Now, in epoch seconds.
    pub beat: f64,
    /// Whether it takes no new jobs.
    pub quiet: bool,
    /// Its resident memory, in KiB.
    pub rss_kb: u64,
    /// How long the previous heartbeat's round trip took, in microseconds.
    pub rtt_us: u64,
    /// Its PID namespace, for telling whether its pid can be checked here.
    pub pid_ns: Option<&'a str>,
    /// Seconds the record lives without another beat.
    pub ttl_secs: i64,
}

impl Queue {
    /// Writes one heartbeat and takes the oldest command the Web UI left
    /// for the process (`TSTP`, `TERM`, `TTIN`), if any.
    pub async fn beat(&self, beat: &Beat<'_>) -> Result<Option<String>> {
        let identity = beat.identity;
        let (workers, work) = (keys::workers(identity), keys::work(identity));
        let mut pipe = redis::pipe();
        pipe.atomic().del(&[&workers, &work]).ignore();
        if !beat.running.is_empty() {
            for key in [&workers, &work] {
                pipe.hset_multiple(key, beat.running).ignore().expire(key, beat.ttl_secs).ignore();
            }
        }
        let mut fields = vec![
            ("info", beat.info.clone()),
            ("concurrency", beat.concurrency.to_string()),
            ("busy", beat.running.len().to_string()),
            ("beat", beat.beat.to_string()),
            ("quiet", beat.quiet.to_string()),
            ("rss", beat.rss_kb.to_string()),
            ("rtt_us", beat.rtt_us.to_string()),
        ];
        fields.extend(beat.pid_ns.map(|ns| ("pid_ns", ns.to_string())));
        let (command,): (Option<String>,) = pipe
            .sadd(keys::RUNNERS, identity)
            .ignore()
            .sadd(keys::inprogress_set(identity), beat.queues)
            .ignore()
            .sadd(keys::PROCESSES, identity)
            .ignore()
            .hset_multiple(identity, &fields)
            .ignore()
            .expire(identity, beat.ttl_secs)
            .ignore()
            .rpop(keys::signals(identity), None)
            .query_async(&mut self.connection())
            .await
            .context("writing the heartbeat")?;
        Ok(command)
    }

    /// The last heartbeat (epoch seconds) and the PID namespace of each of
    /// `identities`, in one round trip; `None` for one that never beat or
    /// whose record expired.
    pub async fn beats(&self, identities: &[String]) -> Result<Vec<(Option<f64>, Option<String>)>> {
        let mut pipe = redis::pipe();
        for identity in identities {
            pipe.hget(identity, &["beat", "pid_ns"]);
        }
        pipe.query_async(&mut self.connection()).await.context("reading the runners' heartbeats")
    }

    /// Takes the process off the registry, as Sidekiq does at a clean stop.
    pub async fn retire(&self, identity: &str) -> Result<()> {
        redis::pipe()
            .atomic()
            .srem(keys::PROCESSES, identity)
            .del(&[identity.to_string(), keys::workers(identity), keys::work(identity)])
            .exec_async(&mut self.connection())
            .await
            .with_context(|| format!("removing process {identity} from the process set"))
    }
}
