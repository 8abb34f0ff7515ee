//! The orders export side by side: `ORDERS` orders (each with a line item)
//! in PostgreSQL, exported as a gzipped CSV and mailed as an attachment, by
//! the runner's `order_export` plugin and by Sidekiq performing the same
//! job in Ruby (`scripts/shop/export_in_ruby.rb`: ActiveRecord `find_each`,
//! CSV, Zlib, an ActionMailer attachment). Prints seconds, rows/s and peak
//! RSS of each, and how many rows the runner read again after a SIGKILL
//! half way through.

use jobrunner_tests::{Postgres, Redis, Runner, RunnerOptions, Shop, SmtpSink, eventually, repo_root};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[plugins.order_export]
records = { Order = ["user_id", "total", "created_at"], User = ["email"], LineItem = ["order_id", "quantity", "price"] }
blobs = { read = true, write = true }
max_message_bytes = 209715200
"#;

const ENQUEUE: &str =
    r#"puts OrderExportJob.perform_later("ops@shop.example", "2026-11-01", "2026-12-01").provider_job_id"#;

/// How long an export may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(1800);

pub fn run(orders: usize) {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    let seconds_in_november = 30 * 86_400;
    pg.sql(
        "shop",
        &format!(
            "INSERT INTO users (id, email, name) SELECT i, 'buyer' || i || '@example.com', 'Buyer ' || i
               FROM generate_series(1, 100) i;
             INSERT INTO orders (id, user_id, total, created_at)
               SELECT i, i % 100 + 1, (i % 997) / 10.0 + 1,
                      '2026-11-01'::timestamp + (i::bigint * {seconds_in_november} / {orders}) * interval '1 second'
               FROM generate_series(1, {orders}) i;
             INSERT INTO line_items (order_id, name, quantity, price)
               SELECT i, 'Tea', i % 3 + 1, (i % 89) / 4.0 + 1 FROM generate_series(1, {orders}) i;
             ANALYZE;"
        ),
    );
    let storage = tempfile::tempdir().unwrap();
    let yml = format!("local:\n  service: Disk\n  root: {}\n", storage.path().join("files").display());
    std::fs::write(storage.path().join("storage.yml"), yml).unwrap();
    std::fs::write(storage.path().join("policy.toml"), POLICY).unwrap();
    let (config, policy) = (storage.path().join("storage.yml"), storage.path().join("policy.toml"));
    let args = [
        "--database",
        &shop.runner_database,
        "--storage-config",
        config.to_str().unwrap(),
        "--storage-service",
        "local",
        "--policy",
        policy.to_str().unwrap(),
        "--timeout",
        "3600",
    ];
    println!(
        "{:<44} {:>10} {:>12} {:>10}",
        "orders export to a gzipped CSV, mailed", "seconds", "rows/s", "peak RSS"
    );

    let mut runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["order_export"]).args(&args));
    let started = Instant::now();
    shop.ruby(ENQUEUE);
    wait_for_mails(&smtp, 1);
    let seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(runner.pid().unwrap());
    print_row(&format!("runner, {orders} orders"), seconds, orders, rss);

    // Killed half way, and restarted: what the restart read again.
    let earlier = reads_of(&runner);
    let jid = shop.ruby(ENQUEUE);
    let saved = eventually("half the export checkpointed", PATIENCE, || match smtp.messages().len() {
        2.. => Some(None),
        _ => cursor_rows(&redis, &jid).filter(|rows| *rows as usize >= orders / 2).map(Some),
    });
    let Some(saved) = saved else {
        println!(
            "  (the export ended before its first checkpoint was saved: no SIGKILL run; try more orders)"
        );
        return;
    };
    let read_before = (reads_of(&runner) - earlier) * 1000;
    runner.kill();
    let saved = cursor_rows(&redis, &jid).unwrap_or(saved);
    runner.restart();
    wait_for_mails(&smtp, 2);
    println!(
        "  SIGKILL half way, {saved} of {orders} rows saved: {} rows read again after the restart (the cursor is saved every 5 s)",
        read_before.saturating_sub(saved)
    );
    drop(runner);

    let started = Instant::now();
    shop.ruby(ENQUEUE);
    let sidekiq = Command::new("sidekiq")
        .args([
            "-r",
            repo_root().join("scripts/shop/export_in_ruby.rb").to_str().unwrap(),
            "-c",
            "1",
            "-q",
            "default",
        ])
        .env("SHOP_DATABASE", pg.url("postgres", "unused"))
        .env("REDIS_URL", &redis.url)
        .env("SMTP_PORT", smtp.port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sidekiq (apt-get install ruby-sidekiq)");
    let mut sidekiq = Guard(sidekiq);
    wait_for_mails(&smtp, 3);
    let seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(sidekiq.0.id());
    print_row("Sidekiq 6.4 (find_each, CSV, ActionMailer)", seconds, orders, rss);
    let _ = sidekiq.0.kill();
}

fn print_row(label: &str, seconds: f64, rows: usize, rss_mib: f64) {
    println!("{label:<44} {seconds:>10.2} {:>12.0} {:>7.0} MiB", rows as f64 / seconds, rss_mib);
}

fn wait_for_mails(smtp: &SmtpSink, count: usize) {
    eventually(&format!("{count} export mails"), PATIENCE, || (smtp.messages().len() >= count).then_some(()));
}

/// The rows the export of `jid` has checkpointed.
fn cursor_rows(redis: &Redis, jid: &str) -> Option<u64> {
    let state: HashMap<String, String> = redis.query(&["HGETALL", &format!("it-{jid}")]);
    let cursor: Value = serde_json::from_str(state.get("c")?).ok()?;
    cursor["rows"].as_u64()
}

/// Batches of orders the runner has read, from its `/metrics`.
fn reads_of(runner: &Runner) -> u64 {
    let url = format!("{}/metrics", runner.dashboard_url());
    let text = ureq::get(&url).call().unwrap().into_body().read_to_string().unwrap();
    let needle = "jobrunner_record_reads_total{model=\"Order\",plugin=\"order_export\",result=\"found\"}";
    text.lines().find_map(|l| l.strip_prefix(needle)).map_or(0, |n| n.trim().parse().unwrap())
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Kills the child when dropped, whatever happens.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
