//! Iterable jobs (a plugin that imports `iteration`): a job longer than
//! its time limit runs in slices and finishes; a SIGKILL costs at most the
//! work since the last cursor kept; a SIGTERM puts the job back in its
//! queue with its cursor, not in the retry set; a cancel, ours or
//! Sidekiq's `cancel!`, stops it for good. The state is Sidekiq's
//! `it-<jid>` hash, read here as Sidekiq's Web UI reads it. The `steps`
//! test plugin mails where each of its runs began once it is done.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, never_before, now,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// Sidekiq's iteration state of `jid`.
fn state(redis: &Redis, jid: &str) -> HashMap<String, String> {
    redis.query(&["HGETALL", &format!("it-{jid}")])
}

/// The cursor saved for `jid`, once there is one.
fn cursor(redis: &Redis, jid: &str) -> Option<Value> {
    let saved = state(redis, jid).remove("c")?;
    Some(serde_json::from_str(&saved).expect("the cursor is JSON")).filter(|c: &Value| !c.is_null())
}

/// The body of `GET url`.
fn get(url: &str) -> String {
    let response = ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.into_body().read_to_string().unwrap()
}

/// The one mail saying the job is done, and its body's `key: value` lines.
fn done_mail(smtp: &SmtpSink, steps: u64) -> HashMap<String, String> {
    let subject = format!("StepsJob done: {steps} steps");
    let mail = eventually("the job's last mail", 3 * WAIT, || {
        smtp.messages().into_iter().find(|m| m.subject == subject)
    });
    mail.body
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// No copy of the job waiting, retrying, dead or in progress.
fn nothing_left(redis: &Redis) {
    eventually("the job's outcome recorded", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    let sets: Vec<usize> = ["retry", "dead", "schedule"].iter().map(|s| redis.sorted_set(s).len()).collect();
    assert_eq!((sets, redis.llen("queue:default")), (vec![0, 0, 0], 0));
}

#[test]
fn a_job_longer_than_its_time_limit_runs_in_slices_and_mails_each_step_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // 60 steps of 80 ms: 4.8 s of work under a 3 s time limit, which
    // would kill it in one run; in slices of 1 s it finishes.
    let options = RunnerOptions::plugins(&["steps"]).args(&["--timeout", "3", "--slice", "1"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "5115115115115115115115ce";
    redis.push("default", &job_json("StepsJob", json!([60, 80, "ops@example.com", 10]), jid));
    let story = done_mail(&smtp, 60);
    let runs: u32 = story["runs"].parse().unwrap();
    assert!(runs >= 4, "4.8 s in slices of 1 s: {story:?}");
    assert_eq!(story["steps done"], "60", "{story:?}");
    let starts: Vec<u64> = story["starts"].split(',').map(|s| s.parse().unwrap()).collect();
    assert!(starts.len() == runs as usize && starts.windows(2).all(|w| w[0] < w[1]), "{story:?}");
    assert!(runner.logs().matches("stops at its checkpoint: its slice is over").count() >= 3);
    // Each slice went back to the queue and on: never a failure.
    nothing_left(&redis);
    assert!(state(&redis, jid).is_empty(), "a complete job's state is dropped");
    // The step mails, numbered on across runs by the sent-mail ledger:
    // each once, none taken for one an earlier run sent.
    let mut subjects: Vec<String> =
        smtp.messages().into_iter().map(|m| m.subject).filter(|s| s.starts_with("step ")).collect();
    subjects.sort_by_key(|s| s[5..].parse::<u32>().unwrap());
    let expected: Vec<String> = (1..=6).map(|k| format!("step {}", k * 10)).collect();
    assert_eq!(subjects, expected);
}

#[test]
fn a_killed_runner_s_job_resumes_from_its_last_saved_cursor() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60"]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "a111a111a111a111a111a111";
    // 200 steps of 50 ms: 10 s; the cursor is saved every 5 s.
    redis.push("default", &job_json("StepsJob", json!([200, 50, "ops@example.com", 20]), jid));
    eventually("a saved cursor", WAIT, || cursor(&redis, jid));
    runner.kill();
    let saved = cursor(&redis, jid).unwrap();
    let resume_at = saved["next"].as_u64().unwrap();
    assert!(resume_at > 0 && resume_at < 200, "{saved}");
    assert_eq!(state(&redis, jid)["ex"], "1", "Sidekiq's execution count");

    runner.restart();
    runner.wait_for_log(&[&format!("run 2 begins at step {resume_at}")], 1);
    // The Busy page shows the resumed run, as Sidekiq's shows `it-<jid>`.
    let dashboard = runner.dashboard_url();
    let work = eventually("the job on the Busy page", WAIT, || {
        let busy: Value = serde_json::from_str(&get(&format!("{dashboard}/api/busy"))).unwrap();
        Some(busy[0]["jobs"][0].clone()).filter(|work| !work.is_null())
    });
    assert_eq!(
        (work["job"]["jid"].as_str(), work["iteration"]["executions"].as_u64()),
        (Some(jid), Some(2)),
        "{work}"
    );
    assert!(get(&format!("{dashboard}/busy")).contains("resumed 1 time, at"));
    let story = done_mail(&smtp, 200);
    assert_eq!((story["runs"].as_str(), story["starts"].clone()), ("2", format!("0,{resume_at}")));
    assert_eq!(story["steps done"], "200", "every step once in the cursor's count");
    nothing_left(&redis);
    // The step mails the killed run sent after its last cursor were
    // performed again: the ledger kept them from going out twice (a kill
    // in the middle of a send is the one way one may).
    let subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    let killed_mid_send = runner.logs().contains("killed while sending");
    for k in 1..=10 {
        let copies = subjects.iter().filter(|s| **s == format!("step {}", k * 20)).count();
        assert!(copies == 1 || (copies == 2 && killed_mid_send), "step {}: {copies} copies", k * 20);
    }
}

#[test]
fn sigterm_puts_an_iterating_job_back_in_its_queue_with_its_cursor() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60", "-t", "2"]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "7e7e7e7e7e7e7e7e7e7e7e7e";
    redis.push("default", &job_json("StepsJob", json!([400, 50, "ops@example.com"]), jid));
    runner.wait_for_log(&["run 1 begins at step 0"], 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(runner.terminate().success());
    assert!(
        runner.logs().contains("the job stops at its checkpoint: the runner is quieting or shutting down")
    );
    // Back in its queue, not failed: no retry, no error on the job.
    assert_eq!((redis.llen("queue:default"), redis.sorted_set("retry").len()), (1, 0));
    let queued: Value =
        serde_json::from_str(&redis.query::<String>(&["LINDEX", "queue:default", "0"])).unwrap();
    assert_eq!((queued["jid"].as_str(), queued.get("error_class")), (Some(jid), None));
    let resume_at = cursor(&redis, jid).expect("the cursor saved at the stop")["next"].as_u64().unwrap();
    assert!(resume_at > 0, "the job had done steps before the stop");

    runner.restart();
    runner.wait_for_log(&[&format!("run 2 begins at step {resume_at}")], 1);
}

#[test]
fn a_quiet_runner_hands_an_iterating_job_back_for_another_to_resume() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60"]);
    let quiet = Runner::start(&redis.url, &smtp.url, options.clone());
    let jid = "9a9a9a9a9a9a9a9a9a9a9a9a";
    redis.push("default", &job_json("StepsJob", json!([200, 50, "ops@example.com"]), jid));
    quiet.wait_for_log(&["run 1 begins at step 0"], 1);
    quiet.signal(libc::SIGTSTP);
    quiet.wait_for_log(&["the job stops at its checkpoint: the runner is quieting or shutting down"], 1);
    eventually("the job back in its queue", WAIT, || (redis.llen("queue:default") == 1).then_some(()));
    let resume_at = cursor(&redis, jid).expect("the cursor saved at the stop")["next"].as_u64().unwrap();
    // The quiet runner takes nothing; a second one resumes the job.
    let other = Runner::start(&redis.url, &smtp.url, options);
    other.wait_for_log(&[&format!("run 2 begins at step {resume_at}")], 1);
    let story = done_mail(&smtp, 200);
    assert_eq!(story["starts"], format!("0,{resume_at}"));
}

#[test]
fn a_cancel_stops_an_iterating_job_for_good() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60"]));
    let jid = "ca0ca0ca0ca0ca0ca0ca0ca0";
    redis.push("default", &job_json("StepsJob", json!([200, 50, "ops@example.com"]), jid));
    runner.wait_for_log(&["run 1 begins at step 0"], 1);
    jobrunner_tests::runner_cancel(&redis.url, jid);
    eventually("the job stopped", WAIT, || runner.logs().contains("cancelled").then_some(()));
    nothing_left(&redis);
    never_before(now() + 3.0, "no mail from a cancelled job", || smtp.count() == 0);
    assert!(state(&redis, jid).is_empty(), "a cancelled job's state is dropped");
}

#[test]
fn sidekiq_s_cancel_mark_stops_an_iterating_job_at_its_next_save() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60"]));
    let jid = "5c5c5c5c5c5c5c5c5c5c5c5c";
    redis.push("default", &job_json("StepsJob", json!([300, 50, "ops@example.com"]), jid));
    runner.wait_for_log(&["run 1 begins at step 0"], 1);
    // What Sidekiq's `cancel!` writes, from a Ruby process that knows
    // nothing of this runner.
    let _: i64 = redis.query(&["HSETNX", &format!("it-{jid}"), "cancelled", &(now() as i64).to_string()]);
    runner.wait_for_log(&["iterable job cancelled; stopped at its checkpoint"], 1);
    nothing_left(&redis);
    assert_eq!(smtp.count(), 0);

    // A job marked before it runs doesn't run.
    let marked = "5d5d5d5d5d5d5d5d5d5d5d5d";
    let _: i64 = redis.query(&["HSETNX", &format!("it-{marked}"), "cancelled", &(now() as i64).to_string()]);
    redis.push("default", &job_json("StepsJob", json!([10, 1, "ops@example.com"]), marked));
    runner.wait_for_log(&["cancelled before this run; discarded unrun", marked], 1);
    nothing_left(&redis);
    assert_eq!(smtp.count(), 0);
}

/// `ImportJob.perform_later(items, ms, to)` as Rails 8.1's Sidekiq adapter
/// pushes a job that includes `ActiveJob::Continuable`, with the progress
/// a Rails worker left (`{}` before any).
fn continuable_job(jid: &str, args: Value, continuation: Value, resumptions: u64) -> String {
    let serialized = json!({
        "job_class": "ImportJob", "job_id": "6f1c2d4e-0b7a-4c1e-9a55-2f3b4c5d6e7f",
        "provider_job_id": null, "queue_name": "default", "priority": null, "arguments": args,
        "executions": resumptions, "exception_executions": {}, "locale": "en", "timezone": "UTC",
        "enqueued_at": "2026-12-05T07:00:00.000000000Z", "scheduled_at": null,
        "continuation": continuation, "resumptions": resumptions,
    });
    json!({"class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "ImportJob", "queue": "default",
           "args": [serialized], "retry": true, "jid": jid, "created_at": now(), "enqueued_at": now()})
    .to_string()
}

#[test]
fn a_rails_continuation_resumes_at_its_step_and_cursor() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["steps"]));
    // A Rails worker did `prepare` and 30 items of `process`, then stopped.
    let progress = json!({"completed": ["prepare"], "current": ["process", 30]});
    redis.push(
        "default",
        &continuable_job("c0c0c0c0c0c0c0c0c0c0c0c0", json!([50, 1, "ops@example.com"]), progress, 1),
    );
    let mail = eventually("the import's mail", WAIT, || {
        smtp.messages().into_iter().find(|m| m.subject == "ImportJob done: 50 items")
    });
    assert!(mail.body.contains("prepare, process, finish"));
    runner.wait_for_log(&["process begins at item 30"], 1);
    assert!(!runner.logs().contains("prepare runs"), "a completed step isn't run again");
    nothing_left(&redis);
}

#[test]
fn an_interrupted_rails_continuation_goes_back_with_its_progress_as_rails_writes_it() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["steps"]).args(&["--timeout", "60", "-t", "2"]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "c1c1c1c1c1c1c1c1c1c1c1c1";
    redis.push("default", &continuable_job(jid, json!([400, 50, "ops@example.com"]), json!({}), 0));
    runner.wait_for_log(&["process begins at item 0"], 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(runner.terminate().success());
    let queued: Value =
        serde_json::from_str(&redis.query::<String>(&["LINDEX", "queue:default", "0"])).unwrap();
    let serialized = &queued["args"][0];
    let continuation = &serialized["continuation"];
    assert_eq!(
        (queued["jid"].as_str(), &continuation["completed"]),
        (Some(jid), &json!(["prepare"])),
        "{queued}"
    );
    assert_eq!(continuation["current"][0], "process", "{continuation}");
    let at = continuation["current"][1].as_u64().expect("the item to resume at");
    assert!(at > 0 && at < 400, "{continuation}");
    // The first run made progress from nothing: an execution, not a resumption.
    assert_eq!((serialized["executions"].as_u64(), serialized["resumptions"].as_u64()), (Some(1), Some(0)));
    assert_eq!(redis.sorted_set("retry").len(), 0);

    // The next run resumes there, and counts a resumption when it stops.
    runner.restart();
    runner.wait_for_log(&[&format!("process begins at item {at}")], 1);
    runner.signal(libc::SIGTERM);
    runner.wait_exit(WAIT);
    let queued: Value =
        serde_json::from_str(&redis.query::<String>(&["LINDEX", "queue:default", "0"])).unwrap();
    let serialized = &queued["args"][0];
    assert_eq!((serialized["executions"].as_u64(), serialized["resumptions"].as_u64()), (Some(2), Some(1)));
    assert!(serialized["continuation"]["current"][1].as_u64().unwrap() >= at);
    assert_eq!(smtp.count(), 0);
}
