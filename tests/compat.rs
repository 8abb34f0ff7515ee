//! Jobs pushed by Sidekiq's own Ruby client, and by ActiveJob through its
//! sidekiq adapter, run unchanged.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, active_job, never_before, ruby};
use serde_json::json;

#[test]
fn job_pushed_by_the_ruby_sidekiq_client() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let jid = ruby(
        &redis,
        &[],
        r#"puts Sidekiq::Client.push("class" => "OrderCreateJob",
             "args" => [{ "id" => 42, "email" => "buyer@example.com", "name" => "Ann" }])"#,
    );
    assert_eq!(jid.len(), 24, "jid {jid:?}");
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["buyer@example.com"]);
    assert!(mail.subject.contains("#42"));
    assert!(mail.body.contains("Hello Ann"));
}

#[test]
fn job_scheduled_by_ruby_perform_in_runs_when_due() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let jid = ruby(
        &redis,
        &[],
        r#"class WelcomeMailJob
             include Sidekiq::Worker
           end
           puts WelcomeMailJob.perform_in(3, { "email" => "new@example.com", "name" => "Bo" })"#,
    );
    let scheduled = redis.sorted_set("schedule");
    assert_eq!(scheduled.len(), 1, "perform_in puts the job in the schedule set");
    assert_eq!(scheduled[0]["jid"], jid.as_str());
    let scored: Vec<(String, f64)> = redis.query(&["ZRANGE", "schedule", "0", "0", "WITHSCORES"]);
    never_before(scored[0].1, "the perform_in job ran", || smtp.count() == 0);
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["new@example.com"]);
}

#[test]
fn active_job_payload_with_ruby_markers_is_unwrapped() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    // What Rails 6.1's sidekiq adapter pushes for
    // `OrderCreateJob.perform_later(id: 42, email: "buyer@example.com", name: "Ann")`.
    let payload = json!({
        "class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
        "wrapped": "OrderCreateJob", "queue": "default",
        "args": [{"job_class": "OrderCreateJob", "job_id": "5a0b6e1e-3c4f-4b8e-9f7a-2d1c0e9b8a7f",
                  "provider_job_id": null, "queue_name": "default", "priority": null,
                  "arguments": [{"id": 42, "email": "buyer@example.com", "name": "Ann",
                                 "_aj_ruby2_keywords": ["id", "email", "name"]}],
                  "executions": 0, "exception_executions": {}, "locale": "en", "timezone": null,
                  "enqueued_at": "2026-11-23T13:26:37Z"}],
        "retry": true, "jid": "649404350eb577a4df322e89",
        "created_at": 1795440397.24, "enqueued_at": 1795440397.24
    });
    redis.push("default", &payload.to_string());
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["buyer@example.com"]);
    assert!(mail.subject.contains("#42"));
}

#[test]
fn job_enqueued_by_rails_active_job() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    active_job(
        &redis,
        r#"class WelcomeMailJob < ActiveJob::Base
             queue_as :mailers
           end
           WelcomeMailJob.perform_later(email: "new@example.com", name: "Ann")"#,
    );
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["new@example.com"]);
    assert!(mail.subject.contains("Welcome"));
    assert!(mail.body.contains("Hello Ann"));
}

#[test]
fn activejobs_markers_never_reach_the_plugin() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    // Symbols, symbol-keyed hashes, keyword arguments and a nested mix,
    // as Rails 6.1's ActiveJob serializes them (`_aj_symbol_keys`,
    // `_aj_ruby2_keywords`, `_aj_serialized`, ...).
    active_job(
        &redis,
        r#"class ArgsJob < ActiveJob::Base
             queue_as :default
           end
           ArgsJob.perform_later(:express, { plan: "gold", "seats" => 3 }, [1, { nested: :sym }], coupon: "X1", notify: true)"#,
    );
    let mail = smtp.wait_for(1).remove(0);
    assert!(!mail.body.contains("_aj_"), "a marker reached the plugin: {}", mail.body);
    let args: serde_json::Value = serde_json::from_str(mail.body.trim()).unwrap();
    assert_eq!(
        args,
        json!(["express", {"plan": "gold", "seats": 3}, [1, {"nested": "sym"}], {"coupon": "X1", "notify": true}])
    );
}
