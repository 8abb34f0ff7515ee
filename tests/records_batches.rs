//! Reading many rows: the `tally` plugin scans the shop's orders a batch
//! at a time (in primary key order, after the last key, narrowed by a
//! column and a time range) and looks several up by their keys, on SQLite
//! and PostgreSQL. The tally it mails must be what ActiveRecord counts.

use jobrunner_tests::{Postgres, Redis, Runner, RunnerOptions, Shop, SmtpSink};

/// The orders the shop imports: enough for many batches.
const ORDERS: usize = 20_000;

/// Reads only what a tally needs.
const POLICY: &str = "[plugins.tally]\nrecords = { Order = [\"user_id\", \"total\", \"created_at\"] }\n";

/// Ruby that enqueues a tally of `scope` (ActiveRecord, over the variables
/// `user_id`, `from` and `to`) in batches of `size`, and prints the mail
/// body the tally must come to.
fn tally_of(user: &str, from: &str, to: &str, size: u32) -> String {
    format!(
        r#"user_id = {user}
           from, to = "{from}", "{to}"
           scope = Order.where(created_at: Time.utc(*from.split("-").map(&:to_i))...Time.utc(*to.split("-").map(&:to_i)))
           scope = scope.where(user_id: user_id) if user_id
           ids = scope.order(:id).pluck(:id)
           OrderTallyJob.perform_later("ops@shop.example", user_id, from, to, {size})
           puts "orders: #{{ids.size}}", "total: #{{'%.2f' % scope.sum(:total)}}",
                "batches: #{{(ids.size + {size} - 1) / {size}}}", "ids: #{{ids.first || 0}}..#{{ids.last || 0}} (sum #{{ids.sum}})""#
    )
}

/// Three tallies, each mailed with what ActiveRecord counts: one user's
/// orders in two weeks, every order of the month in full batches, and a
/// range with no orders.
fn tallies_match_active_record(redis: &Redis, smtp: &SmtpSink, shop: &Shop) {
    assert_eq!(shop.ruby(&format!("import_orders({ORDERS})")), ORDERS.to_string());
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), POLICY).unwrap();
    let options = RunnerOptions::plugins(&["tally"]).args(&[
        "--database",
        &shop.runner_database,
        "--policy",
        policy.path().to_str().unwrap(),
    ]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let second_user = "User.order(:id).second.id";
    let cases = [
        (tally_of(second_user, "2026-11-08", "2026-11-22", 500), "two weeks of one user's orders"),
        (tally_of("nil", "2026-11-01", "2026-12-01", 1000), "the whole month"),
        (tally_of("nil", "2027-01-01", "2027-02-01", 100), "a month with no orders"),
    ];
    let mut expected = Vec::new();
    for (ruby, what) in &cases {
        expected.push((shop.ruby(ruby), *what));
    }
    let mails = smtp.wait_for(cases.len());
    for (body, what) in expected {
        let count = body.lines().next().unwrap().trim_start_matches("orders: ");
        let mail =
            mails.iter().find(|m| m.subject == format!("Tally: {count} orders")).unwrap_or_else(|| {
                panic!("no tally of {what} ({count} orders) in {mails:#?}\n{}", runner.logs())
            });
        assert_eq!(mail.body.trim_end().replace("\r\n", "\n"), body, "the tally of {what}");
        assert_eq!(mail.rcpt, ["ops@shop.example"]);
    }
    assert!(expected_sizes_are_real(&mails), "{mails:#?}");
}

/// The tallies covered many batches, full and partial: not a vacuous pass.
fn expected_sizes_are_real(mails: &[jobrunner_tests::Mail]) -> bool {
    let batches = |m: &jobrunner_tests::Mail| -> u64 {
        m.body
            .lines()
            .find_map(|l| l.strip_prefix("batches: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    mails.iter().any(|m| batches(m) == (ORDERS / 1000) as u64) && mails.iter().any(|m| batches(m) > 3)
}

#[test]
fn a_scan_in_batches_tallies_what_active_record_counts_on_sqlite() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    tallies_match_active_record(&redis, &smtp, &shop);
}

#[test]
fn a_scan_in_batches_tallies_what_active_record_counts_on_postgres() {
    let (redis, smtp, pg) = (Redis::start(), SmtpSink::start(), Postgres::start());
    let shop = Shop::postgres(&redis, &pg);
    tallies_match_active_record(&redis, &smtp, &shop);
}
