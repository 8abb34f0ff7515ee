//! The job metrics Sidekiq's Web UI shows on its Metrics tab (7.0+), for
//! the jobs the runner performs: per class and minute, how many ran, how
//! many failed, the milliseconds of the successful ones, and a histogram
//! of their durations.
//!
//! Counted in memory as jobs end and written at each heartbeat, as Sidekiq
//! flushes them, in both layouts (a 7.x UI and an 8.x UI read only their
//! own; `sidekiq@v7.3.10` and `sidekiq@v8.0.0:lib/sidekiq/metrics/`):
//!
//! - 7.x: hash `j|%Y%m%d|%-H:%-M` with `<Class>|p`, `|f`, `|ms`; histogram
//!   `<Class>-%d-%H:%-M`; both kept 8 hours.
//! - 8.x: the same fields in hash `j|%y%m%d|%-H:%M` (8 hours) and in the
//!   10-minute hash named like it without its last character (3 days);
//!   histogram `h|<Class>-%-d-%-H:%-M`.
//!
//! Histograms are 26 saturating `u16` counters in a `BITFIELD`, bucket `i`
//! the first whose limit the duration is under. All times are UTC.

use super::Queue;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// The upper limits of the histogram's buckets, in milliseconds; the last
/// bucket takes the rest.
const BUCKETS_MS: [f64; 25] = [
    20.0, 30.0, 45.0, 65.0, 100.0, 150.0, 225.0, 335.0, 500.0, 750.0, 1100.0, 1700.0, 2500.0, 3800.0, 5750.0,
    8500.0, 13000.0, 20000.0, 30000.0, 45000.0, 65000.0, 100000.0, 150000.0, 225000.0, 335000.0,
];
/// How long the minutely keys live: Sidekiq's 8 hours.
const MINUTELY_TTL: i64 = 8 * 3600;
/// How long 8.x's 10-minute keys live: 3 days.
const TEN_MINUTE_TTL: i64 = 3 * 24 * 3600;

/// One class's numbers in one minute.
#[derive(Debug, Default, Clone, PartialEq)]
struct Counts {
    processed: u64,
    failed: u64,
    /// Milliseconds of the runs that succeeded.
    ms: u64,
    histogram: [u64; 26],
}

impl Counts {
    fn add(&mut self, more: &Counts) {
        self.processed += more.processed;
        self.failed += more.failed;
        self.ms += more.ms;
        for (kept, more) in self.histogram.iter_mut().zip(more.histogram) {
            *kept += more;
        }
    }
}

/// Counts by minute (in epoch seconds), then by class.
type Minutes = HashMap<i64, HashMap<String, Counts>>;

/// The numbers not yet written.
#[derive(Default)]
pub struct Executions {
    pending: Mutex<Minutes>,
}

/// The counts of `class` in `minute`, found without copying the class's
/// name except the first time in that minute.
fn counts_of<'a>(pending: &'a mut Minutes, minute: i64, class: &str) -> &'a mut Counts {
    let classes = pending.entry(minute).or_default();
    if !classes.contains_key(class) {
        classes.insert(class.to_string(), Counts::default());
    }
    classes.get_mut(class).expect("just entered")
}

impl Executions {
    /// Counts one run of `class` that took `seconds` and ended now.
    pub fn record(&self, class: &str, seconds: f64, failed: bool) {
        let minute = Utc::now().timestamp().div_euclid(60) * 60;
        let mut pending = self.pending.lock().expect("executions lock");
        let counts = counts_of(&mut pending, minute, class);
        counts.processed += 1;
        let ms = seconds * 1000.0;
        if failed {
            counts.failed += 1;
        } else {
            counts.ms += ms.round() as u64;
            counts.histogram[bucket(ms)] += 1;
        }
    }

    /// Writes what was counted since the last flush; what Redis refused is
    /// counted again for the next.
    pub async fn flush(&self, queue: &Queue) -> Result<()> {
        let taken = std::mem::take(&mut *self.pending.lock().expect("executions lock"));
        if taken.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (minute, classes) in &taken {
            let at = DateTime::from_timestamp(*minute, 0).unwrap_or_default();
            for (class, counts) in classes {
                write(&mut pipe, &at, class, counts);
            }
        }
        let written: Result<()> =
            pipe.exec_async(&mut queue.connection()).await.context("writing the job metrics (Metrics tab)");
        if written.is_err() {
            let mut pending = self.pending.lock().expect("executions lock");
            for (minute, classes) in taken {
                for (class, counts) in classes {
                    counts_of(&mut pending, minute, &class).add(&counts);
                }
            }
        }
        written
    }
}

/// The bucket of a run of `ms` milliseconds.
fn bucket(ms: f64) -> usize {
    BUCKETS_MS.iter().position(|limit| ms < *limit).unwrap_or(BUCKETS_MS.len())
}

/// The keys one minute of one class goes to, in both layouts.
struct Keys {
    /// 7.x's minutely hash, 8.x's minutely and 10-minute hashes.
    hashes: [(String, i64); 3],
    /// 7.x's and 8.x's histograms.
    histograms: [String; 2],
}

fn keys(at: &DateTime<Utc>, class: &str) -> Keys {
    let v8_minute = format!("j|{}", at.format("%y%m%d|%-H:%M"));
    let v8_ten = v8_minute[..v8_minute.len() - 1].to_string();
    Keys {
        hashes: [
            (format!("j|{}", at.format("%Y%m%d|%-H:%-M")), MINUTELY_TTL),
            (v8_minute, MINUTELY_TTL),
            (v8_ten, TEN_MINUTE_TTL),
        ],
        histograms: [
            format!("{class}-{}", at.format("%d-%H:%-M")),
            format!("h|{class}-{}", at.format("%-d-%-H:%-M")),
        ],
    }
}

fn write(pipe: &mut redis::Pipeline, at: &DateTime<Utc>, class: &str, counts: &Counts) {
    let Keys { hashes, histograms } = keys(at, class);
    for (key, ttl) in &hashes {
        pipe.hincr(key, format!("{class}|p"), counts.processed).ignore();
        if counts.failed > 0 {
            pipe.hincr(key, format!("{class}|f"), counts.failed).ignore();
        }
        if counts.ms > 0 {
            pipe.hincr(key, format!("{class}|ms"), counts.ms).ignore();
        }
        pipe.expire(key, *ttl).ignore();
    }
    if counts.histogram.iter().all(|n| *n == 0) {
        return;
    }
    for key in &histograms {
        let mut bitfield = redis::cmd("BITFIELD");
        bitfield.arg(key).arg("OVERFLOW").arg("SAT");
        for (i, n) in counts.histogram.iter().enumerate().filter(|(_, n)| **n > 0) {
            bitfield.arg("INCRBY").arg("u16").arg(format!("#{i}")).arg(n.min(&u64::from(u16::MAX)));
        }
        pipe.add_command(bitfield).ignore();
        pipe.expire(key, MINUTELY_TTL).ignore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_sidekiq_7_and_8_name_them() {
        let at = DateTime::parse_from_rfc3339("2025-02-14T08:05:00Z").unwrap().with_timezone(&Utc);
        let keys = keys(&at, "MyJob");
        let hashes: Vec<&str> = keys.hashes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(hashes, ["j|20250214|8:5", "j|250214|8:05", "j|250214|8:0"]);
        assert_eq!(keys.histograms, ["MyJob-14-08:5", "h|MyJob-14-8:5"]);
        let late = DateTime::parse_from_rfc3339("2025-02-04T13:47:00Z").unwrap().with_timezone(&Utc);
        let late = super::keys(&late, "A");
        assert_eq!(late.hashes[2].0, "j|250204|13:4");
        assert_eq!(late.histograms, ["A-04-13:47", "h|A-4-13:47"]);
    }

    #[test]
    fn durations_fall_in_sidekiqs_buckets() {
        assert_eq!(bucket(0.05), 0);
        assert_eq!(bucket(20.0), 1);
        assert_eq!(bucket(499.0), 8);
        assert_eq!(bucket(1e9), 25);
    }

    #[test]
    fn failures_count_but_add_no_time() {
        let executions = Executions::default();
        executions.record("A", 0.010, false);
        executions.record("A", 5.0, true);
        let pending = executions.pending.lock().unwrap();
        let counts = &pending.values().next().unwrap()["A"];
        assert_eq!((counts.processed, counts.failed, counts.ms), (2, 1, 10));
        assert_eq!(counts.histogram.iter().sum::<u64>(), 1);
    }
}
