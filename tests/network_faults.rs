//! Faults a real network makes, between the runner and Redis: a Redis
//! 50 ms away with the runner killed twice mid-run, and a partition while
//! jobs are being acknowledged. Thousands of orders, with a ledger of what
//! was mailed: nothing lost, no order mailed twice except in the one window
//! no runner can close (killed between the server accepting a mail and the
//! ledger noting it, logged as "killed while sending"). Each test prints
//! its figures, which the README quotes.

use jobrunner_tests::{
    FaultyLink, Mail, Partition, Redis, Runner, RunnerOptions, SmtpSink, eventually, job_json,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn orders(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            job_json("OrderCreateJob", json!([i, format!("buyer{i}@example.com")]), &format!("{i:024x}"))
        })
        .collect()
}

fn order_id(mail: &Mail) -> u64 {
    let line = mail.raw.lines().find_map(|l| l.strip_prefix("X-Order-Id:")).expect("an X-Order-Id header");
    line.trim().parse().expect("a numeric order id")
}

/// Waits until every order is mailed and nothing is queued, in progress
/// or retrying, then returns the Message-IDs mailed per order.
fn settle(redis: &Redis, smtp: &SmtpSink, count: usize) -> BTreeMap<u64, Vec<String>> {
    eventually("every order's mail", Duration::from_secs(300), || (smtp.count() >= count).then_some(()));
    eventually("nothing left to do", Duration::from_secs(60), || {
        let idle = redis.llen("queue:default") == 0 && redis.inprogress_jobs() == 0;
        (idle && redis.sorted_set("retry").is_empty()).then_some(())
    });
    let mut by_order: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for mail in smtp.messages() {
        by_order.entry(order_id(&mail)).or_default().push(mail.message_id);
    }
    by_order
}

/// The orders whose mail a rerun found "sending": killed mid-send.
fn killed_mid_send(logs: &str) -> BTreeSet<u64> {
    logs.lines()
        .filter(|l| l.contains("killed while sending this mail"))
        .filter_map(|l| {
            let jid: String = l.split("jid=").nth(1)?.trim_start_matches('"').chars().take(24).collect();
            u64::from_str_radix(&jid, 16).ok()
        })
        .collect()
}

#[test]
fn redis_50_ms_away_and_two_sigkills_lose_no_order_and_mail_none_twice() {
    const ORDERS: usize = 1000;
    let (redis, smtp) = (Redis::start_persistent(), SmtpSink::start());
    let link = FaultyLink::start(redis.port());
    link.latency(50);
    let options = RunnerOptions::plugins(&["order_created"]).args(&["-c", "10"]);
    let mut runner = Runner::start(&link.redis_url(), &smtp.url, options);
    redis.push_many("default", &orders(ORDERS));
    for at in [300, 650] {
        eventually("orders to be mailed", Duration::from_secs(120), || (smtp.count() >= at).then_some(()));
        runner.kill();
        runner.restart();
    }
    let by_order = settle(&redis, &smtp, ORDERS);
    assert_eq!(by_order.len(), ORDERS, "every order was mailed");
    let logs = runner.logs();
    let in_flight = killed_mid_send(&logs);
    let twice: Vec<_> = by_order.iter().filter(|(_, ids)| ids.len() > 1).collect();
    for (order, ids) in &twice {
        assert!(ids.iter().all(|id| id == &ids[0]), "order {order} got two different mails: {ids:?}");
        assert!(
            in_flight.contains(order),
            "order {order} mailed {} times outside a kill's window",
            ids.len()
        );
    }
    let recovered: u64 = logs
        .lines()
        .filter(|l| l.contains("runner is gone"))
        .filter_map(|l| l.split("jobs=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    println!(
        "network: Redis +50 ms, 2 SIGKILLs: {ORDERS} jobs, 0 lost, {recovered} run again after a kill, {} mailed twice (all in a kill's window)",
        twice.len()
    );
}

#[test]
fn a_partition_from_redis_while_jobs_are_acknowledged_loses_nothing_and_mails_nothing_twice() {
    const ORDERS: usize = 2000;
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created"]).args(&["-c", "10"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push_many("default", &orders(ORDERS));
    eventually("orders to be mailed", Duration::from_secs(120), || (smtp.count() >= 500).then_some(()));
    // Cut while jobs are mid-flight: outcomes, fetches and the heartbeat
    // hang (the test too must leave Redis alone), then go through.
    let cut = Partition::cut(redis.port());
    let cut_at = smtp.count();
    std::thread::sleep(Duration::from_secs(5));
    let during = smtp.count() - cut_at;
    cut.heal();
    let by_order = settle(&redis, &smtp, ORDERS);
    assert_eq!(by_order.len(), ORDERS, "every order was mailed");
    let twice: Vec<_> = by_order.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "mailed twice after a partition: {twice:?}");
    assert!(!runner.logs().contains("panicked"));
    println!(
        "network: Redis partitioned for 5 s mid-run: {ORDERS} jobs, 0 lost, 0 mailed twice ({during} mails went out during the cut, from jobs already fetched)"
    );
}
