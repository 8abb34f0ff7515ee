//! What a periodic job is: sidekiq-scheduler's shape, as in `sidekiq.yml`
//! under `:scheduler: :schedule:` (or the runner's `jobrunner: periodic:`),
//! read into a schedule whose ticks every runner computes alike.

use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// One periodic job as the file declares it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    /// A cron line: 5 fields, or 6 with seconds first, and optionally a
    /// time zone after them (`0 8 * * * Europe/Berlin`).
    cron: Option<String>,
    /// An interval instead: `30s`, `5m`, `1h`.
    every: Option<String>,
    /// The job class.
    class: String,
    /// The queue it is pushed to.
    #[serde(default = "default_queue")]
    queue: String,
    /// Its arguments: a list, or one value (as sidekiq-scheduler takes it).
    #[serde(default)]
    args: Value,
    /// What it is for, shown on the dashboard.
    #[serde(default)]
    description: String,
    /// Whether it runs at all (the dashboard can change it).
    #[serde(default = "yes")]
    enabled: bool,
}

fn default_queue() -> String {
    "default".to_string()
}

fn yes() -> bool {
    true
}

/// When a periodic job is due.
#[derive(Debug, Clone)]
pub enum When {
    /// On a cron line's instants, in a time zone.
    Cron { cron: Box<croner::Cron>, zone: chrono_tz::Tz, text: String },
    /// At every multiple of an interval since the epoch.
    Every { interval: Duration, text: String },
}

/// One periodic job.
#[derive(Debug, Clone)]
pub struct Periodic {
    /// Its name, unique in the schedule.
    pub name: String,
    /// When it is due.
    pub when: When,
    /// The job class pushed.
    pub class: String,
    /// The queue it is pushed to.
    pub queue: String,
    /// The job's arguments, a JSON array.
    pub args: Value,
    /// What it is for.
    pub description: String,
    /// Whether the file enables it (Redis may say otherwise since).
    pub enabled: bool,
}

impl Periodic {
    /// The first tick strictly after `after` (epoch seconds), in epoch seconds.
    pub fn next_after(&self, after: f64) -> Option<f64> {
        match &self.when {
            When::Every { interval, .. } => {
                let step = interval.as_secs_f64();
                Some(((after / step).floor() + 1.0) * step)
            }
            When::Cron { cron, zone, .. } => {
                let secs = after.floor() as i64;
                let start = zone.from_utc_datetime(&Utc.timestamp_opt(secs, 0).single()?.naive_utc());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp() as f64)
            }
        }
    }

    /// The schedule as written, for the dashboard.
    pub fn schedule_text(&self) -> String {
        match &self.when {
            When::Cron { text, .. } => format!("cron {text}"),
            When::Every { text, .. } => format!("every {text}"),
        }
    }
}

/// Reads the schedule: JSON of name → declaration.
pub fn parse(json: &str) -> Result<Vec<Periodic>> {
    let entries: Map<String, Value> =
        serde_json::from_str(json).context("the schedule must be a mapping of names")?;
    entries
        .into_iter()
        .map(|(name, value)| one(&name, value).with_context(|| format!("periodic job `{name}`")))
        .collect()
}

fn one(name: &str, value: Value) -> Result<Periodic> {
    let declared: Declared = serde_json::from_value(value)?;
    let when = match (&declared.cron, &declared.every) {
        (Some(line), None) => cron(line)?,
        (None, Some(every)) => {
            let interval = humantime::parse_duration(every.trim())
                .with_context(|| format!("`every: {every}` is not a duration like 30s or 5m"))?;
            if interval < Duration::from_secs(1) {
                bail!("`every: {every}` is shorter than a second");
            }
            When::Every { interval, text: every.clone() }
        }
        _ => bail!("give exactly one of `cron` and `every`"),
    };
    if declared.class.trim().is_empty() {
        bail!("`class` is empty");
    }
    let args = match declared.args {
        Value::Null => Value::Array(Vec::new()),
        Value::Array(args) => Value::Array(args),
        one => Value::Array(vec![one]),
    };
    Ok(Periodic {
        name: name.to_string(),
        when,
        class: declared.class,
        queue: declared.queue,
        args,
        description: declared.description,
        enabled: declared.enabled,
    })
}

/// A cron line, with an optional time zone after its fields.
fn cron(line: &str) -> Result<When> {
    let mut fields: Vec<&str> = line.split_whitespace().collect();
    let zone = match fields.last().and_then(|last| last.parse::<chrono_tz::Tz>().ok()) {
        Some(zone) if fields.len() > 5 => {
            fields.pop();
            zone
        }
        _ => chrono_tz::UTC,
    };
    let pattern = fields.join(" ");
    let cron = croner::Cron::new(&pattern)
        .with_seconds_optional()
        .parse()
        .map_err(|e| anyhow::anyhow!("`cron: {line}` is not a cron line: {e}"))?;
    Ok(When::Cron { cron: Box::new(cron), zone, text: line.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(json: &str) -> Periodic {
        parse(json).unwrap().remove(0)
    }

    #[test]
    fn every_ticks_on_multiples_of_the_interval() {
        let p = only(r#"{"beat": {"every": "30s", "class": "BeatJob"}}"#);
        assert_eq!(p.next_after(1_000_000_005.0), Some(1_000_000_020.0));
        assert_eq!(p.next_after(1_000_000_020.0), Some(1_000_000_050.0));
        assert_eq!((p.queue.as_str(), p.args.clone(), p.enabled), ("default", Value::Array(vec![]), true));
    }

    #[test]
    fn cron_lines_take_seconds_and_a_time_zone() {
        // 2026-11-29T07:59:00Z; Berlin is UTC+1 in winter.
        let at = 1_795_939_140.0;
        let utc = only(r#"{"d": {"cron": "0 8 * * *", "class": "DigestJob", "args": 5}}"#);
        assert_eq!(utc.next_after(at), Some(at + 60.0));
        assert_eq!(utc.args, serde_json::json!([5]));
        let berlin = only(r#"{"d": {"cron": "0 9 * * * Europe/Berlin", "class": "DigestJob"}}"#);
        assert_eq!(berlin.next_after(at), Some(at + 60.0));
        let seconds = only(r#"{"d": {"cron": "*/10 * * * * *", "class": "TickJob"}}"#);
        assert_eq!(seconds.next_after(at + 1.0), Some(at + 10.0));
    }

    #[test]
    fn mistakes_name_the_job_and_the_reason() {
        for (json, expected) in [
            (r#"{"x": {"class": "A"}}"#, "exactly one of `cron` and `every`"),
            (r#"{"x": {"cron": "bogus", "class": "A"}}"#, "not a cron line"),
            (r#"{"x": {"every": "soon", "class": "A"}}"#, "not a duration"),
            (r#"{"x": {"every": "1s", "class": "A", "at": "3pm"}}"#, "unknown field `at`"),
        ] {
            let err = format!("{:#}", parse(json).unwrap_err());
            assert!(err.contains("periodic job `x`") && err.contains(expected), "{err}");
        }
    }
}
