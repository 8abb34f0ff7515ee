//! Many runners over one Redis: four runner processes share 20,000 jobs,
//! each job done exactly once and each runner doing a fair share; a runner
//! SIGKILLed mid-run has its jobs finished by the others; a rolling
//! restart loses nothing and runs nothing twice; and with one runner or
//! eight, a scheduled job is moved to its queue within the poll interval.
//!
//! What each runner did is read from its own log: every job it performed
//! logs "job done" with its jid. (Mail can't tell: the sent-mail ledger
//! keeps a job run twice from mailing twice.)

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, eventually, job_json, now};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const JOBS: usize = 20_000;
const RUNNERS: usize = 4;
const CONCURRENCY: &str = "10";

/// Starts a runner of the `misbehave` plugin at concurrency 10, which
/// counts as dead 3 s after its last heartbeat.
fn start_runner(redis: &Redis, smtp: &SmtpSink) -> Runner {
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["-c", CONCURRENCY, "--process-timeout", "3"]);
    Runner::start(&redis.url, &smtp.url, options)
}

/// Pushes `JOBS` SlowJobs of `millis` each, jids `0..JOBS` in hex.
fn push_jobs(redis: &Redis, millis: u64) {
    let payloads: Vec<String> = (0..JOBS)
        .map(|i| job_json("SlowJob", json!([millis, "ops@example.com", format!("job-{i}")]), &jid(i)))
        .collect();
    for chunk in payloads.chunks(5_000) {
        redis.push_many("default", chunk);
    }
}

fn jid(i: usize) -> String {
    format!("{i:024x}")
}

/// Waits until every job has left the queue and the in-progress lists and
/// each of `JOBS` is recorded as processed.
fn wait_drained(redis: &Redis, timeout: Duration) {
    eventually("every job done", timeout, || {
        let processed: usize = redis.query::<Option<usize>>(&["GET", "stat:processed"]).unwrap_or(0);
        (processed >= JOBS && redis.llen("queue:default") == 0 && redis.inprogress_jobs() == 0).then_some(())
    });
}

/// How many times each jid was performed, over the logs of `runners`.
fn runs(runners: &[&Runner]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for runner in runners {
        for jid in runner.done_jids() {
            *runs.entry(jid).or_insert(0) += 1;
        }
    }
    runs
}

fn assert_every_job_ran(runs: &BTreeMap<String, usize>) {
    let missing: Vec<String> = (0..JOBS).map(jid).filter(|j| !runs.contains_key(j)).take(5).collect();
    assert!(missing.is_empty(), "jobs never performed, e.g. {missing:?}");
    assert_eq!(runs.len(), JOBS, "performed jids that were never pushed");
}

#[test]
fn four_runners_do_every_job_exactly_once_in_fair_shares() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    let runners: Vec<Runner> = (0..RUNNERS).map(|_| start_runner(&redis, &smtp)).collect();
    push_jobs(&redis, 2);
    wait_drained(&redis, Duration::from_secs(180));

    let runs = runs(&runners.iter().collect::<Vec<_>>());
    assert_every_job_ran(&runs);
    let twice: Vec<&String> = runs.iter().filter(|(_, n)| **n > 1).map(|(jid, _)| jid).take(5).collect();
    assert!(twice.is_empty(), "jobs performed more than once, e.g. {twice:?}");
    let shares: Vec<usize> = runners.iter().map(|runner| runner.done_jids().len()).collect();
    println!("shares of {JOBS} jobs: {shares:?}");
    let even = JOBS / RUNNERS;
    assert!(
        shares.iter().all(|share| *share >= even / 2),
        "a runner did less than half of an even share: {shares:?}"
    );
}

#[test]
fn a_runner_sigkilled_mid_run_has_its_jobs_done_by_the_other_three() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    let mut runners: Vec<Runner> = (0..RUNNERS).map(|_| start_runner(&redis, &smtp)).collect();
    push_jobs(&redis, 20);
    eventually("a quarter of the jobs done", Duration::from_secs(120), || {
        let processed: usize = redis.query::<Option<usize>>(&["GET", "stat:processed"]).unwrap_or(0);
        (processed >= JOBS / 4).then_some(())
    });
    let held_at_kill = redis.inprogress_jobs();
    let pid = runners[0].pid().expect("the runner runs");
    let lists: Vec<String> = redis.query(&["KEYS", &format!("jobrunner:inprogress:*:{pid}:*:default")]);
    assert_eq!(lists.len(), 1, "one in-progress list of the doomed runner: {lists:?}");
    assert!(redis.llen(&lists[0]) > 0, "the doomed runner holds jobs when killed");
    runners[0].kill();
    wait_drained(&redis, Duration::from_secs(300));
    assert_eq!(redis.llen(&lists[0]), 0, "the killed runner's jobs were taken back");
    assert!(
        runners[1..].iter().any(|runner| runner.logs().contains("runner is gone")),
        "a survivor recovered them"
    );

    let runs = runs(&runners.iter().collect::<Vec<_>>());
    assert_every_job_ran(&runs);
    // Only jobs the killed runner had performed without its outcome being
    // recorded run again: each such jid is in its log once and once in
    // another's, and there are no more than it held at the kill.
    let killed: BTreeSet<String> = runners[0].done_jids().into_iter().collect();
    let twice: Vec<&String> = runs.iter().filter(|(_, n)| **n > 1).map(|(jid, _)| jid).collect();
    assert!(
        twice.iter().all(|jid| killed.contains(*jid) && runs[*jid] == 2),
        "jobs run twice not by the killed runner: {twice:?}"
    );
    assert!(
        twice.len() <= held_at_kill,
        "{} jobs ran twice, more than the {held_at_kill} in progress at the kill",
        twice.len()
    );
    println!(
        "{} of the killed runner's jobs ran again ({held_at_kill} in progress in all at the kill)",
        twice.len()
    );
}

#[test]
fn a_rolling_restart_loses_no_job_and_runs_none_twice() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    let mut runners: Vec<Runner> = (0..RUNNERS).map(|_| start_runner(&redis, &smtp)).collect();
    push_jobs(&redis, 20);
    let mut retired = Vec::new();
    for (i, runner) in runners.iter_mut().enumerate() {
        eventually("jobs being done", Duration::from_secs(60), || {
            let processed: usize = redis.query::<Option<usize>>(&["GET", "stat:processed"]).unwrap_or(0);
            (processed >= (i + 1) * JOBS / 10).then_some(())
        });
        let mut old = std::mem::replace(runner, start_runner(&redis, &smtp));
        assert!(old.terminate().success(), "runner {i} stopped cleanly");
        retired.push(old);
    }
    wait_drained(&redis, Duration::from_secs(300));

    let runs = runs(&runners.iter().chain(&retired).collect::<Vec<_>>());
    assert_every_job_ran(&runs);
    let twice: Vec<&String> = runs.iter().filter(|(_, n)| **n > 1).map(|(jid, _)| jid).take(5).collect();
    assert!(twice.is_empty(), "jobs performed more than once, e.g. {twice:?}");
    let put_back =
        retired.iter().filter(|runner| runner.logs().contains("jobs fetched ahead are back")).count();
    println!("{put_back} of {RUNNERS} stopped runners put back jobs fetched ahead");
}

/// Schedules `count` no-op jobs due 0.37 s apart from 1 s on, and returns
/// how late each left the schedule set, in seconds, sorted: watched every
/// 10 ms from the outside.
fn schedule_delays(redis: &Redis, count: usize) -> Vec<f64> {
    let start = now() + 1.0;
    let mut due: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..count {
        let (jid, at) = (format!("{:024x}", 0xd00 + i), start + 0.37 * i as f64);
        let payload = job_json("NoopJob", json!([]), &jid);
        let _: () = redis.query(&["ZADD", "schedule", &at.to_string(), &payload]);
        due.insert(jid, at);
    }
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !due.is_empty() && Instant::now() < deadline {
        let waiting: Vec<String> = redis.query(&["ZRANGE", "schedule", "0", "-1"]);
        let seen = now();
        due.retain(|jid, at| {
            let still = waiting.iter().any(|payload| payload.contains(jid.as_str()));
            if !still {
                delays.push(seen - *at);
            }
            still
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(due.is_empty(), "scheduled jobs never moved: {due:?}");
    delays.sort_by(f64::total_cmp);
    delays
}

#[test]
fn a_due_job_is_moved_within_the_poll_interval_with_one_runner_and_with_eight() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_discarding());
    // The harness polls every second.
    let interval = 1.0;
    let start = |redis: &Redis| Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["noop"]));
    let mut runners = vec![start(&redis)];
    for count in [1, 8] {
        while runners.len() < count {
            runners.push(start(&redis));
        }
        let delays = schedule_delays(&redis, 20);
        let (median, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
        println!("{count} runner(s): due job moved after p50 {median:.2} s, max {max:.2} s");
        assert!(delays[0] > -0.05, "{count} runner(s): a job moved before it was due: {delays:?}");
        // The bound, plus the watch's own 10 ms and a slow machine's timers.
        assert!(
            max < interval + 0.3,
            "{count} runner(s): a job waited longer than the poll interval: {delays:?}"
        );
    }
}
