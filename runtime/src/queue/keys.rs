//! Redis key names. Sidekiq's own keys keep Sidekiq's names so that its
//! clients and Web UI see the same data; the runner's private bookkeeping
//! lives under `jobrunner:`.

/// Set of known queue names (Sidekiq).
pub const QUEUES: &str = "queues";
/// Sorted set of scheduled jobs, scored by when they are due (Sidekiq).
pub const SCHEDULE: &str = "schedule";
/// Sorted set of failed jobs waiting for their next attempt (Sidekiq).
pub const RETRY: &str = "retry";
/// Sorted set of jobs that will not be tried again (Sidekiq).
pub const DEAD: &str = "dead";
/// Set of live process identities (Sidekiq).
pub const PROCESSES: &str = "processes";
/// Set of runner identities that may own in-progress jobs. Unlike
/// `processes`, nothing but a recovery removes an identity from it.
pub const RUNNERS: &str = "jobrunner:runners";

/// Jobs processed, and jobs failed, since the counters were reset (Sidekiq).
pub const STAT_PROCESSED: &str = "stat:processed";
pub const STAT_FAILED: &str = "stat:failed";

/// The hash of a process's running jobs, as Sidekiq 6 names it.
pub fn workers(identity: &str) -> String {
    format!("{identity}:workers")
}

/// The hash of a process's running jobs, as Sidekiq 7 and later name it.
pub fn work(identity: &str) -> String {
    format!("{identity}:work")
}

/// The list of Web UI commands (`TSTP`, `TERM`, `TTIN`) for a process (Sidekiq).
pub fn signals(identity: &str) -> String {
    format!("{identity}-signals")
}

/// The list a queue's jobs wait in (Sidekiq).
pub fn queue(name: &str) -> String {
    format!("queue:{name}")
}

/// The set of queue names a runner fetches from; each has an in-progress list.
pub fn inprogress_set(identity: &str) -> String {
    format!("jobrunner:inprogress:{identity}")
}

/// The list holding the jobs a runner took from `queue` and hasn't finished.
pub fn inprogress(identity: &str, queue: &str) -> String {
    format!("jobrunner:inprogress:{identity}:{queue}")
}

/// The hash of mail the job `jid` has sent, by call number.
pub fn sent_mail(jid: &str) -> String {
    format!("jobrunner:sent:{jid}")
}

/// The lock that keeps a unique job's duplicates out, by the digest of its
/// class, queue and arguments.
pub fn unique(digest: &str) -> String {
    format!("jobrunner:unique:{digest}")
}

/// The shard of `count` that holds `queue`'s jobs when no shard is named:
/// a stable hash of the name (FNV-1a), the same in every runner and release.
pub fn shard_of(queue: &str, count: usize) -> usize {
    let hash = queue
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % count.max(1) as u64) as usize
}

/// Whose turn it is at a chore one runner at a time does for all (see
/// `queue::turn`).
pub fn turn(chore: &str) -> String {
    format!("jobrunner:turn:{chore}")
}

/// Sorted set of cancelled jids, scored by when they were cancelled.
pub const CANCELLED: &str = "jobrunner:cancelled";
/// The channel a cancelled jid is published on, for the runner running it.
pub const CANCEL_CHANNEL: &str = "jobrunner:cancel";

/// The state of periodic job `name`: last tick, last run and jid, on/off.
pub fn periodic(name: &str) -> String {
    format!("jobrunner:periodic:{name}")
}

/// Sidekiq's daily counters, e.g. `stat:processed:2026-11-25`.
pub fn daily_stat(stat: &str, date: &str) -> String {
    format!("stat:{stat}:{date}")
}

/// The state of iterable job `jid`: executions, cursor, runtime and
/// cancellation, as Sidekiq 7.3+ names it.
pub fn iteration(jid: &str) -> String {
    format!("it-{jid}")
}
