//! The runner's heartbeat, and the recovery of runners that stopped beating.
//!
//! Every interval the runner writes Sidekiq's process record (the
//! `processes` set, a hash that expires unless refreshed, and the
//! `<identity>:workers` hash of running jobs), so Sidekiq's Web UI lists it
//! and its jobs, and picks up the Web UI's "Quiet" and "Stop" commands. It then looks at every other runner that may hold
//! in-progress jobs: one whose last beat is older than the process timeout,
//! or whose pid no longer exists on this host, is dead, and its jobs go back
//! to their queues. At start-up the same check runs before the first fetch,
//! so a runner restarted after SIGKILL picks its own lost jobs up at once.

use crate::busy::Busy;
use crate::clock;
use crate::queue::{Queue, keys};
use crate::shutdown::{Shutdown, Trigger};
use anyhow::{Context, Result};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How this process shows up in Redis.
#[derive(Clone, Debug)]
pub struct Process {
    /// `hostname:pid:nonce`, as Sidekiq names processes.
    pub identity: String,
    /// This machine's hostname.
    pub hostname: String,
    /// This process's id.
    pub pid: u32,
    /// When the runner started, in epoch seconds.
    pub started_at: f64,
    /// The most jobs it runs at once.
    pub concurrency: usize,
    /// The queues it serves.
    pub queues: Vec<String>,
}

impl Process {
    pub fn new(concurrency: usize, queues: Vec<String>) -> Process {
        let hostname =
            hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into());
        let pid = std::process::id();
        let nonce = hex::encode(rand::random::<[u8; 6]>());
        Process {
            identity: format!("{hostname}:{pid}:{nonce}"),
            hostname,
            pid,
            started_at: clock::now(),
            concurrency,
            queues,
        }
    }

    /// Whether `identity` names a process on this host that is certainly
    /// gone: its pid is ours (an earlier life of this pid) or doesn't exist.
    fn is_dead_local(&self, identity: &str) -> bool {
        let mut parts = identity.rsplitn(3, ':');
        let (_nonce, pid, host) = (parts.next(), parts.next(), parts.next());
        if host != Some(self.hostname.as_str()) || identity == self.identity {
            return false;
        }
        match pid.and_then(|p| p.parse::<i32>().ok()) {
            Some(pid) if pid as u32 == self.pid => true,
            Some(pid) => !pid_exists(pid),
            None => false,
        }
    }
}

/// Whether a process with this pid exists on this host.
fn pid_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// How often to beat, and when a silent runner counts as dead.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub interval: Duration,
    pub process_timeout: Duration,
}

impl Timing {
    /// Checks that a live runner can't be mistaken for a dead one.
    pub fn new(interval: Duration, process_timeout: Duration) -> Result<Timing> {
        anyhow::ensure!(
            process_timeout >= interval * 2,
            "--process-timeout ({}s) must be at least twice --heartbeat ({}s), or live runners would look dead",
            process_timeout.as_secs_f64(),
            interval.as_secs_f64()
        );
        Ok(Timing { interval, process_timeout })
    }

    /// How long the process record outlives its last beat: Sidekiq's 60 s,
    /// unless beats are rarer than that.
    fn record_ttl_secs(&self) -> i64 {
        (self.interval.as_secs_f64() * 3.0).max(60.0).ceil() as i64
    }
}

/// Writes one heartbeat; returns the command the Web UI left for this
/// process (`TSTP` or `TERM`), if any.
pub async fn beat(
    queue: &Queue,
    process: &Process,
    timing: Timing,
    busy: &Busy,
    quiet: bool,
) -> Result<Option<String>> {
    let info = json!({
        "hostname": process.hostname,
        "started_at": process.started_at,
        "pid": process.pid,
        "tag": "jobrunner",
        "concurrency": process.concurrency,
        "queues": process.queues,
        "labels": ["jobrunner"],
        "identity": process.identity,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let queues: Vec<&str> = process.queues.iter().map(String::as_str).collect();
    queue.register(&process.identity, &queues).await?;
    let mut conn = queue.connection();
    let workers = keys::workers(&process.identity);
    let running = busy.snapshot();
    let mut pipe = redis::pipe();
    pipe.atomic().del(&workers).ignore();
    if !running.is_empty() {
        pipe.hset_multiple(&workers, &running).ignore().expire(&workers, timing.record_ttl_secs()).ignore();
    }
    let (command,): (Option<String>,) = pipe
        .sadd(crate::queue::keys::PROCESSES, &process.identity)
        .ignore()
        .hset_multiple(
            &process.identity,
            &[
                ("info", info.to_string()),
                ("busy", running.len().to_string()),
                ("beat", clock::now().to_string()),
                ("quiet", quiet.to_string()),
                ("rss", rss_kb().to_string()),
            ],
        )
        .ignore()
        .expire(&process.identity, timing.record_ttl_secs())
        .ignore()
        .rpop(keys::signals(&process.identity), None)
        .query_async(&mut conn)
        .await
        .context("writing the heartbeat")?;
    Ok(command)
}

/// Requeues the jobs of every runner that is dead.
pub async fn recover_dead(queue: &Queue, process: &Process, timing: Timing) -> Result<()> {
    for runner in queue.runners().await? {
        if runner == process.identity {
            continue;
        }
        let force = process.is_dead_local(&runner);
        if let Some(moved) = queue.recover(&runner, timing.process_timeout.as_secs_f64(), force).await? {
            tracing::warn!(runner = %runner, jobs = moved, "runner is gone; its in-progress jobs are back in their queues");
        }
    }
    Ok(())
}

/// Beats every `timing.interval` until the returned task is aborted, which
/// the runner does only once its last job is finished or requeued: a runner
/// draining its jobs at shutdown must not look dead to the others. Dead
/// runners are looked for only until shutdown begins.
pub fn spawn(
    queue: Queue,
    process: Arc<Process>,
    busy: Arc<Busy>,
    timing: Timing,
    (shutdown, trigger): (Shutdown, Trigger),
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(timing.interval).await;
            match beat(&queue, &process, timing, &busy, shutdown.is_quiet()).await {
                Ok(Some(command)) => obey(&command, &trigger),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "heartbeat failed"),
            }
            if shutdown.is_started() {
                continue;
            }
            if let Err(err) = recover_dead(&queue, &process, timing).await {
                tracing::warn!(error = %format!("{err:#}"), "looking for dead runners failed");
            }
        }
    })
}

/// Acts on a command from Sidekiq's Web UI, as Sidekiq does.
fn obey(command: &str, trigger: &Trigger) {
    match command {
        "TSTP" => {
            tracing::info!("quiet requested from the Web UI; no new jobs");
            trigger.quiet();
        }
        "TERM" => {
            tracing::info!("stop requested from the Web UI; shutting down");
            trigger.fire();
        }
        other => tracing::warn!(command = other, "ignoring an unknown command from the Web UI"),
    }
}

/// Resident memory of this process in KiB, as Sidekiq reports `rss`.
fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_identities_with_our_pid_or_no_process_are_dead() {
        let me = Process::new(1, vec!["default".into()]);
        let host = &me.hostname;
        assert!(!me.is_dead_local(&me.identity));
        assert!(me.is_dead_local(&format!("{host}:{}:abc", me.pid)));
        assert!(me.is_dead_local(&format!("{host}:999999999:abc")));
        assert!(!me.is_dead_local(&format!("{host}:1:abc")), "pid 1 exists");
        assert!(!me.is_dead_local(&format!("elsewhere:{}:abc", me.pid)));
    }
}
