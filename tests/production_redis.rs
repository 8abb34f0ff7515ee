//! Redis as production runs it: over TLS (a CA file, client certificates,
//! `#insecure` for development) and as a Redis 6 ACL user holding exactly
//! the permissions docs/operations.md documents.

use jobrunner_tests::{
    Certs, Forms, Redis, Runner, RunnerOptions, Sentinel, SmtpSink, WAIT, eventually, job_json, repo_root,
    runner_bin,
};
use serde_json::json;
use std::process::{Command, Output};

fn welcome(jid: &str, to: &str) -> String {
    job_json("WelcomeMailJob", json!([to, "Ann"]), jid)
}

/// `runner enqueue` against `url` with extra flags.
fn enqueue(url: &str, flags: &[&str]) -> Output {
    Command::new(runner_bin())
        .args(["enqueue", "WelcomeMailJob", r#"["bo@example.com","Bo"]"#, "--redis", url])
        .args(flags)
        .output()
        .expect("running runner enqueue")
}

#[test]
fn jobs_run_over_tls_checked_against_a_ca_file() {
    let certs = Certs::generate();
    let (redis, smtp) = (Redis::start_tls(&certs, false), SmtpSink::start());
    let tls_url = redis.tls_url.clone().unwrap();
    let ca = certs.path("ca.crt").display().to_string();
    let runner = Runner::start(
        &tls_url,
        &smtp.url,
        RunnerOptions::plugins(&["welcome_mail"]).args(&["--redis-ca", &ca]),
    );
    redis.push("default", &welcome("d1d1d1d1d1d1d1d1d1d1d1d1", "ann@example.com"));
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["ann@example.com"]);
    drop(runner);

    // Without the CA the system's roots don't know the server: refused.
    let untrusted = enqueue(&tls_url, &[]);
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success() && said.contains("connecting to Redis"), "{said}");
    // `#insecure` skips the check, for development.
    let insecure = enqueue(&format!("{tls_url}/#insecure"), &[]);
    assert!(insecure.status.success(), "{}", String::from_utf8_lossy(&insecure.stderr));
    assert_eq!(redis.llen("queue:default"), 1);
}

#[test]
fn a_server_that_asks_for_a_client_certificate_gets_one() {
    let certs = Certs::generate();
    let (redis, smtp) = (Redis::start_tls(&certs, true), SmtpSink::start());
    let tls_url = redis.tls_url.clone().unwrap();
    let path = |name: &str| certs.path(name).display().to_string();
    let without = enqueue(&tls_url, &["--redis-ca", &path("ca.crt")]);
    assert!(!without.status.success(), "a client without a certificate got in");
    let with = [
        "--redis-ca",
        &path("ca.crt"),
        "--redis-cert",
        &path("client.crt"),
        "--redis-key",
        &path("client.key"),
    ];
    let pushed = enqueue(&tls_url, &with);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let _runner = Runner::start(&tls_url, &smtp.url, RunnerOptions::plugins(&["welcome_mail"]).args(&with));
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["bo@example.com"]);
}

/// The `ACL SETUSER` line of docs/operations.md, with `password` in it.
fn documented_acl(password: &str) -> Vec<String> {
    let page = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let line = page
        .lines()
        .find(|l| l.starts_with("ACL SETUSER jobrunner "))
        .expect("the ACL line of docs/operations.md");
    line.replace(">PASSWORD", &format!(">{password}")).split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_documented_acl_user_is_all_the_runner_needs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let acl = documented_acl("s3cret-acl");
    let args: Vec<&str> = acl.iter().map(String::as_str).collect();
    let _: () = redis.query(&args);
    let url = redis.url.replace("redis://", "redis://jobrunner:s3cret-acl@");
    let plugins = RunnerOptions::plugins(&["welcome_mail", "misbehave"]);

    // Done, retried (moved back by the poller), dead, scheduled, recovered,
    // periodic, unique and cancelled.
    let mut doomed = Runner::start(&url, &smtp.url, plugins.clone());
    redis.push("default", &job_json("SlowJob", json!([60_000]), "e0e0e0e0e0e0e0e0e0e0e0e0"));
    eventually("the slow job running", WAIT, || (redis.inprogress_jobs() == 1).then_some(()));
    doomed.kill();
    // With a periodic job, every second.
    let periodic = r#"{"beat": {"every": "1s", "class": "EchoJob", "queue": "ticks", "args": ["t@example.com", "tick"]}}"#;
    let runner = Runner::start(&url, &smtp.url, plugins.args(&["--timeout", "2", "--periodic", periodic]));
    runner.wait_for_log(&["runner is gone"], 1);
    runner.wait_for_log(&["periodic job enqueued"], 1);
    redis.push("default", &welcome("e1e1e1e1e1e1e1e1e1e1e1e1", "ann@example.com"));
    redis.push("default", &job_json("FlakyJob", json!(["again"]), "e2e2e2e2e2e2e2e2e2e2e2e2"));
    redis.push("default", &job_json("BrokenJob", json!(["bad"]), "e3e3e3e3e3e3e3e3e3e3e3e3"));
    let scheduled = enqueue(&url, &["--in", "1s"]);
    assert!(scheduled.status.success(), "{}", String::from_utf8_lossy(&scheduled.stderr));
    eventually("a retry", WAIT, || (redis.sorted_set("retry").len() == 1).then_some(()));
    let member: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "0"]);
    let _: () = redis.query(&["ZADD", "retry", "0", &member[0]]);
    runner.wait_for_log(&["job failed", "e2e2e2e2e2e2e2e2e2e2e2e2"], 2);
    assert_eq!(smtp.wait_for(2).len(), 2);
    eventually("the dead job", WAIT, || (redis.sorted_set("dead").len() == 1).then_some(()));
    // Unique, then cancelled while running.
    assert!(enqueue(&url, &["--unique-for", "60s", "-q", "parked"]).status.success());
    assert_eq!(
        enqueue(&url, &["--unique-for", "60s", "-q", "parked"]).status.code(),
        Some(2),
        "the duplicate refused"
    );
    redis.push("default", &job_json("SlowJob", json!([60_000]), "e4e4e4e4e4e4e4e4e4e4e4e4"));
    eventually("the job to cancel running", WAIT, || (redis.inprogress_jobs() == 1).then_some(()));
    let cancel = Command::new(runner_bin())
        .args(["cancel", "e4e4e4e4e4e4e4e4e4e4e4e4", "--redis", &url])
        .output()
        .unwrap();
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    runner.wait_for_log(&["job cancelled while running", "e4e4e4e4e4e4e4e4e4e4e4e4"], 1);
    for page in
        ["/", "/queues", "/busy", "/retries", "/dead", "/scheduled", "/periodic", "/plugins", "/metrics"]
    {
        let status =
            ureq::get(&format!("{}{page}", runner.dashboard_url())).call().map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200), "{page}");
    }
    click_every_action(&runner, &redis, &url);
    drop(runner);
    let denied: Vec<redis::Value> = redis.query(&["ACL", "LOG"]);
    assert!(denied.is_empty(), "commands the documented user lacks: {denied:?}");
}

/// Each of the dashboard's actions, clicked as an operator would, on a
/// runner connected as the documented user: each must be seen done.
fn click_every_action(runner: &Runner, redis: &Redis, url: &str) {
    let (flaky, broken) = ("e2e2e2e2e2e2e2e2e2e2e2e2", "e3e3e3e3e3e3e3e3e3e3e3e3");
    let dashboard = runner.dashboard_url();
    let forms = Forms::open(&dashboard);
    // Acts on the job `jid` of a sorted set, by the key its row's button sends.
    let act = |set: &str, action: &str, jid: &str| {
        let body = ureq::get(&format!("{dashboard}/api/{set}")).call().unwrap().into_body().read_to_string();
        let page: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
        let items = page["items"].as_array().unwrap();
        let item =
            items.iter().find(|i| i["job"]["jid"] == jid).unwrap_or_else(|| panic!("{jid} in {set}: {page}"));
        let one = format!("{action}|{}", item["key"].as_str().unwrap());
        assert_eq!(forms.post(&format!("/{set}/act"), &[("one", &one)]), 303, "{action} in {set}");
    };
    let in_set = |set: &str, jid: &str| redis.sorted_set(set).iter().any(|j| j["jid"] == jid);
    // Retry now: the flaky job fails once more and is back in the retry set.
    let failed = runner.logs().matches("job failed").count();
    act("retries", "retry", flaky);
    eventually("the retried job to fail again", WAIT, || {
        (runner.logs().matches("job failed").count() > failed && in_set("retry", flaky)).then_some(())
    });
    // Kill it; in the dead set, delete one job and retry the other.
    act("retries", "kill", flaky);
    eventually("the killed job in the dead set", WAIT, || in_set("dead", flaky).then_some(()));
    act("dead", "delete", broken);
    act("dead", "retry", flaky);
    eventually("the dead set emptied", WAIT, || redis.sorted_set("dead").is_empty().then_some(()));
    eventually("the job retried from the dead set fails again", WAIT, || {
        in_set("retry", flaky).then_some(())
    });
    // A job due in an hour, added to its queue now.
    let due_later = enqueue(url, &["--in", "1h", "-q", "parked"]);
    assert!(due_later.status.success(), "{}", String::from_utf8_lossy(&due_later.stderr));
    let jid = String::from_utf8_lossy(&due_later.stdout).trim().to_string();
    act("scheduled", "enqueue", &jid);
    eventually("the schedule emptied", WAIT, || redis.sorted_set("schedule").is_empty().then_some(()));
    // Delete one queued job, then clear the queue.
    let queued: Vec<String> = redis.query(&["LRANGE", "queue:parked", "0", "-1"]);
    assert_eq!(queued.len(), 2, "the unique job and the one added now wait in parked");
    assert_eq!(forms.post("/queues/parked/delete", &[("payload", &queued[0])]), 303);
    assert_eq!(redis.llen("queue:parked"), 1, "one parked job deleted");
    assert_eq!(forms.post("/queues/parked/clear", &[]), 303);
    assert_eq!(redis.llen("queue:parked"), 0, "the parked queue cleared");
    // The periodic job: off, on, and enqueued now.
    for action in ["disable", "enable", "enqueue"] {
        assert_eq!(forms.post("/periodic/act", &[("name", "beat"), ("action", action)]), 303, "{action}");
    }
}

#[test]
fn a_sentinel_failover_mid_run_loses_no_job() {
    let (sentinel, smtp) = (Sentinel::start(), SmtpSink::start());
    const JOBS: usize = 400;
    let job = |i: usize| {
        job_json("MailThenSleepJob", json!([format!("u{i}@example.com"), "hi", 20]), &format!("{i:024x}"))
    };
    sentinel.master().push_many("default", &(0..JOBS).map(job).collect::<Vec<_>>());
    let runner =
        Runner::start(&sentinel.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]).args(&["-c", "4"]));
    eventually("a fifth of the mail", WAIT, || (smtp.count() >= JOBS / 5).then_some(()));
    sentinel.failover();
    runner.wait_for_log(&["the Redis master changed"], 1);
    // Jobs pushed to the new master run too.
    sentinel.master().push_many("default", &(JOBS..JOBS + 20).map(job).collect::<Vec<_>>());
    let everyone = |mails: &[jobrunner_tests::Mail]| {
        let mailed: std::collections::BTreeSet<&String> = mails.iter().flat_map(|m| &m.rcpt).collect();
        (0..JOBS + 20).all(|i| mailed.contains(&format!("u{i}@example.com")))
    };
    eventually("every job's mail", std::time::Duration::from_secs(120), || {
        everyone(&smtp.messages()).then_some(())
    });
    // What the old master took between the promotion and the sentinels'
    // announcement never reached the new one: those jobs run again (about
    // a second's worth here), never more than once each on top.
    let repeats = smtp.count() - (JOBS + 20);
    println!("jobs run again after the failover: {repeats}");
    let mut per_job: std::collections::BTreeMap<Vec<String>, usize> = Default::default();
    for mail in smtp.messages() {
        *per_job.entry(mail.rcpt).or_default() += 1;
    }
    assert!(per_job.values().all(|&n| n <= 2), "a job ran more than twice: {per_job:?}");
}
