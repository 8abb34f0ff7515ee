//! The orders export, end to end: `OrderExportJob.perform_later(...)` from
//! the shop app, performed by the `order_export` plugin as an iterable job
//! that reads the orders in batches, appends a gzipped CSV to a stored
//! file in pieces and mails it as an attachment. The mail is read with
//! Python's `email` package, the file with its `gzip` and `csv`, and the
//! rows compared with what ActiveRecord holds: every order once, in key
//! order, with its user's email and its line items' total. It must hold
//! when the export runs in slices, and after a SIGKILL or a SIGTERM.

use jobrunner_tests::{
    Postgres, Redis, Runner, RunnerOptions, S3Server, Shop, SmtpSink, WAIT, eventually, never_before, now,
    python_json,
};
use serde_json::Value;
use std::collections::HashMap;

/// What the export may read and write.
const POLICY: &str = r#"
[plugins.order_export]
records = { Order = ["user_id", "total", "created_at"], User = ["email"], LineItem = ["order_id", "quantity", "price"] }
blobs = { services = ["local", "amazon"], read = true, write = true }
max_message_bytes = 52428800
"#;

/// Reads a received mail with Python's `email` package and its one
/// attachment with `gzip` and `csv`; prints what the rows come to.
const READ_EXPORT: &str = r#"
import csv, email, gzip, io, json, sys
from email import policy
message = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
parts = [p for p in message.iter_attachments()]
data = gzip.decompress(parts[0].get_content())
rows = list(csv.reader(io.StringIO(data.decode())))
ids = [int(r[0]) for r in rows[1:]]
cents = lambda s: round(float(s) * 100)
print(json.dumps({
    "content_type": message.get_content_type(), "filename": parts[0].get_filename(),
    "attachment_type": parts[0].get_content_type(), "header": rows[0], "rows": len(ids),
    "ascending": all(a < b for a, b in zip(ids, ids[1:])), "first": ids[0] if ids else 0,
    "last": ids[-1] if ids else 0, "id_sum": sum(ids), "total": sum(cents(r[3]) for r in rows[1:]),
    "items": sum(cents(r[4]) for r in rows[1:]),
    "emails": {r[0]: r[2] for r in rows[1:4]},
}))
"#;

/// The export as ActiveRecord sees it, in the same terms.
const EXPECTED: &str = r#"
scope = Order.where(created_at: Time.utc(2026, 11, 1)...Time.utc(2026, 12, 1)).order(:id)
ids = scope.pluck(:id)
items = LineItem.where(order_id: ids).sum("quantity * price")
first = scope.limit(3).includes(:user).map { |o| [o.id.to_s, o.user.email] }.to_h
require "json"
puts JSON.generate(rows: ids.size, first: ids.first, last: ids.last, id_sum: ids.sum,
  total: (scope.sum(:total) * 100).round, items: (items * 100).round, emails: first)
"#;

/// The shop, its stored files and the runner's flags to serve its export.
struct Setup {
    storage: tempfile::TempDir,
    policy: tempfile::NamedTempFile,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(None)
    }

    /// With the S3 server's bucket as the service `amazon` too.
    fn with(s3: Option<&S3Server>) -> Setup {
        let storage = tempfile::tempdir().unwrap();
        let mut yml =
            format!("local:\n  service: Disk\n  root: {}\n", storage.path().join("files").display());
        if let Some(s3) = s3 {
            yml.push_str(&format!(
                "amazon:\n  service: S3\n  region: us-east-1\n  bucket: {}\n  endpoint: {}\n  force_path_style: true\n",
                s3.bucket, s3.endpoint
            ));
        }
        std::fs::write(storage.path().join("storage.yml"), yml).unwrap();
        let policy = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(policy.path(), POLICY).unwrap();
        Setup { storage, policy }
    }

    fn runner(&self, redis: &Redis, smtp: &SmtpSink, shop: &Shop, extra: &[&str]) -> Runner {
        self.runner_on(redis, smtp, shop, extra, None)
    }

    /// A runner whose default service is `amazon` on `s3`, when given.
    fn runner_on(
        &self,
        redis: &Redis,
        smtp: &SmtpSink,
        shop: &Shop,
        extra: &[&str],
        s3: Option<&S3Server>,
    ) -> Runner {
        let storage_config = self.storage.path().join("storage.yml");
        let mut args = vec![
            "--database",
            &shop.runner_database,
            "--storage-config",
            storage_config.to_str().unwrap(),
            "--storage-service",
            if s3.is_some() { "amazon" } else { "local" },
            "--policy",
            self.policy.path().to_str().unwrap(),
        ];
        args.extend(extra);
        let mut options = RunnerOptions::plugins(&["order_export"]).args(&args);
        for (name, value) in s3.map(S3Server::env).unwrap_or_default() {
            options = options.env(name, &value);
        }
        Runner::start(&redis.url, &smtp.url, options)
    }
}

/// Enqueues November's export as the app would, in batches of `size`,
/// and returns its jid.
fn enqueue_export(shop: &Shop, size: u32) -> String {
    let ruby = format!(
        r#"puts OrderExportJob.perform_later("ops@shop.example", "2026-11-01", "2026-12-01", {size}).provider_job_id"#
    );
    shop.ruby(&ruby)
}

/// The export's mail, once it arrives, read as [`READ_EXPORT`] reads it.
fn received_export(smtp: &SmtpSink) -> Value {
    let mail = eventually("the export's mail", 6 * WAIT, || {
        smtp.messages().into_iter().find(|m| m.subject.starts_with("Orders export"))
    });
    python_json(READ_EXPORT, mail.raw.as_bytes())
}

/// Every order of November once, in key order, as ActiveRecord has it.
fn assert_export_matches(shop: &Shop, smtp: &SmtpSink) {
    let expected: Value = serde_json::from_str(&shop.ruby(EXPECTED)).unwrap();
    let got = received_export(smtp);
    assert_eq!(got["content_type"], "multipart/mixed", "{got}");
    assert_eq!(
        (got["filename"].as_str(), got["attachment_type"].as_str()),
        (Some("orders-2026-11-01-2026-12-01.csv.gz"), Some("application/gzip"))
    );
    assert_eq!(got["header"], serde_json::json!(["id", "created_at", "email", "total", "items_total"]));
    assert_eq!(got["ascending"], true, "in key order, none twice");
    for field in ["rows", "first", "last", "id_sum", "total", "items", "emails"] {
        assert_eq!(got[field], expected[field], "{field}: {got} vs {expected}");
    }
    assert_eq!(smtp.messages().iter().filter(|m| m.subject.starts_with("Orders export")).count(), 1);
}

/// Reads of `model` the runner counted, from its `/metrics`.
fn reads_of(runner: &Runner, model: &str) -> u64 {
    let text = ureq::get(&format!("{}/metrics", runner.dashboard_url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string();
    let needle =
        format!("jobrunner_record_reads_total{{model=\"{model}\",plugin=\"order_export\",result=\"found\"}}");
    text.unwrap().lines().find_map(|l| l.strip_prefix(&needle)).map_or(0, |n| n.trim().parse().unwrap())
}

/// The saved cursor of job `jid`, once it has one.
fn cursor(redis: &Redis, jid: &str) -> Option<Value> {
    let state: HashMap<String, String> = redis.query(&["HGETALL", &format!("it-{jid}")]);
    serde_json::from_str::<Value>(state.get("c")?).ok().filter(|c| !c.is_null())
}

#[test]
fn two_hundred_thousand_orders_from_sqlite_export_in_slices_every_row_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    assert_eq!(shop.ruby("import_orders(200_000, users: 7, line_items: 1)"), "200000");
    let setup = Setup::new();
    // Slices of 0.3 s under a 3 s limit: the export takes several.
    let runner = setup.runner(&redis, &smtp, &shop, &["--slice", "0.3", "--timeout", "3"]);
    let jid = enqueue_export(&shop, 1000);
    assert_export_matches(&shop, &smtp);
    let slices = runner.logs().matches("its slice is over").count();
    assert!(slices >= 2, "the export ran in slices: {slices}");
    assert!(cursor(&redis, &jid).is_none(), "a complete export's cursor is dropped");
    let left: Vec<_> = walkdir(setup.storage.path()).into_iter().filter(|p| p.contains("pieces")).collect();
    assert!(left.is_empty(), "the pieces are gone: {left:?}");
}

#[test]
fn an_export_to_s3_is_assembled_whole_by_a_multipart_upload() {
    let (redis, smtp, s3) = (Redis::start(), SmtpSink::start(), S3Server::start("exports"));
    let shop = Shop::sqlite(&redis);
    // About 1.7 MB gzipped: one part of a multipart upload (create,
    // upload the part, complete), from 120 pieces.
    assert_eq!(shop.ruby("import_orders(120_000, users: 5, line_items: 1)"), "120000");
    let setup = Setup::with(Some(&s3));
    let _runner = setup.runner_on(&redis, &smtp, &shop, &[], Some(&s3));
    let jid = enqueue_export(&shop, 1000);
    assert_export_matches(&shop, &smtp);
    let stored = s3.stored(&format!("exports/orders-{jid}.csv.gz"));
    let size = std::fs::metadata(&stored).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1_000_000, "the export is in the bucket: {} is {size} bytes", stored.display());
    assert!(
        !s3.stored("pieces").join("exports").exists() || walkdir(&s3.stored("pieces")).is_empty(),
        "the pieces are gone"
    );
}

#[test]
fn a_postgres_export_killed_midway_resumes_from_its_cursor_every_row_once() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    assert_eq!(shop.ruby("import_orders(200_000, users: 7, line_items: 1)"), "200000");
    let setup = Setup::new();
    let mut runner = setup.runner(&redis, &smtp, &shop, &["--timeout", "120"]);
    // Batches of 200: long enough an export to be saved (every 5 s) midway.
    let jid = enqueue_export(&shop, 200);
    let saved = eventually("a saved cursor", 2 * WAIT, || cursor(&redis, &jid));
    runner.kill();
    let saved = cursor(&redis, &jid).unwrap_or(saved);
    let done = saved["rows"].as_u64().unwrap();
    assert!(done > 0 && done < 200_000, "killed midway: {saved}");

    runner.restart();
    assert_export_matches(&shop, &smtp);
    // The second run read only what the cursor hadn't covered: the batches
    // of 200 after it, and at most the one that ends the scan.
    let batches = reads_of(&runner, "Order");
    assert!(batches <= (200_000 - done) / 200 + 2, "{batches} batches read after resuming at {done} rows");
}

/// An export of 20,000 orders in batches of 10: a thousand batches,
/// seconds of work to stop midway. Returns its jid, once it has read some.
fn export_under_way(shop: &Shop, runner: &Runner) -> String {
    assert_eq!(shop.ruby("import_orders(20_000, users: 3, line_items: 1)"), "20000");
    let jid = enqueue_export(shop, 10);
    eventually("some orders read", WAIT, || (reads_of(runner, "Order") >= 3).then_some(()));
    jid
}

#[test]
fn sigterm_mid_export_puts_it_back_with_its_cursor_and_it_resumes_to_every_row_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let setup = Setup::new();
    let mut runner = setup.runner(&redis, &smtp, &shop, &["--timeout", "120", "-t", "2"]);
    let jid = export_under_way(&shop, &runner);
    assert!(runner.terminate().success());
    assert_eq!(
        (redis.llen("queue:default"), redis.sorted_set("retry").len()),
        (1, 0),
        "back in its queue, not failed"
    );
    let saved = cursor(&redis, &jid).expect("the cursor saved at the stop");
    let done = saved["rows"].as_u64().unwrap();
    assert!(done > 0 && done < 20_000, "{saved}");
    runner.restart();
    assert_export_matches(&shop, &smtp);
    let batches = reads_of(&runner, "Order");
    assert!(batches <= (20_000 - done) / 10 + 2, "resumed at {done} rows, then read {batches} batches");
}

#[test]
fn a_cancelled_export_stops_for_good_unmailed() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let setup = Setup::new();
    let runner = setup.runner(&redis, &smtp, &shop, &["--timeout", "120"]);
    let jid = export_under_way(&shop, &runner);
    jobrunner_tests::runner_cancel(&redis.url, &jid);
    eventually("the export stopped", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    let sets: Vec<usize> = ["retry", "dead", "schedule"].iter().map(|s| redis.sorted_set(s).len()).collect();
    assert_eq!((sets, redis.llen("queue:default")), (vec![0, 0, 0], 0), "not retried");
    never_before(now() + 3.0, "no mail from a cancelled export", || smtp.count() == 0);
    assert!(cursor(&redis, &jid).is_none(), "a cancelled export's state is dropped");
}

/// Every file under `dir`, as text.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(walkdir(&path)),
            false => found.push(path.display().to_string()),
        }
    }
    found
}
