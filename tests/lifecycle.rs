//! The job lifecycle at Sidekiq parity: scheduled jobs, retries through
//! SMTP outages, the dead set's limits, the process record Sidekiq's Web UI
//! reads, and quiet / stop by signal or from the Web UI.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, never_before, now, runner_enqueue,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn echo(subject: &str, jid: &str) -> String {
    job_json("EchoJob", json!(["ops@example.com", subject]), jid)
}

/// Subjects delivered, with how often each arrived.
fn subjects(smtp: &SmtpSink) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for mail in smtp.messages() {
        *seen.entry(mail.subject).or_insert(0) += 1;
    }
    seen
}

#[test]
fn scheduled_and_retried_jobs_run_when_due_and_once_with_three_runners() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runners: Vec<Runner> =
        (0..3).map(|_| Runner::start(&redis.url, &smtp.url, RunnerOptions::default())).collect();
    let due = now() + 3.0;
    for i in 0..150 {
        let _: () = redis.query(&[
            "ZADD",
            "schedule",
            &due.to_string(),
            &echo(&format!("scheduled-{i}"), &format!("{i:024x}")),
        ]);
        let retried = job_json(
            "EchoJob",
            json!(["ops@example.com", format!("retried-{i}")]),
            &format!("{:024x}", 1000 + i),
        );
        let mut retried: Value = serde_json::from_str(&retried).unwrap();
        retried["retry_count"] = json!(0);
        retried["error_message"] = json!("an earlier failure");
        let _: () = redis.query(&["ZADD", "retry", &due.to_string(), &retried.to_string()]);
    }
    never_before(due, "a scheduled or retried job ran", || smtp.count() == 0);

    eventually("all 300 mails", WAIT, || (smtp.count() >= 300).then_some(()));
    eventually("schedule and retry sets empty", WAIT, || {
        (redis.sorted_set("schedule").is_empty() && redis.sorted_set("retry").is_empty()).then_some(())
    });
    // Give a duplicate every chance to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    let seen = subjects(&smtp);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1), "some job ran twice: {seen:?}");
    assert!(now() >= due);
    drop(runners);
}

#[test]
fn runner_enqueue_in_schedules_a_job() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let output = runner_enqueue(&redis.url, &["EchoJob", r#"["ops@example.com", "later"]"#, "--in", "2s"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let scheduled = redis.sorted_set("schedule");
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0]["class"], "EchoJob");
    assert!(scheduled[0].get("enqueued_at").is_none(), "not enqueued yet");

    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    assert_eq!(smtp.wait_for(1)[0].subject, "later");
}

#[test]
fn mail_deferred_with_4xx_for_a_while_is_delivered_once_the_server_accepts() {
    let (redis, mut smtp) = (Redis::start(), SmtpSink::start_with(&["-r", "RCPT"]));
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    for i in 0..10 {
        let order =
            job_json("OrderCreateJob", json!([i, format!("buyer{i}@example.com")]), &format!("{i:024x}"));
        redis.push("default", &order);
    }
    let retries = eventually("all ten in the retry set", WAIT, || {
        let retries = redis.sorted_set("retry");
        (retries.len() == 10).then_some(retries)
    });
    // The server's own 4xx reply, as the plugin got it.
    let deferred =
        |r: &Value| r["error_message"].as_str().unwrap().starts_with("mail not sent: transient error (450)");
    assert!(retries.iter().all(deferred), "{retries:?}");

    smtp.restart_with(&[]);
    // Sidekiq's first retry comes 15 to 25 s after the failure.
    eventually("all ten mails after the outage", Duration::from_secs(60), || {
        (smtp.count() >= 10).then_some(())
    });
    eventually("retry set empty", WAIT, || redis.sorted_set("retry").is_empty().then_some(()));
    assert!(redis.sorted_set("dead").is_empty());
}

#[test]
fn dead_jobs_older_than_the_dead_timeout_are_dropped() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["--dead-timeout", "1"]));
    // One died two days ago, one an hour ago; a day is the limit.
    for (age, name) in [(2.0 * 86_400.0, "old"), (3_600.0, "recent")] {
        let job = job_json("BrokenJob", json!([name]), &format!("{name:0>24}"));
        let _: () = redis.query(&["ZADD", "dead", &(now() - age).to_string(), &job]);
    }
    redis.push("default", &job_json("BrokenJob", json!(["new"]), "dddddddddddddddddddddddd"));
    let dead = eventually("the new job in the dead set", WAIT, || {
        let dead = redis.sorted_set("dead");
        dead.iter().any(|d| d["error_message"] == "new").then_some(dead)
    });
    let names: Vec<&str> = dead.iter().map(|d| d["args"][0].as_str().unwrap()).collect();
    assert_eq!(names, ["recent", "new"], "the two-day-old one was dropped");
}

#[test]
fn the_dead_set_is_trimmed_to_the_configured_size() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["--dead-max-jobs", "3"]));
    for i in 0..5 {
        redis.push("default", &job_json("BrokenJob", json!([format!("broken {i}")]), &format!("{i:024x}")));
        eventually("the job in the dead set", WAIT, || {
            let dead = redis.sorted_set("dead");
            dead.iter().any(|d| d["error_message"] == format!("broken {i}")).then_some(())
        });
    }
    let dead: Vec<String> = redis.sorted_set("dead").iter().map(|d| d["error_message"].to_string()).collect();
    assert_eq!(dead, [r#""broken 2""#, r#""broken 3""#, r#""broken 4""#], "the oldest were dropped");
}

#[test]
fn sidekiqs_web_ui_sees_running_jobs_and_can_quiet_and_stop_the_runner() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let identity: String = redis.query::<Vec<String>>(&["SMEMBERS", "processes"]).remove(0);
    redis.push(
        "default",
        &job_json("SlowJob", json!([3000, "ops@example.com", "slow"]), "ffffffffffffffffffffffff"),
    );

    let work = eventually("the job in the workers hash", WAIT, || {
        let workers: BTreeMap<String, String> = redis.query(&["HGETALL", &format!("{identity}:workers")]);
        workers.into_values().next()
    });
    let work: Value = serde_json::from_str(&work).unwrap();
    assert_eq!(work["queue"], "default");
    let payload: Value = serde_json::from_str(work["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["jid"], "ffffffffffffffffffffffff");
    assert!(work["run_at"].as_i64().unwrap() > 0);

    // "Quiet", as the Web UI sends it: the running job finishes, no new one starts.
    let _: () = redis.query(&["LPUSH", &format!("{identity}-signals"), "TSTP"]);
    eventually("the process to report quiet", WAIT, || {
        let quiet: Option<String> = redis.query(&["HGET", &identity, "quiet"]);
        (quiet.as_deref() == Some("true")).then_some(())
    });
    redis.push("default", &echo("while quiet", "111111111111111111111111"));
    assert_eq!(smtp.wait_for(1)[0].subject, "slow");
    // Longer than a fetch's 2 s wait, watched throughout.
    never_before(now() + 4.0, "a quiet runner taking a new job", || {
        redis.llen("queue:default") == 1 && redis.inprogress_jobs() == 0 && smtp.count() == 1
    });

    // "Stop": the runner exits cleanly and the waiting job stays queued.
    let _: () = redis.query(&["LPUSH", &format!("{identity}-signals"), "TERM"]);
    let status = runner.wait_exit(WAIT);
    assert!(status.success(), "exited with {status}");
    assert_eq!(redis.llen("queue:default"), 1);
}

#[test]
fn sigtstp_quiets_and_sigint_then_stops_cleanly() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    runner.signal(libc::SIGTSTP);
    runner.wait_for_log(&["SIGTSTP received"], 1);
    redis.push("default", &echo("while quiet", "222222222222222222222222"));
    never_before(now() + 4.0, "a quiet runner taking a new job", || {
        redis.llen("queue:default") == 1 && redis.inprogress_jobs() == 0 && smtp.count() == 0
    });
    runner.signal(libc::SIGINT);
    let status = runner.wait_exit(WAIT);
    assert!(status.success(), "exited with {status}");
}

/// An idle runner of one queue waits on it in Redis for up to 2 s at a
/// time. Quieting it must end that wait in Redis too: a job pushed the
/// moment after, as a Rails app keeps enqueueing, stays in its queue for
/// another runner instead of landing in the quiet one's in-progress list.
#[test]
fn a_job_pushed_just_after_the_quiet_stays_in_its_queue() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["-q", "default"]));
    // Long enough idle for the waits to have grown to their longest.
    std::thread::sleep(Duration::from_secs(5));
    runner.signal(libc::SIGTSTP);
    runner.wait_for_log(&["quiet: taking no new jobs"], 1);
    redis.push("default", &echo("while quiet", "232323232323232323232323"));
    never_before(now() + 4.0, "a quiet runner taking a job pushed after the quiet", || {
        redis.llen("queue:default") == 1 && redis.inprogress_jobs() == 0 && smtp.count() == 0
    });
    runner.signal(libc::SIGINT);
    assert!(runner.wait_exit(WAIT).success());
}

#[test]
fn a_second_sigterm_exits_at_once_and_the_job_is_recovered() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    // Plugins load after the start: a job taken before its plugin is there
    // only waits, and a first SIGTERM puts it back and exits cleanly.
    runner.wait_for_log(&["plugin loaded", "misbehave.wasm"], 1);
    redis.push(
        "default",
        &job_json("SlowJob", json!([4000, "ops@example.com", "interrupted"]), "333333333333333333333333"),
    );
    eventually("the job to start", WAIT, || {
        let held: Vec<String> = redis.query(&["KEYS", "jobrunner:inprogress:*:default"]);
        held.iter().any(|list| redis.llen(list) == 1).then_some(())
    });
    runner.signal(libc::SIGTERM);
    runner.wait_for_log(&["shutting down"], 1);
    runner.signal(libc::SIGTERM);
    let status = runner.wait_exit(Duration::from_secs(2));
    assert!(!status.success(), "a forced exit is not a clean one");
    assert_eq!(smtp.count(), 0, "the job was cut short");

    runner.restart();
    assert_eq!(smtp.wait_for(1)[0].subject, "interrupted");
}

#[test]
fn a_job_that_finishes_within_the_shutdown_timeout_is_done_not_requeued() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::default().args(&["--shutdown-timeout", "15"]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push(
        "default",
        &job_json("SlowJob", json!([3000, "ops@example.com", "finished"]), "444444444444444444444444"),
    );
    eventually("the job to start", WAIT, || (redis.inprogress_jobs() == 1).then_some(()));
    runner.signal(libc::SIGTERM);
    runner.wait_for_log(&["shutting down"], 1);
    let status = runner.wait_exit(WAIT);
    assert!(status.success(), "exited with {status}");
    assert_eq!(smtp.messages().iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), ["finished"]);
    assert_eq!((redis.llen("queue:default"), redis.inprogress_jobs()), (0, 0), "done, not put back");
    assert_eq!(redis.query::<Option<u64>>(&["GET", "stat:processed"]), Some(1));
    assert!(!runner.logs().contains("put back at the front"), "{}", runner.logs());
}

#[test]
fn runner_enqueue_at_schedules_a_job_for_that_time() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let at = (now() + 3.0).floor() + 1.0;
    let output =
        runner_enqueue(&redis.url, &["EchoJob", r#"["ops@example.com", "at"]"#, "--at", &at.to_string()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let scored: Vec<(String, f64)> = redis.query(&["ZRANGE", "schedule", "0", "0", "WITHSCORES"]);
    assert_eq!(scored[0].1, at, "scored at the time given");
    never_before(at, "the --at job ran", || smtp.count() == 0);
    assert_eq!(smtp.wait_for(1)[0].subject, "at");
}

#[test]
fn weighted_queues_are_served_in_proportion() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // 60,000 and 20,000: at 3:1 both queues run dry together, so any moment
    // of the run shows the ratio, however late the sample; and the run lasts
    // seconds, so a sampler the loaded machine leaves unscheduled for a while
    // still finds both queues busy.
    let noop = |i: usize| job_json("NoopJob", json!([]), &format!("{i:024x}"));
    redis.push_many("critical", &(0..60_000).map(noop).collect::<Vec<_>>());
    redis.push_many("default", &(60_000..80_000).map(noop).collect::<Vec<_>>());
    let options = RunnerOptions::plugins(&["noop"]).args(&["-q", "critical,3", "-q", "default,1", "-c", "4"]);
    let _runner = Runner::start(&redis.url, &smtp.url, options);
    // Sampled every 2 ms.
    let mut conn = redis.conn();
    let deadline = std::time::Instant::now() + WAIT;
    let (critical, default) = loop {
        let (left_critical, left_default): (usize, usize) =
            redis::pipe().atomic().llen("queue:critical").llen("queue:default").query(&mut conn).unwrap();
        let (critical, default) = (60_000 - left_critical, 20_000 - left_default);
        // Each fetch takes a batch from one queue, so the share is sampled
        // over many batches: 20,000 jobs.
        if critical + default >= 20_000 && left_critical > 0 && left_default > 0 {
            break (critical, default);
        }
        assert!(
            left_critical > 0 && left_default > 0,
            "a queue ran dry before the sample: {critical} vs {default}"
        );
        assert!(std::time::Instant::now() < deadline, "20,000 jobs weren't done in time");
        std::thread::sleep(Duration::from_millis(2));
    };
    let share = critical as f64 / (critical + default) as f64;
    assert!(
        (0.675..=0.825).contains(&share),
        "critical's share {share:.3} ({critical} vs {default}), expected 0.75 ± 10%"
    );
}
