//! `runner -C config/sidekiq.yml`: Sidekiq's own settings file, with its
//! environment sections and ERB, applied under the command line's flags.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, runner_bin};
use serde_json::{Value, json};

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
