//! Mail through servers that are slow or silent, and jobs cut off while
//! sending: a mail is counted as sent only once its final `.` went out, so
//! a job stopped before that sends it on its next run, and one stopped
//! after never sends it twice. The mail rate keeps flowing while jobs
//! time out waiting for their turn.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, never_before, now,
};
use serde_json::json;
use std::time::Duration;

/// The sent-mail ledger's entry for the first mail of `jid`, if any.
fn ledger_entry(redis: &Redis, jid: &str) -> Option<String> {
    redis.query(&["HGET", &format!("jobrunner:sent:{jid}"), "0"])
}

/// Moves every retry to "now", as the Web UI's "Retry now" does.
fn retry_now(redis: &Redis) {
    let members: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "-1"]);
    for member in members {
        let _: () = redis.query(&["ZADD", "retry", "0", &member]);
    }
}

#[test]
fn a_server_that_never_greets_holds_no_job_past_its_deadline_and_the_retry_delivers_once() {
    // Accepts the connection, never says 220 (a greet pause gone wrong).
    let (redis, silent, working) =
        (Redis::start(), SmtpSink::start_with(&["-W", "connect:120"]), SmtpSink::start());
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["--timeout", "3"]);
    let mut stuck = Runner::start(&redis.url, &silent.url, options.clone());
    let jid = "6a6a6a6a6a6a6a6a6a6a6a6a";
    redis.push("default", &job_json("EchoJob", json!(["ann@example.com", "never greeted"]), jid));
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_message"], "timed out after 3s", "{retry}");
    stuck.wait_for_log(&["ran out of time before its mail was handed over", jid], 1);
    assert_eq!(ledger_entry(&redis, jid), None, "a mail that never left is not recorded as sent");
    stuck.kill();

    // The retry, through a server that answers: the mail goes out, once.
    let _runner = Runner::start(&redis.url, &working.url, options);
    retry_now(&redis);
    let mails = working.wait_for(1);
    assert_eq!(mails[0].subject, "never greeted");
    eventually("the job done", WAIT, || {
        (redis.sorted_set("retry").is_empty() && redis.inprogress_jobs() == 0).then_some(())
    });
    never_before(now() + 2.0, "a second copy", || working.count() == 1);
}

#[test]
fn a_job_cancelled_while_the_server_has_not_greeted_sends_nothing_and_says_why() {
    let (redis, silent) = (Redis::start(), SmtpSink::start_with(&["-W", "connect:120"]));
    let runner = Runner::start(&redis.url, &silent.url, RunnerOptions::plugins(&["misbehave"]));
    let jid = "6b6b6b6b6b6b6b6b6b6b6b6b";
    redis.push("default", &job_json("EchoJob", json!(["ann@example.com", "cancelled early"]), jid));
    eventually("the mail claimed", WAIT, || ledger_entry(&redis, jid).filter(|e| e.starts_with("sending")));
    jobrunner_tests::runner_cancel(&redis.url, jid);
    runner.wait_for_log(&["was cancelled before its mail was handed over", jid], 1);
    runner.wait_for_log(&["job cancelled while running; stopped", jid], 1);
    eventually("the job gone", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    assert_eq!(ledger_entry(&redis, jid), None);
}

#[test]
fn the_mail_rate_keeps_flowing_while_jobs_time_out_waiting_for_their_turn() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[plugins.misbehave]\nmail_per_second = 2\n").unwrap();
    let policy = policy.display().to_string();
    let options =
        RunnerOptions::plugins(&["misbehave"]).args(&["--policy", &policy, "--timeout", "2", "-c", "10"]);
    let _runner = Runner::start(&redis.url, &smtp.url, options);
    let jobs: Vec<String> = (0..120)
        .map(|i| {
            job_json(
                "EchoJob",
                json!([format!("user{i}@example.com"), format!("mail {i}")]),
                &format!("{i:024x}"),
            )
        })
        .collect();
    redis.push_many("default", &jobs);
    // Ten jobs wait their turn at once and most time out waiting: turns
    // they gave up go to the next mail, so about 2 mails a second go out.
    // Were they kept, the debt would grow past every job's deadline and
    // mail would stop after the first burst.
    eventually("30 mails at about 2 a second", Duration::from_secs(40), || {
        (smtp.count() >= 30).then_some(())
    });
    let first = smtp.count();
    eventually("10 more", Duration::from_secs(15), || (smtp.count() >= first + 10).then_some(()));
    let mut subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    let sent = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), sent, "no mail twice");
}

#[test]
fn a_job_mid_send_at_the_end_of_the_shutdown_timeout_is_stopped_before_another_runner_takes_it() {
    // The server takes the message at once and answers its end after 6 s.
    let (redis, smtp) = (Redis::start(), SmtpSink::start_with(&["-W", ".:6"]));
    let options = RunnerOptions::plugins(&["misbehave"]);
    let mut leaving =
        Runner::start(&redis.url, &smtp.url, options.clone().args(&["--shutdown-timeout", "1"]));
    let jid = "6c6c6c6c6c6c6c6c6c6c6c6c";
    redis.push("default", &job_json("EchoJob", json!(["ann@example.com", "once at shutdown"]), jid));
    eventually("the mail being sent", WAIT, || {
        ledger_entry(&redis, jid).filter(|e| e.starts_with("sending"))
    });
    // Its end reaches the local server within milliseconds of the claim.
    std::thread::sleep(Duration::from_millis(500));
    let _waiting = Runner::start(&redis.url, &smtp.url, options);

    let status = leaving.terminate();
    assert!(status.success(), "{status:?}");
    leaving.wait_for_log(&["jobs still running at the end of the shutdown timeout; stopping them"], 1);
    leaving.wait_for_log(&["job stopped at the end of the shutdown timeout", jid], 1);
    leaving.wait_for_log(&["while its mail was being sent; a rerun won't send it again", jid], 1);
    eventually("the job done by the other runner", WAIT, || {
        (redis.llen("queue:default") == 0 && redis.inprogress_jobs() == 0).then_some(())
    });
    eventually("the one copy the server had", WAIT, || (smtp.count() == 1).then_some(()));
    never_before(now() + 8.0, "a second copy", || smtp.count() == 1);
}
