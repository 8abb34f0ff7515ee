//! The benchmark: `cargo run --release -p jobrunner-tests --bin bench -- [options]`.
//!
//! Starts its own redis-server and smtp-sink on free ports, runs the
//! runner against them, and prints a table: drain throughput for the no-op
//! plugin and for `order_created` over SMTP (with its arguments in the job,
//! and by GlobalID, reading three rows per job from PostgreSQL as a Rails
//! app's `OrderCreateJob.perform_later(order)` asks), enqueue-to-start latency at a
//! fixed rate, the per-job cost of a fresh sandboxed instance next to a
//! native handler, peak RSS at two concurrencies, for each drain the
//! Redis server's own CPU per job with the jobs/s one Redis core would
//! carry at that cost, and a mail plugin per language (`bench_languages.rs`).
//! Needs the runner and
//! plugins built (`scripts/test` or `scripts/demo` build them).

#[path = "bench_languages.rs"]
mod languages;

#[path = "bench_export.rs"]
mod export;

use jobrunner_tests::{
    Postgres, Redis, Runner, RunnerOptions, Shop, SmtpSink, eventually, now, plugin_wasm, runner_bin,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// What to run, from the command line.
struct Options {
    /// Jobs per drain.
    jobs: usize,
    /// Concurrency of the drains and the latency run.
    concurrency: u16,
    /// The plugin drained besides order_created: `noop` by default, or one
    /// of the mail plugins of `languages::PLUGINS`.
    plugin: String,
    /// Jobs per second offered in the latency run.
    rate: u32,
    /// Seconds the latency run offers jobs for.
    seconds: u32,
    /// Running jobs cancelled in the cancel run.
    cancels: usize,
    /// Only the rows per language.
    languages_only: bool,
    /// Only the orders export, of this many orders.
    export: Option<usize>,
}

fn options() -> Options {
    let mut options = Options {
        jobs: 50_000,
        concurrency: 10,
        plugin: "noop".into(),
        rate: 1000,
        seconds: 5,
        cancels: 100,
        languages_only: false,
        export: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => options.jobs = value().parse().expect("--jobs N"),
            "--concurrency" | "-c" => options.concurrency = value().parse().expect("--concurrency N"),
            "--plugin" => options.plugin = value(),
            "--rate" => options.rate = value().parse().expect("--rate JOBS_PER_SECOND"),
            "--seconds" => options.seconds = value().parse().expect("--seconds N"),
            "--cancels" => options.cancels = value().parse().expect("--cancels N"),
            "--languages" => options.languages_only = true,
            "--export" => options.export = Some(value().parse().expect("--export ORDERS")),
            "--help" | "-h" => {
                println!(
                    "bench [--jobs N] [--concurrency N] [--plugin noop|order_created|password_reset|signup_digest] \
                     [--rate N] [--seconds N] [--cancels N] [--languages] [--export ORDERS]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown option {other}; see --help"),
        }
    }
    options
}

/// The class a benchmark plugin handles and the arguments of job `i`.
fn job_for(plugin: &str, i: usize) -> (&'static str, serde_json::Value) {
    match plugin {
        "noop" => ("NoopJob", json!([])),
        other => {
            languages::mail_job(other, i).unwrap_or_else(|| panic!("no benchmark job for plugin {other}"))
        }
    }
}

fn payload(class: &str, args: serde_json::Value, i: usize) -> String {
    json!({"class": class, "args": args, "jid": format!("{i:024x}"), "queue": "default",
           "retry": true, "created_at": now(), "enqueued_at": now()})
    .to_string()
}

/// One drain: time until `jobs` pre-enqueued jobs are processed.
struct Drain {
    seconds: f64,
    cpu_us_per_job: f64,
    peak_rss_mib: f64,
    /// The Redis server's own CPU time per job, in µs.
    redis_us_per_job: f64,
}

fn drain(plugin: &str, jobs: usize, concurrency: u16) -> Drain {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    let payloads: Vec<String> = (0..jobs)
        .map(|i| {
            let (class, args) = job_for(plugin, i);
            payload(class, args, i)
        })
        .collect();
    let plugins = [languages::PLUGINS.iter().map(|(_, p)| *p).find(|p| *p == plugin).unwrap_or("noop")];
    drain_payloads(&redis, &smtp, &plugins, &payloads, &["-c", &concurrency.to_string()])
}

/// `OrderCreateJob.perform_later(order)` for `jobs` orders in PostgreSQL,
/// each with its user and two line items: three queries per job.
/// Also returns PostgreSQL's CPU time per job, in µs.
fn drain_by_global_id(jobs: usize, concurrency: u16) -> (Drain, f64) {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start_discarding(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    pg.sql(
        "shop",
        &format!(
            "INSERT INTO users (id, email, name) SELECT i, 'buyer' || i || '@example.com', 'Buyer ' || i
               FROM generate_series(1, {jobs}) i;
             INSERT INTO orders (id, user_id, total, created_at) SELECT i, i, 7.50, now() FROM generate_series(1, {jobs}) i;
             INSERT INTO line_items (order_id, name, quantity, price)
               SELECT i, item, 1, 3.75 FROM generate_series(1, {jobs}) i, unnest(ARRAY['Tea', 'Cake']) item;
             ANALYZE;"
        ),
    );
    let payloads: Vec<String> = (1..=jobs)
        .map(|i| {
            json!({"class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper", "wrapped": "OrderCreateJob",
                   "queue": "default", "retry": true, "jid": format!("{i:024x}"),
                   "created_at": now(), "enqueued_at": now(),
                   "args": [{"job_class": "OrderCreateJob", "job_id": format!("{i}"), "queue_name": "default",
                             "arguments": [{"_aj_globalid": format!("gid://shop/Order/{i}")}],
                             "executions": 0, "locale": "en"}]})
            .to_string()
        })
        .collect();
    let args = ["-c", &concurrency.to_string(), "--database", &shop.runner_database];
    let server = pg.pid().expect("PostgreSQL runs");
    let before = process_tree_cpu_seconds(server);
    let drain = drain_payloads(&redis, &smtp, &["order_created"], &payloads, &args);
    // The runner has stopped: let the postmaster reap the backends, whose
    // time it then counts as its children's.
    std::thread::sleep(Duration::from_millis(500));
    let db_cpu = process_tree_cpu_seconds(server) - before;
    (drain, db_cpu * 1e6 / jobs as f64)
}

/// CPU seconds of a process, its live children and its reaped ones
/// (PostgreSQL's backends).
fn process_tree_cpu_seconds(pid: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .map(cpu_seconds)
        .sum();
    cpu_seconds(pid) + children + stat_ticks(pid, 13..15) / 100.0
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Drains `payloads` with a runner of `plugins` started with `args`.
fn drain_payloads(
    redis: &Redis,
    smtp: &SmtpSink,
    plugins: &[&'static str],
    payloads: &[String],
    args: &[&str],
) -> Drain {
    let jobs = payloads.len();
    let options = RunnerOptions { log: "info", ..RunnerOptions::plugins(plugins) }.args(args);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    // Start-up doesn't wait for plugins to compile; the drain does.
    for plugin in plugins {
        runner.wait_for_log(&["plugin loaded", &format!("{plugin}.wasm")], 1);
    }
    let pid = runner.pid().expect("the runner runs");
    // Pushed to a queue nobody serves, then renamed into place in one
    // step: the drain and Redis's CPU are timed from there to the last job
    // done, so neither start-up nor the pushes count.
    for chunk in payloads.chunks(10_000) {
        redis.push_many("staging", chunk);
    }
    // Watched over one connection, every 5 ms: a connection per look
    // would cost Redis more than the jobs.
    let mut watch = redis.conn();
    let (cpu_before, redis_before) = (cpu_seconds(pid), redis_cpu_seconds(redis));
    let started = Instant::now();
    let _: () = redis.query(&["RENAME", "queue:staging", "queue:default"]);
    let deadline = started + Duration::from_secs(600);
    while redis::cmd("GET")
        .arg("stat:processed")
        .query::<Option<usize>>(&mut watch)
        .ok()
        .flatten()
        .unwrap_or(0)
        < jobs
    {
        assert!(Instant::now() < deadline, "the benchmark timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = Instant::now();
    let cpu = cpu_seconds(pid) - cpu_before;
    Drain {
        seconds: (done - started).as_secs_f64(),
        cpu_us_per_job: cpu * 1e6 / jobs as f64,
        peak_rss_mib: peak_rss_kib(pid) / 1024.0,
        redis_us_per_job: (redis_cpu_seconds(redis) - redis_before) * 1e6 / jobs as f64,
    }
}

/// CPU seconds (user and system) the Redis server has used, from `INFO cpu`.
fn redis_cpu_seconds(redis: &Redis) -> f64 {
    let info: String = redis.query(&["INFO", "cpu"]);
    info.lines()
        .filter(|line| line.starts_with("used_cpu_user:") || line.starts_with("used_cpu_sys:"))
        .filter_map(|line| line.split_once(':')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// The time from starting `runner cancel` to the job's stop (its entry
/// gone from the runner's in-progress list), one spinning job at a time:
/// p50, p99 and max, in ms. The command's own start and connection count.
fn cancel_latency(count: usize) -> (f64, f64, f64) {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let mut took: Vec<f64> = (0..count)
        .map(|i| {
            let jid = format!("{i:024x}");
            redis.push("default", &jobrunner_tests::job_json("SpinJob", json!([]), &jid));
            poll(Duration::from_secs(30), || redis.inprogress_jobs() == 1);
            // Spinning for a moment, well inside the guest.
            std::thread::sleep(Duration::from_millis(10));
            let started = Instant::now();
            let cancel = std::process::Command::new(runner_bin())
                .args(["cancel", &jid, "--redis", &redis.url])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("running runner cancel");
            assert!(cancel.success(), "runner cancel failed");
            let stopped = poll(Duration::from_secs(30), || redis.inprogress_jobs() == 0);
            (stopped - started).as_secs_f64() * 1000.0
        })
        .collect();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (at(0.5), at(0.99), took[took.len() - 1])
}

/// When `done` first holds, checking every millisecond.
fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "the benchmark timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
    Instant::now()
}

fn processed(redis: &Redis) -> usize {
    let value: Option<String> = redis.query(&["GET", "stat:processed"]);
    value.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    stat_ticks(pid, 11..13) / 100.0
}

/// The sum of some clock-tick fields of `/proc/PID/stat`, counted after the
/// process name: 11..13 its own user and system time, 13..15 its reaped
/// children's.
fn stat_ticks(pid: u32, fields: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let all: Vec<&str> = after_name.split_whitespace().collect();
    all.get(fields).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
}

/// The most resident memory a process has had, in KiB.
fn peak_rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// Enqueue-to-start latency of no-op jobs offered at `rate` per second.
fn latency(rate: u32, seconds: u32, concurrency: u16) -> (f64, f64, f64, usize) {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions { log: "info,jobrunner::worker=debug", ..RunnerOptions::plugins(&["noop"]) }
        .args(&["-c", &concurrency.to_string()]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let mut conn = redis.conn();
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _: () = redis::cmd("LPUSH")
            .arg("queue:default")
            .arg(payload("NoopJob", json!([]), i))
            .query(&mut conn)
            .expect("pushing a job");
    }
    eventually("every job processed", Duration::from_secs(60), || (processed(&redis) >= total).then_some(()));
    let mut waits: Vec<f64> = runner
        .logs()
        .lines()
        .filter_map(|l| l.split("wait_us=").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .collect();
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize] / 1000.0;
    (at(0.5), at(0.99), at(1.0), waits.len())
}

/// `runner measure-sandbox` on the no-op plugin.
fn sandbox() -> String {
    let output = std::process::Command::new(runner_bin())
        .args(["measure-sandbox", plugin_wasm("noop").to_str().unwrap(), "--iterations", "20000"])
        .output()
        .expect("running runner measure-sandbox");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn main() {
    let o = options();
    println!(
        "jobrunner benchmark: {} jobs per drain, concurrency {}, {} cores",
        o.jobs,
        o.concurrency,
        cores()
    );
    println!();
    if o.languages_only {
        return languages::run(o.jobs / 10, o.concurrency);
    }
    if let Some(orders) = o.export {
        return export::run(orders);
    }
    println!(
        "{:<44} {:>10} {:>12} {:>14} {:>10} {:>16} {:>18}",
        "drain", "seconds", "jobs/s", "CPU µs/job", "peak RSS", "Redis µs/job", "one Redis core"
    );
    let runs = [
        (o.plugin.as_str(), o.jobs, o.concurrency),
        ("order_created", o.jobs / 5, o.concurrency),
        (o.plugin.as_str(), o.jobs, 100),
    ];
    for (plugin, jobs, concurrency) in runs {
        let d = drain(plugin, jobs, concurrency);
        print_drain(&format!("{jobs} {plugin} jobs, concurrency {concurrency}"), jobs, &d);
    }
    let jobs = o.jobs / 5;
    let (d, db_cpu_us) = drain_by_global_id(jobs, o.concurrency);
    print_drain(&format!("{jobs} order_created by GlobalID, PostgreSQL"), jobs, &d);
    println!("  (3 queries per job; PostgreSQL's own CPU: {db_cpu_us:.0} µs/job)");
    println!();
    let (p50, p99, max, n) = latency(o.rate, o.seconds, o.concurrency);
    println!(
        "enqueue to start, {n} no-op jobs at {}/s: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        o.rate
    );
    let (p50, p99, max) = cancel_latency(o.cancels);
    println!(
        "runner cancel to the job's stop, {} spinning jobs: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        o.cancels
    );
    println!();
    println!("fresh instance + call, per job (µs):");
    for line in sandbox().lines() {
        println!("  {line}");
    }
    println!();
    languages::run(o.jobs / 10, o.concurrency);
}

fn print_drain(what: &str, jobs: usize, d: &Drain) {
    println!(
        "{:<44} {:>10.2} {:>12.0} {:>14.0} {:>7.1} MiB {:>16.1} {:>13.0} jobs/s",
        what,
        d.seconds,
        jobs as f64 / d.seconds,
        d.cpu_us_per_job,
        d.peak_rss_mib,
        d.redis_us_per_job,
        1e6 / d.redis_us_per_job.max(1e-3)
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
