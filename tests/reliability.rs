//! No job is lost: not when the runner is killed mid-job, not when it is
//! stopped, and not when it dies while another runner lives on.

use jobrunner::queue::{Endpoint, Finished, Outcome, Queue, keys};
use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// Pushes `count` jobs that each take `millis` and then mail subject `slow-<i>`.
fn push_slow_jobs(redis: &Redis, count: usize, millis: u64) -> BTreeSet<String> {
    (0..count)
        .map(|i| {
            let subject = format!("slow-{i}");
            let payload = json!({"class": "SlowJob", "args": [millis, "ops@example.com", subject],
                                 "jid": format!("{i:024x}"), "queue": "default", "retry": true});
            redis.push("default", &payload.to_string());
            subject
        })
        .collect()
}

/// Waits until every subject in `expected` has been delivered.
fn wait_all_delivered(smtp: &SmtpSink, expected: &BTreeSet<String>) {
    eventually("every job's mail", Duration::from_secs(60), || {
        let got: BTreeSet<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
        expected.is_subset(&got).then_some(())
    });
}

#[test]
fn sigkill_mid_job_then_restart_runs_every_job() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["-c", "4"]));
    let expected = push_slow_jobs(&redis, 12, 700);
    eventually("jobs in flight", WAIT, || (redis.inprogress_jobs() > 0).then_some(()));
    runner.kill();
    assert!(redis.inprogress_jobs() > 0, "the killed runner's jobs are held in progress");

    runner.restart();
    wait_all_delivered(&smtp, &expected);
    eventually("queue and in-progress lists empty", WAIT, || {
        (redis.llen("queue:default") == 0 && redis.inprogress_jobs() == 0).then_some(())
    });
    assert!(runner.logs().contains("runner is gone"), "recovery was logged");
}

#[test]
fn a_live_runner_recovers_the_jobs_of_a_killed_one() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut doomed = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["-c", "4"]));
    let expected = push_slow_jobs(&redis, 8, 1500);
    eventually("jobs in flight", WAIT, || (redis.inprogress_jobs() >= 4).then_some(()));
    doomed.kill();

    let survivor = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["-c", "8"]));
    wait_all_delivered(&smtp, &expected);
    assert!(survivor.logs().contains("runner is gone"));
}

#[test]
fn a_runner_on_another_host_that_stops_beating_is_recovered() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // A runner on another machine took a job and then went silent.
    let ghost = "otherhost:4242:0123456789ab";
    let payload = json!({"class": "EchoJob", "args": ["ops@example.com", "rescued"],
                         "jid": "aaaaaaaaaaaaaaaaaaaaaaaa", "queue": "default", "retry": true});
    let stale_beat = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        - 10)
        .to_string();
    let _: () = redis.query(&["SADD", "jobrunner:runners", ghost]);
    let _: () = redis.query(&["SADD", &format!("jobrunner:inprogress:{ghost}"), "default"]);
    let _: () =
        redis.query(&["LPUSH", &format!("jobrunner:inprogress:{ghost}:default"), &payload.to_string()]);
    let _: () = redis.query(&["HSET", ghost, "beat", &stale_beat]);

    let args = ["--process-timeout", "60"];
    let _patient = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&args));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.count(), 0, "a runner whose beat is 10 s old is not yet dead at a 60 s timeout");

    let _strict =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["--process-timeout", "5"]));
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.subject, "rescued");
    let runners: Vec<String> = redis.query(&["SMEMBERS", "jobrunner:runners"]);
    assert!(!runners.contains(&ghost.to_string()));
}

#[test]
fn sigterm_finishes_or_requeues_running_jobs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let args = ["-c", "2", "--shutdown-timeout", "1"];
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&args));
    let expected = push_slow_jobs(&redis, 4, 3000);
    eventually("jobs in flight", WAIT, || (redis.inprogress_jobs() == 2).then_some(()));
    let status = runner.terminate();
    assert!(status.success(), "runner exited with {status}");
    assert_eq!(redis.inprogress_jobs(), 0, "nothing is left in progress");
    assert_eq!(redis.llen("queue:default"), 4, "the unfinished jobs are back in the queue");
    assert!(runner.logs().contains("unfinished jobs put back"));

    runner.restart();
    wait_all_delivered(&smtp, &expected);
}

#[test]
fn the_runner_rides_out_a_redis_outage() {
    let (mut redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.kill();
    std::thread::sleep(Duration::from_secs(3));
    assert!(runner.is_running(), "the runner survives Redis going away");
    redis.restart();
    let payload = json!({"class": "EchoJob", "args": ["ops@example.com", "after the outage"],
                         "jid": "bbbbbbbbbbbbbbbbbbbbbbbb", "queue": "default", "retry": true});
    redis.push("default", &payload.to_string());
    assert_eq!(smtp.wait_for(1)[0].subject, "after the outage");
    let logs = runner.logs();
    assert!(
        logs.contains("fetching failed; retrying") || logs.contains("waiting for jobs failed; retrying"),
        "the outage was logged"
    );
}

#[test]
fn the_runner_waits_for_redis_at_start_up() {
    let (mut redis, smtp) = (Redis::start(), SmtpSink::start());
    redis.kill();
    let url = redis.url.clone();
    let runner = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Longer than one connection attempt with its own retries.
            std::thread::sleep(Duration::from_secs(6));
            redis.restart();
        });
        Runner::start(&url, &smtp.url, RunnerOptions::default())
    });
    assert!(runner.logs().contains("Redis is not reachable yet; retrying"));
    let payload = json!({"class": "EchoJob", "args": ["ops@example.com", "late start"],
                         "jid": "cccccccccccccccccccccccc", "queue": "default", "retry": true});
    redis.push("default", &payload.to_string());
    assert_eq!(smtp.wait_for(1)[0].subject, "late start");
}

/// Recording a batch of finished jobs takes each out of this runner's
/// in-progress list only if it is still there, and counts the others as
/// gone (their other copy runs), whichever way the batch is written:
/// plain done jobs in one transaction, a batch with any other outcome
/// through the script.
#[test]
fn recording_a_batch_removes_only_the_jobs_still_held() {
    let redis = Redis::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let queue = rt.block_on(Queue::connect(&Endpoint::url(&redis.url))).unwrap();
    let held = keys::inprogress("runner-a", "default");
    let job = |i: usize| json!({"class": "NoopJob", "args": [], "jid": format!("{i:024x}")}).to_string();
    let (a, b, c) = (job(1), job(2), job(3));
    for raw in [&a, &c] {
        let _: i64 = redis.query(&["LPUSH", &held, raw]);
    }
    let done = Outcome::Done;

    // All done: `b` was never held here.
    let gone = rt.block_on(queue.finish("runner-a", &[finished(&a, &done), finished(&b, &done)])).unwrap();
    assert_eq!(gone, 1);
    assert_eq!(redis.query::<Vec<String>>(&["LRANGE", &held, "0", "-1"]), vec![c.clone()]);
    assert_eq!(redis.query::<String>(&["GET", keys::STAT_PROCESSED]), "2");
    assert_eq!(calls(&redis, "exec"), 1, "plain done jobs are recorded in a transaction");

    // A retry in the batch: the script, with the same rule.
    let retry = Outcome::Retry { payload: format!("{c} again"), at: 1.0 };
    let gone = rt.block_on(queue.finish("runner-a", &[finished(&c, &retry), finished(&b, &done)])).unwrap();
    assert_eq!(gone, 1);
    assert_eq!(redis.llen(&held), 0);
    assert_eq!(redis.query::<Vec<String>>(&["ZRANGE", keys::RETRY, "0", "-1"]), vec![format!("{c} again")]);
    assert_eq!(redis.query::<String>(&["GET", keys::STAT_PROCESSED]), "4");
    assert_eq!(redis.query::<String>(&["GET", keys::STAT_FAILED]), "1");
    assert_eq!(calls(&redis, "exec"), 1, "a batch with a retry goes through the script");
}

/// How many times Redis ran `command`, from `INFO commandstats`.
fn calls(redis: &Redis, command: &str) -> u64 {
    let stats: String = redis.query(&["INFO", "commandstats"]);
    let line = stats.lines().find(|l| l.starts_with(&format!("cmdstat_{command}:")));
    line.and_then(|l| l.split(['=', ',']).nth(1)?.parse().ok()).unwrap_or(0)
}

/// A job of the `default` queue finished with `outcome`, with no sent mail.
fn finished<'a>(raw: &'a str, outcome: &'a Outcome) -> Finished<'a> {
    Finished { queue: "default", raw: raw.as_bytes(), sent_mail_of: "", outcome }
}
