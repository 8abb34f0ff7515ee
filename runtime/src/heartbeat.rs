//! The runner's heartbeat, and the recovery of runners that stopped beating.
//!
//! Every interval the runner writes Sidekiq's process record (see
//! [`crate::queue::Beat`]), so the Web UI of Sidekiq 6, 7 or 8 lists it and
//! its jobs, and picks up the Web UI's "Quiet" and "Stop" commands and the
//! API's `TTIN` (log the running jobs, as SIGTTIN does), and writes the
//! job metrics of its Metrics tab ([`Executions`]). Then, if it is
//! its turn (one runner per half interval, see [`crate::queue::Queue::take_turn`]),
//! it looks at every other runner that may hold in-progress jobs: one
//! whose last beat is older than the process timeout, or whose pid no
//! longer exists on this host, is dead, and its jobs go back to their
//! queues. At start-up the same check runs before the first fetch,
//! so a runner restarted after SIGKILL picks its own lost jobs up at once.
//!
//! The pid shortcut holds only between runners that see the same pids:
//! the same kernel boot and the same PID namespace. Containers sharing a
//! host name (Docker with `--network host`, Kubernetes `hostNetwork`,
//! compose with a fixed `hostname:`) each have their own namespace, where
//! every runner may be PID 1 and `kill(pid, 0)` says nothing about the
//! others; there, and whenever a runner's namespace isn't known, the
//! heartbeat's age alone decides.

use crate::busy::Busy;
use crate::clock;
use crate::queue::executions::Executions;
use crate::queue::{Beat, Queue};
use crate::shutdown::{Shutdown, Trigger};
use anyhow::Result;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How this process shows up in Redis.
#[derive(Debug)]
pub struct Process {
    /// `hostname:pid:nonce`, as Sidekiq names processes.
    pub identity: String,
    /// This machine's hostname.
    pub hostname: String,
    /// This process's id.
    pub pid: u32,
    /// The PID namespace the pid belongs to (see [`pid_namespace`]), if known.
    pub pid_ns: Option<String>,
    /// When the runner started, in epoch seconds.
    pub started_at: f64,
    /// The most jobs it runs at once.
    pub concurrency: usize,
    /// The queues it serves, with their weights (0 for none, as Sidekiq).
    pub queues: Vec<(String, u32)>,
    /// The round trip of the last heartbeat, in microseconds.
    rtt_us: AtomicU64,
}

impl Process {
    pub fn new(concurrency: usize, queues: Vec<(String, u32)>) -> Process {
        let hostname =
            hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into());
        let pid = std::process::id();
        let nonce = hex::encode(rand::random::<[u8; 6]>());
        Process {
            identity: format!("{hostname}:{pid}:{nonce}"),
            hostname,
            pid,
            pid_ns: pid_namespace(),
            started_at: clock::now(),
            concurrency,
            queues,
            rtt_us: AtomicU64::new(0),
        }
    }

    /// Whether `identity`, whose heartbeat named `pid_ns` as its PID
    /// namespace, is a process that is certainly gone: in our namespace,
    /// with a pid that is ours (an earlier life of this pid) or that
    /// doesn't exist. A process of another namespace, or of one unknown,
    /// is never certainly gone.
    fn is_dead_local(&self, identity: &str, pid_ns: Option<&str>) -> bool {
        let mut parts = identity.rsplitn(3, ':');
        let (_nonce, pid, host) = (parts.next(), parts.next(), parts.next());
        if host != Some(self.hostname.as_str()) || identity == self.identity {
            return false;
        }
        if self.pid_ns.is_none() || pid_ns != self.pid_ns.as_deref() {
            return false;
        }
        match pid.and_then(|p| p.parse::<i32>().ok()) {
            Some(pid) if pid as u32 == self.pid => true,
            Some(pid) => !pid_exists(pid),
            None => false,
        }
    }
}

/// This process's PID namespace, as `<boot id>/<namespace inode>`: the
/// inode alone repeats across machines and boots, the kernel's boot id
/// doesn't. `None` where either can't be read.
fn pid_namespace() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let inode = std::fs::metadata("/proc/self/ns/pid").ok()?.ino();
    Some(format!("{}/{inode}", boot.trim()))
}

/// Whether a process with this pid exists in our PID namespace.
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
/// process (`TSTP`, `TERM` or `TTIN`), if any.
pub async fn beat(
    queue: &Queue,
    process: &Process,
    timing: Timing,
    busy: &Busy,
    quiet: bool,
) -> Result<Option<String>> {
    let queues: Vec<&str> = process.queues.iter().map(|(q, _)| q.as_str()).collect();
    let running = busy.snapshot();
    let started = Instant::now();
    let command = queue
        .beat(&Beat {
            identity: &process.identity,
            queues: &queues,
            info: info(process).to_string(),
            concurrency: process.concurrency,
            running: &running,
            beat: clock::now(),
            quiet,
            rss_kb: rss_kb(),
            rtt_us: process.rtt_us.load(Ordering::Relaxed),
            pid_ns: process.pid_ns.as_deref(),
            ttl_secs: timing.record_ttl_secs(),
        })
        .await?;
    process.rtt_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    Ok(command)
}

/// The `info` JSON: every field a Sidekiq 6.4 to 8.x Web UI shows.
fn info(process: &Process) -> serde_json::Value {
    let names: Vec<&str> = process.queues.iter().map(|(q, _)| q.as_str()).collect();
    let weights: serde_json::Map<String, serde_json::Value> =
        process.queues.iter().map(|(q, w)| (q.clone(), json!(w))).collect();
    let mode = if process.queues.iter().all(|(_, w)| *w == 0) { "strict" } else { "weighted" };
    json!({
        "hostname": process.hostname,
        "started_at": process.started_at,
        "pid": process.pid,
        "tag": "jobrunner",
        "concurrency": process.concurrency,
        "queues": names,
        "weights": [weights],
        "capsules": {"default": {"concurrency": process.concurrency, "mode": mode, "weights": weights}},
        "labels": ["jobrunner"],
        "identity": process.identity,
        "version": env!("CARGO_PKG_VERSION"),
        "embedded": false,
    })
}

/// Requeues the jobs of every runner that is dead: silent for longer than
/// the process timeout, or certainly gone from our PID namespace. Their
/// heartbeats are read in one round trip; the recovery script checks each
/// suspect again.
pub async fn recover_dead(queue: &Queue, process: &Process, timing: Timing) -> Result<()> {
    let runners: Vec<String> =
        queue.runners().await?.into_iter().filter(|runner| *runner != process.identity).collect();
    let beats = queue.beats(&runners).await?;
    let (now, timeout) = (clock::now(), timing.process_timeout.as_secs_f64());
    for (runner, (beat, pid_ns)) in runners.iter().zip(beats) {
        let force = process.is_dead_local(runner, pid_ns.as_deref());
        if !force && beat.is_some_and(|beat| now - beat < timeout) {
            continue;
        }
        if let Some(moved) = queue.recover(runner, timeout, force).await? {
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
    (process, busy, executions): (Arc<Process>, Arc<Busy>, Arc<Executions>),
    timing: Timing,
    (shutdown, trigger): (Shutdown, Trigger),
) -> tokio::task::JoinHandle<()> {
    crate::supervise::spawn("heartbeat", move || {
        let shared = (process.clone(), busy.clone(), executions.clone());
        beat_until_aborted(queue.clone(), shared, timing, (shutdown.clone(), trigger.clone()))
    })
}

async fn beat_until_aborted(
    queue: Queue,
    (process, busy, executions): (Arc<Process>, Arc<Busy>, Arc<Executions>),
    timing: Timing,
    (shutdown, trigger): (Shutdown, Trigger),
) {
    loop {
        tokio::time::sleep(timing.interval).await;
        match beat(&queue, &process, timing, &busy, shutdown.is_quiet()).await {
            Ok(Some(command)) => obey(&command, &trigger, &busy),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "heartbeat failed"),
        }
        // As Sidekiq flushes its job metrics: with every beat.
        if let Err(err) = executions.flush(&queue).await {
            tracing::warn!(error = %format!("{err:#}"), "writing the job metrics failed; kept for the next beat");
        }
        if shutdown.is_started() {
            continue;
        }
        // One runner per half interval looks, so a dead runner is still
        // found within an interval of its timeout, at a cost that
        // doesn't grow with the number of runners squared.
        match queue.take_turn("reap", &process.identity, timing.interval / 2).await {
            Ok(true) => {
                if let Err(err) = recover_dead(&queue, &process, timing).await {
                    tracing::warn!(error = %format!("{err:#}"), "looking for dead runners failed");
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "looking for dead runners failed"),
        }
    }
}

/// Acts on a command from Sidekiq's Web UI, as Sidekiq does.
fn obey(command: &str, trigger: &Trigger, busy: &Busy) {
    match command {
        "TSTP" => {
            tracing::info!("quiet requested from the Web UI; no new jobs");
            trigger.quiet();
        }
        "TERM" => {
            tracing::info!("stop requested from the Web UI; shutting down");
            trigger.fire();
        }
        "TTIN" => log_running(busy),
        other => tracing::warn!(command = other, "ignoring an unknown command from the Web UI"),
    }
}

/// Logs every running job, for SIGTTIN and the API's `TTIN`: what
/// Sidekiq's thread dump is for, whether a job is stuck and where.
pub fn log_running(busy: &Busy) {
    let running = busy.describe();
    tracing::info!(running = running.len(), "running jobs (TTIN)");
    for job in running {
        tracing::info!(queue = %job.queue, class = %crate::untrusted::escape(&job.class), jid = %crate::untrusted::escape(&job.jid),
            plugin = job.plugin.as_deref().unwrap_or("-"), running_s = format!("{:.1}", job.seconds), "running job");
    }
}

/// Logs the running jobs at every SIGTTIN, as Sidekiq dumps its threads.
pub fn on_ttin(busy: Arc<Busy>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut ttin) = signal(SignalKind::from_raw(libc::SIGTTIN)) else {
            tracing::warn!("cannot listen for SIGTTIN; the running jobs are on the dashboard's Busy page");
            return;
        };
        while ttin.recv().await.is_some() {
            log_running(&busy);
        }
    });
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
    fn info_lists_queues_weights_and_capsules_for_every_web_ui() {
        let process = Process::new(5, vec![("critical".into(), 3), ("default".into(), 1)]);
        let info = info(&process);
        for key in
            ["hostname", "started_at", "pid", "tag", "concurrency", "queues", "labels", "identity", "version"]
        {
            assert!(!info[key].is_null(), "{key}");
        }
        assert!(info["started_at"].is_f64());
        assert_eq!(info["queues"], json!(["critical", "default"]));
        assert_eq!(info["weights"], json!([{"critical": 3, "default": 1}]));
        assert_eq!(
            info["capsules"]["default"],
            json!({"concurrency": 5, "mode": "weighted", "weights": {"critical": 3, "default": 1}})
        );
        assert_eq!(info["embedded"], false);
    }

    #[test]
    fn local_identities_with_our_pid_or_no_process_are_dead() {
        let me = Process::new(1, vec![("default".into(), 0)]);
        let (host, ns) = (&me.hostname, me.pid_ns.as_deref());
        assert!(ns.is_some(), "Linux tells the PID namespace");
        assert!(!me.is_dead_local(&me.identity, ns));
        assert!(me.is_dead_local(&format!("{host}:{}:abc", me.pid), ns));
        assert!(me.is_dead_local(&format!("{host}:999999999:abc"), ns));
        assert!(!me.is_dead_local(&format!("{host}:1:abc"), ns), "pid 1 exists");
        assert!(!me.is_dead_local(&format!("elsewhere:{}:abc", me.pid), ns));
    }

    #[test]
    fn identities_of_another_or_an_unknown_pid_namespace_are_never_dead_by_pid() {
        let me = Process::new(1, vec![("default".into(), 0)]);
        let host = &me.hostname;
        // A container sharing our host name: its pid 1, or ours, or one we can't see.
        for pid in [me.pid, 1, 999_999_999] {
            let other = format!("{host}:{pid}:abc");
            assert!(!me.is_dead_local(&other, Some("another-boot/4026532175")), "{other}");
            assert!(!me.is_dead_local(&other, None), "{other} without a namespace");
        }
    }
}
