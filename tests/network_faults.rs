//! Faults a real network makes: a Redis 50 ms away over a link that loses
//! 5% of its packets, with the runner killed twice mid-run; a partition
//! from Redis while jobs are being acknowledged; a mail server that stalls
//! mid-transaction for longer than the jobs' time limit. Thousands of orders, with a ledger of what
//! was mailed: nothing lost, no order mailed twice except in the one window
//! no runner can close (killed between the server accepting a mail and the
//! ledger noting it, logged as "killed while sending"). Each test prints
//! its figures, which the README quotes.

use jobrunner_tests::{
    FaultyLink, Mail, PacketDrop, Redis, Runner, RunnerOptions, Sentinel, SmtpSink, alone, eventually,
    job_json,
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

/// Waits until every order is mailed and nothing is left to do (queued,
/// in progress, retrying or scheduled), then returns the Message-IDs mailed
/// per order. Orders are counted, not mails: a repeated mail must not stand
/// in for one still waiting in the retry set.
fn settle(redis: &Redis, smtp: &SmtpSink, count: usize) -> BTreeMap<u64, Vec<String>> {
    let mailed = || {
        let mut by_order: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for mail in smtp.messages() {
            by_order.entry(order_id(&mail)).or_default().push(mail.message_id);
        }
        by_order
    };
    eventually("as many mails as orders", Duration::from_secs(300), || (smtp.count() >= count).then_some(()));
    eventually("every order's mail", Duration::from_secs(120), || (mailed().len() >= count).then_some(()));
    eventually("nothing left to do", Duration::from_secs(90), || {
        (redis.jobs_left("default") == 0).then_some(())
    });
    mailed()
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
fn redis_50_ms_away_with_5_percent_loss_and_two_sigkills_lose_no_order_and_mail_none_twice() {
    let _alone = alone();
    const ORDERS: usize = 1000;
    let (redis, smtp) = (Redis::start_persistent(), SmtpSink::start());
    let link = FaultyLink::start(redis.port());
    link.latency(50);
    let _loss = PacketDrop::share(link.port, 5);
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
        "network: Redis +50 ms and 5% loss, 2 SIGKILLs: {ORDERS} jobs, 0 lost, {recovered} run again after a kill, {} mailed twice (all in a kill's window)",
        twice.len()
    );
}

#[test]
fn a_partition_from_redis_while_jobs_are_acknowledged_loses_nothing_and_mails_nothing_twice() {
    let _alone = alone();
    const ORDERS: usize = 2000;
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created"]).args(&["-c", "10"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push_many("default", &orders(ORDERS));
    eventually("orders to be mailed", Duration::from_secs(120), || (smtp.count() >= 500).then_some(()));
    // Cut while jobs are mid-flight: outcomes, fetches and the heartbeat
    // hang (the test too must leave Redis alone), then go through.
    let cut = PacketDrop::all(redis.port());
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

#[test]
fn a_mail_server_stalled_mid_transaction_past_the_time_limit_loses_no_mail_and_sends_none_twice() {
    let _alone = alone();
    const ORDERS: usize = 1000;
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created"]).args(&["-c", "10", "--timeout", "4"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let orders = orders(ORDERS);
    redis.push_many("default", &orders[..400]);
    eventually("orders to be mailed", Duration::from_secs(120), || (smtp.count() >= 300).then_some(()));
    // Every connection stalls wherever it is (greeting, envelope, DATA,
    // the reply to the final dot) for twice the jobs' time limit, then
    // the packets held back go through. The rest of the orders come
    // during the stall, so that some jobs meet it however fast the first
    // ones went.
    let stall = PacketDrop::all(smtp.port());
    redis.push_many("default", &orders[400..]);
    std::thread::sleep(Duration::from_secs(8));
    stall.heal();
    let by_order = settle(&redis, &smtp, ORDERS);
    assert_eq!(by_order.len(), ORDERS, "every order was mailed");
    let twice: Vec<_> = by_order.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "mailed twice after the mail server stalled: {twice:?}");
    let logs = runner.logs();
    let timed_out = logs.lines().filter(|l| l.contains("job failed") && l.contains("Timeout")).count();
    let before_end = logs.lines().filter(|l| l.contains("before its mail was handed over")).count();
    let after_end = logs.lines().filter(|l| l.contains("while its mail was being sent")).count();
    assert!(timed_out > 0 && before_end > 0, "the stall outlasted some jobs' time limit mid-send:\n{logs}");
    println!(
        "network: mail server stalled 8 s mid-run, --timeout 4: {ORDERS} jobs, 0 lost, 0 mailed twice ({timed_out} jobs timed out and were retried: {before_end} cut off before their mail's end, {after_end} after)"
    );
}

/// Fails Sentinel over after 500 of 2000 orders are mailed, with 5% loss
/// to both servers; returns every order's Message-IDs once all are done.
fn sentinel_failover(args: &[&str]) -> (BTreeMap<u64, Vec<String>>, String) {
    const ORDERS: usize = 2000;
    let (sentinel, smtp) = (Sentinel::start(), SmtpSink::start());
    let _loss: Vec<PacketDrop> = sentinel.servers.iter().map(|s| PacketDrop::share(s.port(), 5)).collect();
    let options = RunnerOptions::plugins(&["order_created"]).args(&["-c", "10"]).args(args);
    let runner = Runner::start(&sentinel.url, &smtp.url, options);
    sentinel.master().push_many("default", &orders(ORDERS));
    eventually("orders to be mailed", Duration::from_secs(120), || (smtp.count() >= 500).then_some(()));
    sentinel.failover();
    runner.wait_for_log(&["the Redis master changed"], 1);
    let by_order = settle(sentinel.master(), &smtp, ORDERS);
    assert_eq!(by_order.len(), ORDERS, "every order was mailed");
    (by_order, runner.logs())
}

/// The runner's log lines about the job of `order`.
fn lines_of(logs: &str, order: u64) -> Vec<&str> {
    let jid = format!("{order:024x}");
    logs.lines().filter(|l| l.contains(&jid)).collect()
}

#[test]
fn a_sentinel_failover_under_load_over_a_lossy_link_loses_no_order() {
    let _alone = alone();
    let (by_order, _) = sentinel_failover(&[]);
    // Replication is asynchronous: the ledger notes the old master took
    // after the promotion are gone, and those orders' mails go again, as
    // the identical message (same Message-ID), never a third time.
    let twice: Vec<_> = by_order.iter().filter(|(_, ids)| ids.len() > 1).collect();
    for (order, ids) in &twice {
        assert!(ids.len() == 2 && ids[0] == ids[1], "order {order} mailed as {ids:?}");
    }
    println!(
        "network: Sentinel failover mid-run, 5% loss to both servers: {} jobs, 0 lost, {} mailed twice",
        by_order.len(),
        twice.len()
    );
}

#[test]
fn with_mail_replicas_a_sentinel_failover_mails_no_order_twice() {
    let _alone = alone();
    let (by_order, logs) = sentinel_failover(&["--mail-replicas", "1"]);
    let twice: Vec<_> = by_order.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let told: Vec<_> = twice.iter().flat_map(|(order, _)| lines_of(&logs, **order)).collect();
    assert!(twice.is_empty(), "mailed twice across the failover: {twice:?}\n{}", told.join("\n"));
    println!(
        "network: Sentinel failover mid-run, 5% loss to both servers, --mail-replicas 1: {} jobs, 0 lost, 0 mailed twice",
        by_order.len()
    );
}
