//! Jobs that fail, misbehave or aren't jobs at all end up where a Sidekiq
//! user would look for them, with a message that says why, and the runner
//! carries on serving.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually};
use serde_json::{Value, json};

fn job(class: &str, args: Value) -> String {
    json!({"class": class, "args": args, "jid": format!("{:024x}", rand_id()), "queue": "default",
           "retry": true, "created_at": 1795440397.24, "enqueued_at": 1795440397.24})
    .to_string()
}

fn rand_id() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn find(set: &[Value], class: &str) -> Option<Value> {
    set.iter().find(|j| j["class"] == class).cloned()
}

/// Waits for a job of `class` in the sorted set `key`.
fn wait_in(redis: &Redis, key: &str, class: &str) -> Value {
    eventually(&format!("{class} in the {key} set"), WAIT, || find(&redis.sorted_set(key), class))
}

/// The runner still works: a mail job pushed now is delivered.
fn still_serving(redis: &Redis, smtp: &SmtpSink, subject: &str) {
    let before = smtp.messages().len();
    redis.push("default", &job("EchoJob", json!(["ops@example.com", subject])));
    let mails = smtp.wait_for(before + 1);
    assert!(mails.iter().any(|m| m.subject == subject));
}

#[test]
fn unknown_class_is_retried_with_a_clear_message() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", &job("NoSuchJob", json!([1])));
    let retry = wait_in(&redis, "retry", "NoSuchJob");
    assert_eq!(retry["error_message"], "no plugin handles class NoSuchJob");
    assert_eq!(retry["error_class"], "NoPluginError");
    assert_eq!(retry["retry_count"], 0);
}

#[test]
fn malformed_payload_goes_to_dead_without_blocking_the_queue() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", "{this is not json");
    redis.push("default", r#"{"class":"OrderCreateJob"}"#);
    still_serving(&redis, &smtp, "after garbage");
    let dead = eventually("two invalid payloads in the dead set", WAIT, || {
        let dead = redis.sorted_set("dead");
        (dead.len() == 2).then_some(dead)
    });
    let texts: Vec<String> =
        dead.iter().map(|d| format!("{} | {}", d["error_message"], d["payload"])).collect();
    assert!(
        texts.iter().any(|t| t.contains("not valid JSON") && t.contains("{this is not json")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("no `args` array")), "{texts:?}");
}

#[test]
fn retryable_and_permanent_plugin_failures() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", &job("FlakyJob", json!(["the warehouse API is down"])));
    redis.push("default", &job("BrokenJob", json!(["order 9 does not exist"])));
    redis.push("default", &job("OrderCreateJob", json!([{"id": 5}])));

    let flaky = wait_in(&redis, "retry", "FlakyJob");
    assert_eq!(flaky["error_message"], "the warehouse API is down");
    assert_eq!(flaky["retry_count"], 0);
    let broken = wait_in(&redis, "dead", "BrokenJob");
    assert_eq!(broken["error_message"], "order 9 does not exist");
    let bad_args = wait_in(&redis, "dead", "OrderCreateJob");
    assert_eq!(bad_args["error_message"], "missing argument `email`");
    // Sidekiq's first backoff: due 15 to 24 s after failing (give or take float rounding).
    let scored: Vec<(String, f64)> = redis.query(&["ZRANGE", "retry", "0", "-1", "WITHSCORES"]);
    let score = scored.iter().find(|(m, _)| m.contains("FlakyJob")).unwrap().1;
    let failed_at = flaky["failed_at"].as_f64().unwrap();
    assert!((14.99..=24.01).contains(&(score - failed_at)), "retry due {}s after failing", score - failed_at);
}

/// Runs a job of `class` on a runner started with `flag value`, checks that
/// the runner still serves afterwards, and returns the job's retry entry.
fn stopped_by_limit(flag: &str, value: &str, class: &str) -> Value {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&[flag, value]));
    redis.push("default", &job(class, json!([])));
    let entry = wait_in(&redis, "retry", class);
    still_serving(&redis, &smtp, &format!("after {class}"));
    entry
}

#[test]
fn a_job_that_runs_too_long_is_stopped_and_the_runner_carries_on() {
    let spin = stopped_by_limit("--timeout", "1", "SpinJob");
    assert_eq!(spin["error_message"], "timed out after 1s");
    assert_eq!(spin["error_class"], "Timeout");
}

#[test]
fn a_job_that_eats_memory_is_stopped_at_the_cap() {
    let hog = stopped_by_limit("--memory", "16", "HogJob");
    assert_eq!(hog["error_message"], "memory limit of 16 MiB exceeded");
    assert_eq!(hog["error_class"], "MemoryLimitExceeded");
}

#[test]
fn a_panicking_plugin_fails_the_job_with_its_panic_message() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", &job("TrapJob", json!([])));
    let trap = wait_in(&redis, "retry", "TrapJob");
    assert!(trap["error_message"].as_str().unwrap().contains("TrapJob panics on purpose"), "{trap}");
    still_serving(&redis, &smtp, "after trap");
}

#[test]
fn a_plugin_writing_lots_to_stderr_still_works() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", &job("ChattyJob", json!(["ops@example.com", "chatty"])));
    assert_eq!(smtp.wait_for(1)[0].subject, "chatty");
}

#[test]
fn scheduled_jobs_run_when_due() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let due = jobrunner_tests::now() + 2.5;
    let payload = job("EchoJob", json!(["ops@example.com", "scheduled"]));
    let _: () = redis.query(&["ZADD", "schedule", &due.to_string(), &payload]);
    jobrunner_tests::never_before(due, "the scheduled job ran", || smtp.count() == 0);
    let mails = smtp.wait_for(1);
    assert_eq!(mails[0].subject, "scheduled");
    assert!(jobrunner_tests::now() >= due);
    assert!(redis.sorted_set("schedule").is_empty());
}

#[test]
fn a_bad_plugin_file_is_refused_and_the_others_serve() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // Start once to get a plugins dir, drop garbage in, and restart.
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    std::fs::write(runner.plugin_path("garbage.wasm"), b"definitely not wasm").unwrap();
    runner.restart();
    // The refusal may be logged just after the runner answers as started.
    let refusal = runner.wait_for_log(&["plugin refused"], 1).remove(0);
    assert!(refusal.contains("garbage.wasm") && refusal.contains("is not WebAssembly"), "{refusal}");
    still_serving(&redis, &smtp, "despite garbage");
}
