//! This process's counters and histograms, exposed as Prometheus text at
//! `/metrics` and summarized per plugin on the dashboard.
//!
//! The worker, the mail capability and the registry each report what they
//! see through one narrow method; nothing else reaches in. Queue sizes and
//! latencies live in Redis, not here: the dashboard sets them from a fresh
//! Redis read just before each scrape, so they are never stale.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;

/// The plugin label of a job no plugin handled (unknown class, invalid payload).
pub const NO_PLUGIN: &str = "none";

/// The class label of a job whose class no plugin handles. Its real name
/// would let whoever can push jobs create unbounded series; the retry set
/// and the log name it.
pub const UNHANDLED_CLASS: &str = "unhandled";

/// Upper bounds of the job duration buckets, in seconds: a no-op job takes
/// tens of microseconds, a mail over SMTP milliseconds, the time limit 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// The metrics of one runner process.
pub struct Metrics {
    /// Owns every metric below, for encoding.
    registry: Registry,
    /// Jobs finished, however they ended, by class and plugin (Sidekiq's "processed").
    processed: IntCounterVec,
    /// Jobs that failed (into retry, dead or discarded), by class and plugin.
    failed: IntCounterVec,
    /// How long jobs ran, by class and plugin.
    duration: HistogramVec,
    /// Jobs discarded unrun because they expired before they started, by class.
    expired: IntCounterVec,
    /// Unique jobs dropped unrun as duplicates of a pending one, by class.
    duplicates: IntCounterVec,
    /// Jobs cancelled, by class and whether they were running then.
    cancelled: IntCounterVec,
    /// Jobs running in this process now.
    in_flight: IntGauge,
    /// Mails handed to the mail server, by plugin.
    mails_sent: IntCounterVec,
    /// Mails not sent, by plugin and kind (invalid, rejected, transient, policy).
    mails_failed: IntCounterVec,
    /// Plugin files loaded (or reloaded), by plugin.
    plugin_loads: IntCounterVec,
    /// Log lines dropped at the plugin's log rate, by plugin.
    log_lines_dropped: IntCounterVec,
    /// Plugin files refused, by file name.
    plugin_refusals: IntCounterVec,
    /// Reads through `records`, by plugin, model and result.
    record_reads: IntCounterVec,
    /// Updates and deletes through `records`, by plugin, model, op and result.
    record_writes: IntCounterVec,
    /// Outgoing HTTP requests, by plugin, granted destination and result.
    http_requests: IntCounterVec,
    /// How long outgoing requests took to their response's head.
    http_duration: HistogramVec,
    /// Jobs waiting in each queue (from Redis at scrape time).
    queue_size: IntGaugeVec,
    /// Age of the oldest job in each queue, in seconds (from Redis at scrape time).
    queue_latency: GaugeVec,
    /// Sizes of the retry, schedule and dead sets (from Redis at scrape time).
    set_size: IntGaugeVec,
    /// With several Redis shards, each queue's size per shard.
    shard_queue_size: IntGaugeVec,
    /// With several Redis shards, each set's size per shard.
    shard_set_size: IntGaugeVec,
}

/// One shard's queues (name, size, latency in seconds) and set sizes, as
/// read from Redis for an export.
pub type RedisView<'a> = (Vec<(String, u64, f64)>, Vec<(&'a str, u64)>);

/// What the dashboard shows of one plugin's work in this process.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PluginNumbers {
    pub processed: u64,
    pub failed: u64,
    pub mails_sent: u64,
    pub mails_failed: u64,
    /// Duration percentiles in seconds, estimated from the histogram buckets.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry.register(Box::new(metric.clone())).expect("unique metric");
            metric
        };
        let processed = counter(
            "jobrunner_jobs_processed_total",
            "Jobs finished, however they ended.",
            &["class", "plugin"],
        );
        let failed = counter("jobrunner_jobs_failed_total", "Jobs that failed.", &["class", "plugin"]);
        let expired = counter(
            "jobrunner_jobs_expired_total",
            "Jobs discarded unrun: they expired before they started.",
            &["class"],
        );
        let duplicates = counter(
            "jobrunner_jobs_duplicate_total",
            "Unique jobs dropped unrun: a job of the same class, queue and arguments was pending.",
            &["class"],
        );
        let cancelled = counter(
            "jobrunner_jobs_cancelled_total",
            "Jobs cancelled: stopped while running, or never started.",
            &["class", "while"],
        );
        let mails_sent =
            counter("jobrunner_mails_sent_total", "Mails accepted by the mail server.", &["plugin"]);
        let mails_failed = counter(
            "jobrunner_mails_failed_total",
            "Mails not sent, by kind of failure.",
            &["plugin", "kind"],
        );
        let plugin_loads =
            counter("jobrunner_plugin_loads_total", "Plugin files loaded or reloaded.", &["plugin"]);
        let plugin_refusals = counter("jobrunner_plugin_refusals_total", "Plugin files refused.", &["file"]);
        let log_lines_dropped = counter(
            "jobrunner_plugin_log_lines_dropped_total",
            "Log lines plugins wrote beyond their log_lines_per_second, not written.",
            &["plugin"],
        );
        let record_reads = counter(
            "jobrunner_record_reads_total",
            "Reads of the app's records, by result (found, not_found, denied, invalid, unavailable).",
            &["plugin", "model", "result"],
        );
        let record_writes = counter(
            "jobrunner_record_writes_total",
            "Changes to the app's records (op: update, insert, delete), by result (changed, inserted, not_found, denied, invalid, unavailable).",
            &["plugin", "model", "op", "result"],
        );
        let http_requests = counter(
            "jobrunner_http_requests_total",
            "Outgoing HTTP requests of plugins, by the destination their policy names and result (2xx, 3xx, 4xx, 5xx, denied, timeout, error).",
            &["plugin", "host", "result"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "jobrunner_http_request_duration_seconds",
                "How long plugins' outgoing HTTP requests took to their response's head.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["plugin", "host"],
        )
        .expect("valid histogram");
        let duration = HistogramVec::new(
            HistogramOpts::new("jobrunner_job_duration_seconds", "How long jobs ran.")
                .buckets(DURATION_BUCKETS.to_vec()),
            &["class", "plugin"],
        )
        .expect("valid histogram");
        let in_flight =
            IntGauge::new("jobrunner_jobs_in_flight", "Jobs running in this process.").expect("valid gauge");
        let queue_size =
            IntGaugeVec::new(Opts::new("jobrunner_queue_size", "Jobs waiting in the queue."), &["queue"])
                .expect("valid gauge");
        let queue_latency = GaugeVec::new(
            Opts::new("jobrunner_queue_latency_seconds", "Age of the oldest job waiting in the queue."),
            &["queue"],
        )
        .expect("valid gauge");
        let set_size = IntGaugeVec::new(
            Opts::new("jobrunner_set_size", "Jobs in the retry, schedule and dead sets."),
            &["set"],
        )
        .expect("valid gauge");
        let shard_queue_size = IntGaugeVec::new(
            Opts::new("jobrunner_shard_queue_size", "Jobs waiting in the queue on one Redis shard."),
            &["shard", "queue"],
        )
        .expect("valid gauge");
        let shard_set_size = IntGaugeVec::new(
            Opts::new(
                "jobrunner_shard_set_size",
                "Jobs in the retry, schedule and dead sets of one Redis shard.",
            ),
            &["shard", "set"],
        )
        .expect("valid gauge");
        for metric in [
            Box::new(duration.clone()) as Box<dyn Collector>,
            Box::new(http_duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_size.clone()),
            Box::new(queue_latency.clone()),
            Box::new(set_size.clone()),
            Box::new(shard_queue_size.clone()),
            Box::new(shard_set_size.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Metrics {
            registry,
            processed,
            failed,
            duration,
            expired,
            duplicates,
            cancelled,
            in_flight,
            mails_sent,
            mails_failed,
            plugin_loads,
            log_lines_dropped,
            plugin_refusals,
            record_reads,
            record_writes,
            http_requests,
            http_duration,
            queue_size,
            queue_latency,
            set_size,
            shard_queue_size,
            shard_set_size,
        }
    }

    /// An outgoing request of `plugin` to destination `host` (as its policy
    /// names it; empty when none matched) ended with `result`, after
    /// `seconds` when it was sent.
    pub fn http_request(&self, plugin: &str, host: &str, result: &str, seconds: Option<f64>) {
        self.http_requests.with_label_values(&[plugin, host, result]).inc();
        if let Some(seconds) = seconds {
            self.http_duration.with_label_values(&[plugin, host]).observe(seconds);
        }
    }

    /// A job ended after `seconds`; `failed` unless it succeeded.
    pub fn job_finished(&self, class: &str, plugin: &str, failed: bool, seconds: f64) {
        let labels = [class, plugin];
        self.processed.with_label_values(&labels).inc();
        if failed {
            self.failed.with_label_values(&labels).inc();
        }
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// A job of `class` expired before it started and was discarded.
    pub fn job_expired(&self, class: &str) {
        self.expired.with_label_values(&[class]).inc();
    }

    /// A unique job of `class` was dropped as a duplicate.
    pub fn job_duplicate(&self, class: &str) {
        self.duplicates.with_label_values(&[class]).inc();
    }

    /// A job of `class` was cancelled; `running` if it was stopped mid-run.
    pub fn job_cancelled(&self, class: &str, running: bool) {
        let when = if running { "running" } else { "waiting" };
        self.cancelled.with_label_values(&[class, when]).inc();
    }

    /// A mail from `plugin` was accepted by the mail server.
    pub fn mail_sent(&self, plugin: &str) {
        self.mails_sent.with_label_values(&[plugin]).inc();
    }

    /// A mail from `plugin` was not sent; `kind` says why.
    pub fn mail_failed(&self, plugin: &str, kind: &str) {
        self.mails_failed.with_label_values(&[plugin, kind]).inc();
    }

    /// The plugin `name` was loaded.
    pub fn plugin_loaded(&self, name: &str) {
        self.plugin_loads.with_label_values(&[name]).inc();
    }

    /// `plugin` wrote `lines` log lines beyond its log rate.
    pub fn log_lines_dropped(&self, plugin: &str, lines: u64) {
        self.log_lines_dropped.with_label_values(&[plugin]).inc_by(lines);
    }

    /// The plugin file `file` was refused.
    pub fn plugin_refused(&self, file: &str) {
        self.plugin_refusals.with_label_values(&[file]).inc();
    }

    /// `plugin` read records of `model` (`-` when the read was refused
    /// before the model was found); `result` says how it went.
    pub fn record_read(&self, plugin: &str, model: &str, result: &str) {
        self.record_reads.with_label_values(&[plugin, model, result]).inc();
    }

    /// `plugin` changed (`op`) a record of `model` (`-` when the change
    /// was refused before the model was found); `result` says how it went.
    pub fn record_write(&self, plugin: &str, model: &str, op: &str, result: &str) {
        self.record_writes.with_label_values(&[plugin, model, op, result]).inc();
    }

    /// Sets what only Redis knows, just before an export: each queue's size
    /// and latency, the sorted sets' sizes (summed over the shards, the
    /// oldest job's age for latency, and per shard when there are several),
    /// and this process's running jobs.
    pub fn set_redis_view(&self, shards: &[RedisView<'_>], in_flight: usize) {
        for gauge in [&self.queue_size, &self.set_size, &self.shard_queue_size, &self.shard_set_size] {
            gauge.reset();
        }
        self.queue_latency.reset();
        for (index, (queues, sets)) in shards.iter().enumerate() {
            let shard = index.to_string();
            for (name, size, latency) in queues {
                self.queue_size.with_label_values(&[name]).add(*size as i64);
                let oldest = self.queue_latency.with_label_values(&[name]);
                oldest.set(oldest.get().max(*latency));
                if shards.len() > 1 {
                    self.shard_queue_size.with_label_values(&[shard.as_str(), name]).set(*size as i64);
                }
            }
            for (set, size) in sets {
                self.set_size.with_label_values(&[set]).add(*size as i64);
                if shards.len() > 1 {
                    self.shard_set_size.with_label_values(&[shard.as_str(), set]).set(*size as i64);
                }
            }
        }
        self.in_flight.set(in_flight as i64);
    }

    /// Everything, in Prometheus's text exposition format (0.0.4).
    pub fn encode(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_else(|err| {
            tracing::error!(error = %err, "encoding the metrics failed");
            String::new()
        })
    }

    /// Per plugin: jobs, failures, mails and duration percentiles.
    pub fn by_plugin(&self) -> BTreeMap<String, PluginNumbers> {
        let mut numbers: BTreeMap<String, PluginNumbers> = BTreeMap::new();
        let mut buckets: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
        for family in self.registry.gather() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string())
                };
                let Some(plugin) = label("plugin") else { continue };
                let entry = numbers.entry(plugin.clone()).or_default();
                let count = metric.get_counter().get_value() as u64;
                match family.name() {
                    "jobrunner_jobs_processed_total" => entry.processed += count,
                    "jobrunner_jobs_failed_total" => entry.failed += count,
                    "jobrunner_mails_sent_total" => entry.mails_sent += count,
                    "jobrunner_mails_failed_total" => entry.mails_failed += count,
                    "jobrunner_job_duration_seconds" => {
                        let sum = buckets.entry(plugin).or_default();
                        for (i, bucket) in metric.get_histogram().get_bucket().iter().enumerate() {
                            match sum.get_mut(i) {
                                Some(slot) => slot.1 += bucket.cumulative_count(),
                                None => sum.push((bucket.upper_bound(), bucket.cumulative_count())),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for (plugin, cumulative) in buckets {
            let entry = numbers.entry(plugin).or_default();
            entry.p50 = quantile(&cumulative, 0.50);
            entry.p95 = quantile(&cumulative, 0.95);
            entry.p99 = quantile(&cumulative, 0.99);
        }
        numbers
    }
}

/// The `q` quantile of a histogram given as cumulative bucket counts,
/// interpolated linearly inside the bucket it falls in, as Prometheus's
/// `histogram_quantile` does. Past the last bucket, its bound.
fn quantile(cumulative: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(upper, count) in cumulative {
        if count as f64 >= rank {
            let inside = (count - below).max(1) as f64;
            return Some(lower + (upper - lower) * ((rank - below as f64) / inside));
        }
        (lower, below) = (upper, count);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_jobs_and_mails_per_plugin() {
        let metrics = Metrics::new();
        for _ in 0..98 {
            metrics.job_finished("OrderCreateJob", "order_created", false, 0.002);
        }
        metrics.job_finished("OrderCreateJob", "order_created", true, 0.2);
        metrics.job_finished("OtherJob", "order_created", true, 0.2);
        metrics.mail_sent("order_created");
        metrics.mail_failed("order_created", "rejected");
        let numbers = &metrics.by_plugin()["order_created"];
        assert_eq!(
            (numbers.processed, numbers.failed, numbers.mails_sent, numbers.mails_failed),
            (100, 2, 1, 1)
        );
        let p50 = numbers.p50.unwrap();
        assert!((0.001..=0.0025).contains(&p50), "p50 {p50}");
        let p99 = numbers.p99.unwrap();
        assert!((0.1..=0.25).contains(&p99), "p99 {p99}");
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"jobrunner_jobs_processed_total{class="OrderCreateJob",plugin="order_created"} 99"#
            )
        );
        assert!(text.contains("# TYPE jobrunner_job_duration_seconds histogram"));
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let buckets = [(1.0, 0), (2.0, 10), (4.0, 10)];
        assert_eq!(quantile(&buckets, 0.5), Some(1.5));
        assert_eq!(quantile(&[(1.0, 0)], 0.5), None);
    }
}
