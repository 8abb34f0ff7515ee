//! Reading Sidekiq's data for the dashboard: the totals, the daily history,
//! queues and their jobs, the retry/schedule/dead sets, the processes and
//! what they are running, and Redis's own numbers. Read-only; the changes
//! the dashboard makes are in [`super::admin`].

use super::{Admin, keys};
use crate::clock;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

/// Jobs per page in every list.
pub const PAGE_SIZE: usize = 25;

/// The overview's numbers, as Sidekiq's `Stats` gives them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub processed: u64,
    pub failed: u64,
    /// Jobs running now, over all processes.
    pub busy: u64,
    /// Jobs waiting, over all queues.
    pub enqueued: u64,
    pub retries: u64,
    pub scheduled: u64,
    pub dead: u64,
    /// Live processes.
    pub processes: u64,
}

/// One day of Sidekiq's daily counters.
#[derive(Clone, Debug, Serialize)]
pub struct Day {
    pub date: String,
    pub processed: u64,
    pub failed: u64,
}

/// Redis's version, memory and uptime.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RedisInfo {
    pub version: String,
    pub uptime_days: u64,
    pub used_memory: String,
    pub peak_memory: String,
    pub connected_clients: u64,
}

/// One queue: its size and the age of its oldest job.
#[derive(Clone, Debug, Serialize)]
pub struct QueueSummary {
    pub name: String,
    pub size: u64,
    /// Seconds the oldest job has waited; 0 when empty.
    pub latency: f64,
}

/// A job as the dashboard shows it, with ActiveJob's wrapper seen through.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub jid: String,
    pub class: String,
    pub args: Value,
    pub queue: String,
    pub enqueued_at: Option<f64>,
    pub created_at: Option<f64>,
    pub failed_at: Option<f64>,
    pub retry_count: Option<u64>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub error_backtrace: Option<Value>,
    /// The JSON exactly as stored, which identifies it in a queue.
    pub raw: String,
}

/// A job in a sorted set, with its score (when due, or when it died).
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// `score|jid`: what the dashboard's forms send back to act on it.
    pub key: String,
    pub at: f64,
    pub job: JobView,
}

/// A page of a list.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
    pub total: u64,
}

/// A running process, Sidekiq's or ours, and its jobs.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessView {
    pub identity: String,
    pub hostname: String,
    pub pid: u64,
    pub tag: String,
    pub concurrency: u64,
    pub queues: Vec<String>,
    pub started_at: f64,
    pub beat: f64,
    pub busy: u64,
    pub quiet: bool,
    pub jobs: Vec<WorkView>,
}

/// A job running now.
#[derive(Clone, Debug, Serialize)]
pub struct WorkView {
    pub queue: String,
    /// `name version` of the plugin performing it (our runners only).
    pub plugin: Option<String>,
    pub run_at: f64,
    pub job: JobView,
    /// An iterable job's progress (Sidekiq's `it-<jid>`): its runs and cursor.
    pub iteration: Option<super::iteration::Saved>,
}

impl JobView {
    /// Reads a job's JSON; text that isn't a job still shows, as its raw text.
    pub fn parse(raw: &str) -> JobView {
        let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_string);
        // Shown as the plugin sees it: ActiveJob unwrapped, mail jobs as `Mailer#action`.
        let (class, args) = crate::activejob::display(&value).unwrap_or_else(|| {
            (
                text(&value["class"]).unwrap_or_else(|| "(not a job)".into()),
                value.get("args").cloned().unwrap_or_else(|| Value::String(raw.to_string())),
            )
        });
        JobView {
            jid: text(&value["jid"]).unwrap_or_default(),
            class,
            args,
            queue: text(&value["queue"]).unwrap_or_else(|| "default".into()),
            enqueued_at: timestamp(&value["enqueued_at"]),
            created_at: timestamp(&value["created_at"]),
            failed_at: timestamp(&value["failed_at"]),
            retry_count: value["retry_count"].as_u64(),
            error_class: text(&value["error_class"]),
            error_message: text(&value["error_message"]),
            error_backtrace: value.get("error_backtrace").cloned(),
            raw: raw.to_string(),
        }
    }
}

/// A process's running jobs as Redis holds them: worker id and JSON.
type WorkHash = Vec<(String, String)>;

/// A job timestamp in epoch seconds, whichever Sidekiq wrote it.
fn timestamp(value: &Value) -> Option<f64> {
    crate::clock::epoch_seconds(value)
}

/// `page` (1-based) as a Redis range. A page past any list (even
/// `?page=18446744073709551615`) is an empty range, never an overflow.
fn range(page: usize) -> (isize, isize) {
    let start = (page.max(1) - 1).saturating_mul(PAGE_SIZE).min(isize::MAX as usize - PAGE_SIZE);
    (start as isize, (start + PAGE_SIZE - 1) as isize)
}

impl Admin {
    /// The overview's totals.
    pub async fn stats(&self) -> Result<Stats> {
        let (processed, failed): (Option<u64>, Option<u64>) = redis::pipe()
            .get(keys::STAT_PROCESSED)
            .get(keys::STAT_FAILED)
            .query_async(&mut self.connection())
            .await
            .context("reading the totals")?;
        let [(_, retries), (_, scheduled), (_, dead)] = self.set_sizes().await?;
        let enqueued = self.queues().await?.iter().map(|q| q.size).sum();
        let processes = self.processes(false).await?;
        Ok(Stats {
            processed: processed.unwrap_or(0),
            failed: failed.unwrap_or(0),
            retries,
            scheduled,
            dead,
            enqueued,
            busy: processes.iter().map(|p| p.busy).sum(),
            processes: processes.len() as u64,
        })
    }

    /// The sizes of the `retry`, `schedule` and `dead` sets, by key.
    pub async fn set_sizes(&self) -> Result<[(&'static str, u64); 3]> {
        let (retry, schedule, dead): (u64, u64, u64) = redis::pipe()
            .zcard(keys::RETRY)
            .zcard(keys::SCHEDULE)
            .zcard(keys::DEAD)
            .query_async(&mut self.connection())
            .await
            .context("reading the sizes of the retry, schedule and dead sets")?;
        Ok([(keys::RETRY, retry), (keys::SCHEDULE, schedule), (keys::DEAD, dead)])
    }

    /// The daily counters of the last `days` days, oldest first.
    pub async fn history(&self, days: usize) -> Result<Vec<Day>> {
        let now = clock::now();
        let dates: Vec<String> =
            (0..days).rev().map(|d| clock::utc_date(now - d as f64 * 86_400.0)).collect();
        let mut pipe = redis::pipe();
        for date in &dates {
            pipe.get(keys::daily_stat("processed", date)).get(keys::daily_stat("failed", date));
        }
        let counts: Vec<Option<u64>> =
            pipe.query_async(&mut self.connection()).await.context("reading the daily counters")?;
        Ok(dates
            .into_iter()
            .zip(counts.chunks(2))
            .map(|(date, c)| Day { date, processed: c[0].unwrap_or(0), failed: c[1].unwrap_or(0) })
            .collect())
    }

    /// Redis's version, memory and uptime, from `INFO`.
    pub async fn redis_info(&self) -> Result<RedisInfo> {
        let text: String =
            redis::cmd("INFO").query_async(&mut self.connection()).await.context("reading Redis's INFO")?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        Ok(RedisInfo {
            version: field("redis_version"),
            uptime_days: field("uptime_in_days").parse().unwrap_or(0),
            used_memory: field("used_memory_human"),
            peak_memory: field("used_memory_peak_human"),
            connected_clients: field("connected_clients").parse().unwrap_or(0),
        })
    }

    /// Every known queue's name, sorted.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> =
            self.connection().smembers(keys::QUEUES).await.context("reading the queue names")?;
        names.sort();
        Ok(names)
    }

    /// Every queue with its size and latency.
    pub async fn queues(&self) -> Result<Vec<QueueSummary>> {
        let names = self.queue_names().await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.llen(keys::queue(name)).lindex(keys::queue(name), -1);
        }
        let values: Vec<(u64, Option<String>)> =
            pipe.query_async(&mut self.connection()).await.context("reading the queues")?;
        let now = clock::now();
        Ok(names
            .into_iter()
            .zip(values)
            .map(|(name, (size, oldest))| {
                let enqueued = oldest.and_then(|raw| JobView::parse(&raw).enqueued_at);
                QueueSummary { name, size, latency: enqueued.map_or(0.0, |at| (now - at).max(0.0)) }
            })
            .collect())
    }

    /// A page of the jobs waiting in `queue`, next to run last (as Sidekiq lists them).
    pub async fn queue_page(&self, queue: &str, page: usize) -> Result<Page<JobView>> {
        let key = keys::queue(queue);
        let (start, stop) = range(page);
        let (total, raw): (u64, Vec<String>) = redis::pipe()
            .llen(&key)
            .lrange(&key, start, stop)
            .query_async(&mut self.connection())
            .await
            .with_context(|| format!("reading queue {queue}"))?;
        let items = raw.iter().map(|r| JobView::parse(r)).collect();
        Ok(Page { items, page: page.max(1), per_page: PAGE_SIZE, total })
    }

    /// A page of a sorted set (`retry`, `schedule` or `dead`): retries and
    /// scheduled jobs soonest first, dead jobs newest first.
    pub async fn set_page(&self, set: &str, page: usize) -> Result<Page<Entry>> {
        let (start, stop) = range(page);
        let mut pipe = redis::pipe();
        pipe.zcard(set);
        if set == keys::DEAD {
            pipe.zrevrange_withscores(set, start, stop);
        } else {
            pipe.zrange_withscores(set, start, stop);
        }
        let (total, raw): (u64, Vec<(String, String)>) = pipe
            .query_async(&mut self.connection())
            .await
            .with_context(|| format!("reading the {set} set"))?;
        let items = raw
            .into_iter()
            .map(|(member, score)| {
                let job = JobView::parse(&member);
                Entry { key: format!("{score}|{}", job.jid), at: score.parse().unwrap_or(0.0), job }
            })
            .collect();
        Ok(Page { items, page: page.max(1), per_page: PAGE_SIZE, total })
    }

    /// The live processes and, with `with_jobs`, what each is running.
    pub async fn processes(&self, with_jobs: bool) -> Result<Vec<ProcessView>> {
        let mut conn = self.connection();
        let mut identities: Vec<String> =
            conn.smembers(keys::PROCESSES).await.context("reading the process set")?;
        identities.sort();
        let mut processes = Vec::new();
        for identity in identities {
            let (info, busy, beat, quiet): (Option<String>, Option<u64>, Option<f64>, Option<String>) = conn
                .hget(&identity, &["info", "busy", "beat", "quiet"])
                .await
                .with_context(|| format!("reading process {identity}"))?;
            // A process whose record expired is gone, though still in the set.
            let Some(info) = info.and_then(|i| serde_json::from_str::<Value>(&i).ok()) else { continue };
            let jobs = if with_jobs { self.running(&identity).await? } else { Vec::new() };
            processes.push(ProcessView {
                hostname: info["hostname"].as_str().unwrap_or_default().to_string(),
                pid: info["pid"].as_u64().unwrap_or(0),
                tag: info["tag"].as_str().unwrap_or_default().to_string(),
                concurrency: info["concurrency"].as_u64().unwrap_or(0),
                queues: serde_json::from_value(info["queues"].clone()).unwrap_or_default(),
                started_at: info["started_at"].as_f64().unwrap_or(0.0),
                beat: beat.unwrap_or(0.0),
                busy: busy.unwrap_or(0),
                quiet: quiet.as_deref() == Some("true"),
                identity,
                jobs,
            });
        }
        Ok(processes)
    }

    /// The jobs `identity` is running, from its `<identity>:work` hash
    /// (Sidekiq 7+ and the runner), else its `<identity>:workers` (6.x).
    async fn running(&self, identity: &str) -> Result<Vec<WorkView>> {
        let (work, workers): (WorkHash, WorkHash) = redis::pipe()
            .hgetall(keys::work(identity))
            .hgetall(keys::workers(identity))
            .query_async(&mut self.connection())
            .await
            .with_context(|| format!("reading the jobs of process {identity}"))?;
        let workers = if work.is_empty() { workers } else { work };
        let mut jobs: Vec<WorkView> = workers
            .into_iter()
            .filter_map(|(_, work)| serde_json::from_str::<Value>(&work).ok())
            .map(|work| {
                // Sidekiq 7 stores the payload as a string; 6 as an object.
                let payload = match &work["payload"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                WorkView {
                    queue: work["queue"].as_str().unwrap_or_default().to_string(),
                    plugin: work["plugin"].as_str().map(str::to_string),
                    // Integer seconds in every Sidekiq version.
                    run_at: work["run_at"].as_f64().unwrap_or(0.0),
                    job: JobView::parse(&payload),
                    iteration: None,
                }
            })
            .collect();
        jobs.sort_by(|a, b| a.run_at.total_cmp(&b.run_at));
        // As Sidekiq 8.1.4's Busy page reads each job's `it-<jid>`.
        let jids: Vec<&str> = jobs.iter().map(|work| work.job.jid.as_str()).collect();
        let states = self.queue.iteration_states(&jids).await?;
        for (work, state) in jobs.iter_mut().zip(states) {
            work.iteration = state;
        }
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_through_activejob() {
        let raw = r#"{"class":"Sidekiq::ActiveJob::Wrapper","wrapped":"WelcomeMailJob","queue":"mailers",
            "args":[{"job_class":"WelcomeMailJob","arguments":["a@example.com"]}],"jid":"abc","enqueued_at":1700000000123}"#;
        let job = JobView::parse(raw);
        assert_eq!(job.class, "WelcomeMailJob");
        assert_eq!(job.args, serde_json::json!(["a@example.com"]));
        assert_eq!(job.enqueued_at, Some(1_700_000_000.123));
    }

    #[test]
    fn shows_text_that_is_not_a_job() {
        let job = JobView::parse("not json <b>");
        assert_eq!(job.class, "(not a job)");
        assert_eq!(job.args, Value::String("not json <b>".into()));
    }

    #[test]
    fn any_page_number_is_a_range() {
        assert_eq!(range(0), range(1));
        assert_eq!(range(1).0, 0);
        let (start, stop) = range(usize::MAX);
        assert!(start > 0 && stop > start, "{start}..{stop}");
    }
}
