//! The jobs running right now, for the heartbeat: Sidekiq's `busy` count
//! and its `<identity>:work` hash, which Sidekiq's Web UI lists on its
//! Busy page (and our dashboard too).
//!
//! A job is entered by [`Busy::start`] and leaves when the returned
//! [`Running`] is dropped, however the job ends. A job fetched ahead of a
//! free slot is entered by [`Busy::hold`] first: it counts as this
//! process's (so a rescue after a lost fetch reply doesn't put it back) but
//! isn't reported as running until [`Held::start`].

use crate::clock;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One running job as the heartbeat reports it.
struct Entry {
    /// The queue it came from.
    queue: String,
    /// Its JSON, as fetched.
    payload: Arc<[u8]>,
    /// When it started, in epoch seconds; `None` while it waits for a slot.
    run_at: Option<f64>,
    /// The plugin performing it, as `name version`, once known.
    plugin: Option<Arc<str>>,
}

/// The running jobs of this process.
#[derive(Default)]
pub struct Busy {
    /// Numbers the slots, as Sidekiq numbers its threads.
    next: AtomicU64,
    /// Running jobs by slot number. The lock is held only to insert, remove
    /// or copy out an entry. Ordered, because numbers are handed out in the
    /// order jobs are fetched, and jobs start in that order too: the first
    /// entry that has started is the one running longest.
    jobs: Mutex<BTreeMap<u64, Entry>>,
}

/// A job's place in [`Busy`]; dropping it takes the job out.
pub struct Running {
    busy: Arc<Busy>,
    id: u64,
}

impl Running {
    /// Notes which plugin (`name version`) performs the job.
    pub fn set_plugin(&self, plugin: Arc<str>) {
        if let Some(entry) = self.busy.jobs.lock().expect("busy lock").get_mut(&self.id) {
            entry.plugin = Some(plugin);
        }
    }
}

/// A job fetched ahead, waiting for a slot; dropping it takes the job out.
pub struct Held {
    ticket: Running,
}

impl Held {
    /// The job starts: from now on it is reported as running.
    pub fn start(self) -> Running {
        if let Some(entry) = self.ticket.busy.jobs.lock().expect("busy lock").get_mut(&self.ticket.id) {
            entry.run_at = Some(clock::now());
        }
        self.ticket
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.busy.jobs.lock().expect("busy lock").remove(&self.id);
    }
}

impl Busy {
    /// Enters a job taken from `queue`, running from now.
    pub fn start(self: &Arc<Self>, queue: &str, payload: Arc<[u8]>) -> Running {
        self.hold(queue, payload).start()
    }

    /// Enters a job taken from `queue` that waits for a slot.
    pub fn hold(self: &Arc<Self>, queue: &str, payload: Arc<[u8]>) -> Held {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Entry { queue: queue.to_string(), payload, run_at: None, plugin: None };
        self.jobs.lock().expect("busy lock").insert(id, entry);
        Held { ticket: Running { busy: self.clone(), id } }
    }

    /// How many jobs are running.
    pub fn count(&self) -> usize {
        self.jobs.lock().expect("busy lock").values().filter(|entry| entry.run_at.is_some()).count()
    }

    /// How long the longest-running job has been running, in seconds.
    /// Asked each time a job ends, so it looks at the oldest entries only:
    /// jobs leave the feed for their slots in the order they were fetched.
    pub fn longest_running(&self) -> f64 {
        let jobs = self.jobs.lock().expect("busy lock");
        let earliest = jobs.values().find_map(|entry| entry.run_at);
        earliest.map_or(0.0, |at| (clock::now() - at).max(0.0))
    }

    /// The JSON of every job taken from `queue`, running or waiting.
    pub fn payloads(&self, queue: &str) -> Vec<Arc<[u8]>> {
        let jobs = self.jobs.lock().expect("busy lock");
        jobs.values().filter(|entry| entry.queue == queue).map(|entry| entry.payload.clone()).collect()
    }

    /// Every running job as Sidekiq's workers hash holds it: a worker id
    /// and the JSON `{queue, payload, run_at}`, plus the plugin performing
    /// it (Sidekiq ignores the extra field; our dashboard shows it).
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let jobs = self.jobs.lock().expect("busy lock");
        jobs.iter()
            .filter_map(|(id, entry)| Some((id, entry, entry.run_at?)))
            .map(|(id, entry, run_at)| {
                let payload = String::from_utf8_lossy(&entry.payload);
                let work = json!({ "queue": entry.queue, "payload": payload, "run_at": run_at as i64,
                    "plugin": entry.plugin.as_deref() });
                (format!("w{id}"), work.to_string())
            })
            .collect()
    }
}

/// A running job, as SIGTTIN logs it.
pub struct RunningJob {
    pub queue: String,
    pub class: String,
    pub jid: String,
    pub plugin: Option<String>,
    /// How long it has been running.
    pub seconds: f64,
}

impl Busy {
    /// Every running job, longest-running first.
    pub fn describe(&self) -> Vec<RunningJob> {
        let jobs = self.jobs.lock().expect("busy lock");
        let now = clock::now();
        let mut running: Vec<RunningJob> = jobs
            .values()
            .filter_map(|entry| Some((entry, entry.run_at?)))
            .map(|(entry, run_at)| {
                let payload: serde_json::Value = serde_json::from_slice(&entry.payload).unwrap_or_default();
                let field = |key: &str| payload[key].as_str().unwrap_or("?").to_string();
                RunningJob {
                    queue: entry.queue.clone(),
                    class: field("class"),
                    jid: field("jid"),
                    plugin: entry.plugin.as_deref().map(str::to_string),
                    seconds: now - run_at,
                }
            })
            .collect();
        running.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_leave_when_their_ticket_drops() {
        let busy = Arc::new(Busy::default());
        let first = busy.start("default", Arc::from(&br#"{"class":"A"}"#[..]));
        let second = busy.start("mailers", Arc::from(&br#"{"class":"B"}"#[..]));
        second.set_plugin(Arc::from("b_plugin 1.0.0"));
        assert_eq!(busy.count(), 2);
        drop(first);
        let snapshot = busy.snapshot();
        assert_eq!(snapshot.len(), 1);
        let work: serde_json::Value = serde_json::from_str(&snapshot[0].1).unwrap();
        assert_eq!(work["queue"], "mailers");
        assert_eq!(work["payload"], r#"{"class":"B"}"#);
        assert_eq!(work["plugin"], "b_plugin 1.0.0");
    }

    #[test]
    fn a_held_job_is_ours_but_not_running_until_it_starts() {
        let busy = Arc::new(Busy::default());
        let held = busy.hold("default", Arc::from(&br#"{"class":"A"}"#[..]));
        assert_eq!(busy.count(), 0);
        assert!(busy.snapshot().is_empty() && busy.describe().is_empty());
        assert_eq!(busy.payloads("default").len(), 1);
        let running = held.start();
        assert_eq!((busy.count(), busy.snapshot().len(), busy.describe().len()), (1, 1, 1));
        drop(running);
        assert!(busy.payloads("default").is_empty());
        drop(busy.hold("default", Arc::from(&b"{}"[..])));
        assert!(busy.payloads("default").is_empty());
    }

    #[test]
    fn the_longest_running_is_the_first_started_still_running() {
        let busy = Arc::new(Busy::default());
        assert_eq!(busy.longest_running(), 0.0);
        let payload = || Arc::from(&b"{}"[..]);
        let first = busy.start("default", payload());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let second = busy.start("default", payload());
        let _held = busy.hold("default", payload());
        assert!(busy.longest_running() >= 0.05, "{}", busy.longest_running());
        drop(first);
        assert!(busy.longest_running() < 0.05, "{}", busy.longest_running());
        drop(second);
        assert_eq!(busy.longest_running(), 0.0, "a held job isn't running");
    }
}
