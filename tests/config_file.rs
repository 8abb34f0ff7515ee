//! `runner -C config/sidekiq.yml`: Sidekiq's own settings file, with its
//! environment sections and ERB, applied under the command line's flags.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, now, runner_bin};
use serde_json::{Value, json};
use std::time::Duration;

/// A file like the Sidekiq wiki's and real apps' (symbol keys, an
/// environment section, ERB reading the environment), plus the runner's own.
const SIDEKIQ_YML: &str = r#"# config/sidekiq.yml
---
:verbose: false
:concurrency: 5
:timeout: 8
:queues:
  - critical
  - default
  - <%= ENV.fetch("EXTRA_QUEUE", "low") %>
production:
  :concurrency: <%= ENV.fetch("RAILS_MAX_THREADS") { 3 } %>
staging:
  :concurrency: 15
jobrunner:
  poll_interval: 0.5
"#;

/// The `info` of the one process in the process set.
fn info(redis: &Redis) -> Value {
    eventually("the runner's process record", WAIT, || {
        let identity = redis.query::<Vec<String>>(&["SMEMBERS", "processes"]).pop()?;
        let info: Option<String> = redis.query(&["HGET", &identity, "info"]);
        serde_json::from_str(&info?).ok()
    })
}

#[test]
fn sidekiq_yml_applies_with_its_environment_section_and_erb_under_the_flags() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidekiq.yml");
    std::fs::write(&file, SIDEKIQ_YML).unwrap();
    let options = RunnerOptions::plugins(&["welcome_mail"])
        .args(&["-C", file.to_str().unwrap()])
        .env("RAILS_ENV", "production")
        .env("RAILS_MAX_THREADS", "4");
    let runner = Runner::start(&redis.url, &smtp.url, options.clone());
    let info = info(&redis);
    assert_eq!(info["concurrency"], 4, "production's section, through ERB: {info}");
    assert_eq!(info["queues"], json!(["critical", "default", "low"]));
    runner.wait_for_log(&["Sidekiq settings the runner has no use for", "verbose"], 1);
    // The file's queues are served.
    redis.push(
        "low",
        &job_json("WelcomeMailJob", json!(["ann@example.com", "Ann"]), "c0c0c0c0c0c0c0c0c0c0c0c0"),
    );
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["ann@example.com"]);
    drop(runner);

    // A flag wins over the file.
    let fresh = Redis::start();
    let _runner = Runner::start(&fresh.url, &smtp.url, options.args(&["-c", "7", "-e", "staging"]));
    let info = self::info(&fresh);
    assert_eq!(info["concurrency"], 7, "{info}");
}

/// The file's `:timeout:` and poll interval are observed, not only read:
/// due jobs are moved within the file's half second (the default is 5 s),
/// and at SIGTERM a running job gets the file's 2 s (the default is 25 s).
#[test]
fn sidekiq_yml_timeout_and_poll_interval_govern_the_runner() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidekiq.yml");
    std::fs::write(&file, ":queues: [default]\n:timeout: 2\njobrunner:\n  poll_interval: 0.5\n").unwrap();
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["-C", file.to_str().unwrap()]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options);

    // Six jobs due one after another, into a queue no runner serves, so
    // each keeps the time the poller moved it (its fresh `enqueued_at`).
    let start = now() + 1.0;
    for i in 0..6 {
        let mut job: Value =
            serde_json::from_str(&job_json("EchoJob", json!([]), &format!("{i:024}"))).unwrap();
        job["queue"] = json!("parked");
        let due = start + 0.7 * i as f64;
        let _: () = redis.query(&["ZADD", "schedule", &due.to_string(), &job.to_string()]);
    }
    let moved: Vec<String> = eventually("the six jobs moved", WAIT, || {
        let moved: Vec<String> = redis.query(&["LRANGE", "queue:parked", "0", "-1"]);
        (moved.len() == 6).then_some(moved)
    });
    for job in moved {
        let job: Value = serde_json::from_str(&job).unwrap();
        let index: f64 = job["jid"].as_str().unwrap().parse().unwrap();
        let late = job["enqueued_at"].as_f64().unwrap() - (start + 0.7 * index);
        assert!((-0.05..1.5).contains(&late), "job {index} moved {late:.2} s after it was due");
    }

    // A job of 6 s at SIGTERM: stopped after 2 s and handed back, not waited for.
    redis.push(
        "default",
        &job_json("SlowJob", json!([6000, "ops@example.com", "slow"]), "5105105105105105105105a1"),
    );
    eventually("the slow job on the runner's busy list", WAIT, || {
        let lists: Vec<String> = redis.query(&["KEYS", "*:work"]);
        lists.iter().any(|list| redis.query::<usize>(&["HLEN", list]) == 1).then_some(())
    });
    let signalled = now();
    runner.signal(libc::SIGTERM);
    runner.wait_exit(Duration::from_secs(30));
    let took = now() - signalled;
    assert!((1.8..5.0).contains(&took), "the runner exited {took:.1} s after SIGTERM");
    assert_eq!(redis.llen("queue:default"), 1, "the slow job is back in its queue");
    assert!(runner.logs().contains("job stopped at the end of the shutdown timeout"), "{}", runner.logs());
    assert!(smtp.messages().is_empty(), "the slow job never mailed");
}

#[test]
fn a_bad_config_file_stops_the_runner_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("concurency: 5\n", "unknown setting `concurency`"),
        ("jobrunner:\n  plugin: x\n", "unknown setting `jobrunner.plugin`"),
        ("concurrency: 5\nqueues:\n  - <%= Rails.env %>\n", "line 3:"),
        ("concurrency: <%= ENV.fetch(\"NO_SUCH_VARIABLE_X\") %>\n", "NO_SUCH_VARIABLE_X is not set"),
        ("concurrency: 0\n", "concurrency"),
        ("queues: [a\n", "not valid YAML"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.yml"));
        std::fs::write(&file, text).unwrap();
        let output = std::process::Command::new(runner_bin())
            .args(["-C", file.to_str().unwrap(), "--redis", "redis://127.0.0.1:1", "--no-http"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text:?} was accepted");
        assert!(stderr.contains(expected) && stderr.contains(&format!("bad{i}.yml")), "{text:?}: {stderr}");
    }
}
