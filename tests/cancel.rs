//! Cancelling jobs by jid (`runner cancel`, the dashboard's JSON API): a
//! running job is stopped, whether it spins in guest code, sleeps or waits
//! on a slow mail server; a waiting one is taken out and never runs. A
//! cancelled job is neither retried nor dead, and a mail already handed to
//! the server is never sent again.

use jobrunner_tests::{
    Forms, Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, never_before, now,
    runner_enqueue,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// `runner cancel JID`'s output.
fn cancel(redis: &Redis, jid: &str) -> String {
    jobrunner_tests::runner_cancel(&redis.url, jid)
}

/// Whether a heartbeat lists `jid` among a process's running jobs.
fn listed_as_running(redis: &Redis, jid: &str) -> bool {
    let processes: Vec<String> = redis.query(&["SMEMBERS", "processes"]);
    processes.iter().any(|identity| {
        let work: Vec<String> = redis.query(&["HVALS", &format!("{identity}:work")]);
        work.iter().any(|entry| entry.contains(jid))
    })
}

/// Cancels `jid` once a heartbeat lists it as running, and returns how
/// long the runner took to log it stopped.
fn cancel_running(redis: &Redis, runner: &Runner, jid: &str) -> Duration {
    eventually("the job listed as running", WAIT, || listed_as_running(redis, jid).then_some(()));
    let started = Instant::now();
    let said = cancel(redis, jid);
    assert!(said.contains("running on"), "{said}");
    runner.wait_for_log(&["job cancelled while running; stopped", jid], 1);
    started.elapsed()
}

/// Nothing left anywhere: not queued, in progress, retrying or dead.
fn nothing_left(redis: &Redis) {
    eventually("the job's outcome recorded", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    let sets: Vec<usize> = ["retry", "dead", "schedule"].iter().map(|s| redis.sorted_set(s).len()).collect();
    assert_eq!((sets, redis.llen("queue:default")), (vec![0, 0, 0], 0), "cancelled means gone");
}

#[test]
fn a_spinning_job_and_a_sleeping_one_stop_when_cancelled_and_send_nothing() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let spin = "c1c1c1c1c1c1c1c1c1c1c1c1";
    redis.push("default", &job_json("SpinJob", json!([]), spin));
    let took = cancel_running(&redis, &runner, spin);
    // Far inside its 30 s time limit: the cancel stopped it.
    assert!(took < Duration::from_secs(3), "stopped {took:?} after the cancel");
    nothing_left(&redis);

    // Sleeping, then mailing: cancelled mid-sleep, it never mails.
    let sleeper = "c2c2c2c2c2c2c2c2c2c2c2c2";
    redis.push("default", &job_json("SlowJob", json!([4000, "ops@example.com", "too late"]), sleeper));
    cancel_running(&redis, &runner, sleeper);
    nothing_left(&redis);
    never_before(now() + 5.0, "the cancelled job's mail", || smtp.count() == 0);
    assert!(runner.is_running());
}

#[test]
fn a_job_cancelled_while_its_mail_is_being_sent_is_stopped_and_the_mail_never_sent_again() {
    // The server takes the message at once but answers its end only after 6 s.
    let (redis, smtp) = (Redis::start(), SmtpSink::start_with(&["-W", ".:6"]));
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "c3c3c3c3c3c3c3c3c3c3c3c3";
    redis.push("default", &job_json("EchoJob", json!(["ops@example.com", "mid-send"]), jid));
    let ledger = format!("jobrunner:sent:{jid}");
    eventually("the mail being sent", WAIT, || {
        let claim: Option<String> = redis.query(&["HGET", &ledger, "0"]);
        claim.is_some_and(|c| c.starts_with("sending")).then_some(())
    });
    let took = cancel_running(&redis, &runner, jid);
    assert!(took < Duration::from_secs(3), "stopped {took:?} after the cancel, not when the server answered");
    // Its end had gone out: counted as sent, the server delivers it.
    runner
        .wait_for_log(&["was cancelled while its mail was being sent; a rerun won't send it again", jid], 1);
    nothing_left(&redis);
    eventually("the one copy the server had", WAIT, || (smtp.count() == 1).then_some(()));
    never_before(now() + 3.0, "a second copy", || smtp.count() == 1);
}

#[test]
fn queued_scheduled_and_retrying_jobs_are_taken_out_and_a_later_push_never_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));

    // Queued where no runner serves.
    redis.push(
        "elsewhere",
        &job_json("EchoJob", json!(["ops@example.com", "queued"]), "d1d1d1d1d1d1d1d1d1d1d1d1"),
    );
    assert!(cancel(&redis, "d1d1d1d1d1d1d1d1d1d1d1d1").contains("taken out of queue:elsewhere"));
    assert_eq!(redis.llen("queue:elsewhere"), 0);

    // Scheduled two seconds ahead.
    let output =
        runner_enqueue(&redis.url, &["EchoJob", r#"["ops@example.com", "scheduled"]"#, "--in", "2s"]);
    let scheduled = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(cancel(&redis, &scheduled).contains("taken out of schedule"));

    // Waiting for a retry (no plugin handles it).
    redis.push("default", &job_json("GhostJob", json!([]), "d3d3d3d3d3d3d3d3d3d3d3d3"));
    eventually("the job in the retry set", WAIT, || (redis.sorted_set("retry").len() == 1).then_some(()));
    assert!(cancel(&redis, "d3d3d3d3d3d3d3d3d3d3d3d3").contains("taken out of retry"));
    assert!(redis.sorted_set("retry").is_empty());

    // Cancelled before it was ever pushed: when it comes, it doesn't run.
    let early = "d4d4d4d4d4d4d4d4d4d4d4d4";
    assert!(cancel(&redis, early).contains("not found"));
    redis.push("default", &job_json("EchoJob", json!(["ops@example.com", "early"]), early));
    runner.wait_for_log(&["job cancelled before it started", early], 1);
    nothing_left(&redis);
    never_before(now() + 3.0, "a cancelled job's mail", || smtp.count() == 0);
}

#[test]
fn a_job_running_on_another_runner_is_cancelled_through_the_dashboard_api() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    // `front` serves another queue; `worker` runs the job.
    let front =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]).args(&["-q", "other"]));
    let worker = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "e5e5e5e5e5e5e5e5e5e5e5e5";
    redis.push("default", &job_json("SpinJob", json!([]), jid));
    eventually("the job listed as running", WAIT, || listed_as_running(&redis, jid).then_some(()));

    let url = format!("{}/api/jobs/{jid}/cancel", front.dashboard_url());
    let refused = ureq::post(&url).send_empty();
    assert!(matches!(refused, Err(ureq::Error::StatusCode(400))), "a cancel without JSON: {refused:?}");
    let answer = ureq::post(&url).header("Content-Type", "application/json").send("{}").unwrap();
    let found: serde_json::Value =
        serde_json::from_str(&answer.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(found["running_on"].as_array().map(Vec::len), Some(1), "{found}");
    worker.wait_for_log(&["job cancelled while running; stopped", jid], 1);
    nothing_left(&redis);
    assert!(!front.logs().contains("job cancelled while running"), "the front runner ran nothing");
}

#[test]
fn the_dashboards_cancel_buttons_take_out_a_scheduled_and_a_queued_job() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let url = runner.dashboard_url();
    let forms = Forms::open(&url);
    let post =
        |path: &str, field: &str, jid: &str| assert_eq!(forms.post(path, &[(field, jid)]), 303, "{path}");

    let scheduled = "f1f1f1f1f1f1f1f1f1f1f1f1";
    let mut job: serde_json::Value =
        serde_json::from_str(&job_json("EchoJob", json!(["ops@example.com", "scheduled"]), scheduled))
            .unwrap();
    job.as_object_mut().unwrap().remove("enqueued_at");
    let _: () = redis.query(&["ZADD", "schedule", &(now() + 3.0).to_string(), &job.to_string()]);
    let html = ureq::get(&format!("{url}/scheduled")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(html.contains(&format!("name=\"cancel\" value=\"{scheduled}\"")), "a Cancel button per job");
    post("/scheduled/act", "cancel", scheduled);
    assert!(redis.sorted_set("schedule").is_empty(), "taken out of the schedule");

    let queued = "f2f2f2f2f2f2f2f2f2f2f2f2";
    redis.push("parked", &job_json("EchoJob", json!(["ops@example.com", "queued"]), queued));
    let html =
        ureq::get(&format!("{url}/queues/parked")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(html.contains(&format!("value=\"{queued}\"")), "a Cancel button per job");
    post("/jobs/cancel", "jid", queued);
    assert_eq!(redis.llen("queue:parked"), 0, "taken out of its queue");
    never_before(now() + 4.0, "a cancelled job's mail", || smtp.count() == 0);
}

#[test]
fn a_job_cancelled_while_no_runner_runs_never_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let jid = "d5d5d5d5d5d5d5d5d5d5d5d5";
    assert!(cancel(&redis, jid).contains("not found"));
    redis.push("default", &job_json("EchoJob", json!(["ops@example.com", "cancelled offline"]), jid));
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    runner.wait_for_log(&["job cancelled before it started", jid], 1);
    nothing_left(&redis);
    never_before(now() + 2.0, "a cancelled job's mail", || smtp.count() == 0);
}
