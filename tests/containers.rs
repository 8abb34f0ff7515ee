//! Runners deployed as users deploy them: each in a container of its own
//! that shares the host's name (Docker's `--network host`, Kubernetes'
//! `hostNetwork: true`, compose with a fixed `hostname:`), where every
//! runner is PID 1 and no runner can see another's pid. They must never
//! take each other for dead, and a runner restarted into a fresh
//! container must still get its earlier life's jobs back.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, done_jids, eventually, job_json, never_before, now,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How many times each jid's "job done" line appears across `logs`.
fn runs_by_jid(logs: &[String]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for jid in logs.iter().flat_map(|log| done_jids(log)) {
        *runs.entry(jid).or_insert(0) += 1;
    }
    runs
}

#[test]
fn two_runners_as_pid_1_of_their_own_containers_run_every_job_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = || {
        RunnerOptions::plugins(&["misbehave"])
            .args(&["-c", "4", "--process-timeout", "10"])
            .in_own_pid_namespace()
    };
    let runners =
        [Runner::start(&redis.url, &smtp.url, options()), Runner::start(&redis.url, &smtp.url, options())];
    let identities: Vec<String> = eventually("both heartbeats", WAIT, || {
        let ids: Vec<String> = redis.query(&["SMEMBERS", "processes"]);
        (ids.len() == 2).then_some(ids)
    });
    assert!(identities.iter().all(|id| id.split(':').nth(1) == Some("1")), "both are PID 1: {identities:?}");

    const JOBS: usize = 40;
    let jobs: Vec<String> = (0..JOBS)
        .map(|i| {
            job_json("SlowJob", json!([1500, "ops@example.com", format!("job-{i}")]), &format!("{i:024x}"))
        })
        .collect();
    redis.push_many("default", &jobs);
    eventually("every job's mail", Duration::from_secs(90), || (smtp.count() >= JOBS).then_some(()));
    eventually("every job recorded", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    // Long enough for a look for dead runners or two after the last job.
    never_before(now() + 3.0, "a second copy of a mail", || smtp.count() == JOBS);

    let logs: Vec<String> = runners.iter().map(Runner::logs).collect();
    let runs = runs_by_jid(&logs);
    assert_eq!(runs.len(), JOBS, "every job ran: {runs:?}");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    let mut subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), JOBS, "one mail per job");
    for log in &logs {
        assert!(!log.contains("runner is gone"), "a live runner was taken for dead:\n{log}");
    }
    assert!(logs.iter().all(|log| log.contains("job done")), "both runners worked");
}

#[test]
fn a_runner_restarted_as_pid_1_of_a_new_container_gets_its_jobs_back_within_the_process_timeout() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options =
        RunnerOptions::plugins(&["misbehave"]).args(&["--process-timeout", "6"]).in_own_pid_namespace();
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    let jid = "d1d1d1d1d1d1d1d1d1d1d1d1";
    redis.push("default", &job_json("SlowJob", json!([3000, "ops@example.com", "survivor"]), jid));
    eventually("the job in progress", WAIT, || (redis.inprogress_jobs() == 1).then_some(()));

    runner.kill();
    let killed = Instant::now();
    // Its next life is PID 1 again, in another namespace: the same pid, but
    // not the same process, so only the heartbeat's age says it is gone.
    runner.restart();
    runner.wait_for_log(&["runner is gone", "jobs=1"], 1);
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(6 + 2 + 3), "recovered {took:?} after the kill");
    eventually("the job's mail", WAIT, || (smtp.count() == 1).then_some(()));
    eventually("the job recorded", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    assert_eq!(smtp.messages()[0].subject, "survivor");
}
