//! Job options beyond Sidekiq's open-source core, as its commercial
//! editions name them: expiring jobs (`expires_at` / `expires_in`) and
//! unique jobs (`unique_for`), pushed by Ruby's Sidekiq client and by
//! `runner enqueue`.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, never_before, now, ruby, runner_enqueue,
};
use std::process::Output;

/// `runner enqueue` with these arguments against `redis`.
fn enqueue(redis: &Redis, args: &[&str]) -> Output {
    runner_enqueue(&redis.url, args)
}

/// The mails with this subject.
fn mails(smtp: &SmtpSink, subject: &str) -> usize {
    smtp.messages().iter().filter(|m| m.subject == subject).count()
}

#[test]
fn a_job_that_expires_before_it_is_due_is_discarded_unrun_and_one_in_time_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    // As the sidekiq-expiring-jobs gem's client writes it: due in 2 s, to
    // start before 1 s from now.
    ruby(
        &redis,
        &[],
        r#"Sidekiq::Client.push("class" => "EchoJob", "queue" => "default",
             "args" => ["ops@example.com", "late"], "jid" => "e0e0e0e0e0e0e0e0e0e0e0e0",
             "at" => Time.now.to_f + 2, "expires_at" => Time.now.to_f + 1)"#,
    );
    // Due in 2 s, to start within 1 s of that: the expiry counts from the due time.
    let output = enqueue(
        &redis,
        &["EchoJob", r#"["ops@example.com", "in time"]"#, "--in", "2s", "--expires-in", "1s"],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let discarded = runner.wait_for_log(&["expired before it started", "e0e0e0e0e0e0e0e0e0e0e0e0"], 1);
    assert!(discarded[0].contains("EchoJob"), "{}", discarded[0]);
    eventually("the job in time to run", WAIT, || {
        smtp.messages().into_iter().find(|m| m.subject == "in time")
    });
    assert!(smtp.messages().iter().all(|m| m.subject != "late"), "the expired job ran");
    let leftovers: Vec<usize> =
        ["schedule", "retry", "dead"].iter().map(|s| redis.sorted_set(s).len()).collect();
    assert_eq!((leftovers, redis.llen("queue:default"), redis.inprogress_jobs()), (vec![0, 0, 0], 0, 0));
    let metrics = ureq::get(&format!("{}/metrics", runner.dashboard_url())).call().unwrap();
    let metrics = metrics.into_body().read_to_string().unwrap();
    assert!(metrics.contains("jobrunner_jobs_expired_total{class=\"EchoJob\"} 1"), "{metrics}");
}

/// Five Ruby pushes and five `runner enqueue --unique-for` of one job, all
/// before any runner takes them: one runs, and the rest are dropped.
#[test]
fn of_ten_concurrent_pushes_of_a_unique_job_exactly_one_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let args = r#"["ops@example.com", "once"]"#;
    let statuses: Vec<i32> = std::thread::scope(|scope| {
        scope.spawn(|| {
            ruby(
                &redis,
                &[],
                r#"5.times.map { Thread.new { Sidekiq::Client.push("class" => "EchoJob", "queue" => "default",
                     "args" => ["ops@example.com", "once"], "unique_for" => 60) } }.each(&:join)"#,
            )
        });
        let pushes: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| enqueue(&redis, &["EchoJob", args, "--unique-for", "60s"])))
            .collect();
        pushes.into_iter().map(|p| p.join().unwrap().status.code().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 0).count(), 1, "one `runner enqueue` pushed: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 2).count(), 4, "four were refused: {statuses:?}");
    assert_eq!(redis.llen("queue:default"), 6, "five Ruby pushes and one runner push wait");

    // One at a time: the later ones are taken after the first has ended.
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["-c", "1"]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    eventually("the one run", WAIT, || (mails(&smtp, "once") == 1).then_some(()));
    runner.wait_for_log(&["a duplicate of a pending unique job"], 5);
    never_before(now() + 2.0, "a second run", || mails(&smtp, "once") == 1);
    assert_eq!((redis.llen("queue:default"), redis.inprogress_jobs()), (0, 0));
}

/// The same contention with the runners already waiting: two runners at
/// `-c 10` take the jobs as they are pushed, so duplicates meet on two
/// machines at once. The job runs for 4 s, so every push lands while the
/// first is still running: one runs, the rest are dropped or refused.
#[test]
fn of_concurrent_pushes_taken_by_two_busy_runners_exactly_one_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = || RunnerOptions::plugins(&["misbehave"]).args(&["-c", "10"]);
    let runners =
        [Runner::start(&redis.url, &smtp.url, options()), Runner::start(&redis.url, &smtp.url, options())];
    let args = r#"[4000, "ops@example.com", "contended"]"#;
    let statuses: Vec<i32> = std::thread::scope(|scope| {
        scope.spawn(|| {
            ruby(
                &redis,
                &[],
                r#"5.times.map { Thread.new { Sidekiq::Client.push("class" => "SlowJob", "queue" => "default",
                     "args" => [4000, "ops@example.com", "contended"], "unique_for" => 60) } }.each(&:join)"#,
            )
        });
        let pushes: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| enqueue(&redis, &["SlowJob", args, "--unique-for", "60s"])))
            .collect();
        pushes.into_iter().map(|p| p.join().unwrap().status.code().unwrap()).collect()
    });
    let pushed = 5 + statuses.iter().filter(|s| **s == 0).count();
    assert!(
        statuses.iter().all(|s| *s == 0 || *s == 2),
        "each `runner enqueue` pushed or refused: {statuses:?}"
    );
    eventually("the one run", WAIT, || (mails(&smtp, "contended") == 1).then_some(()));
    let dropped = || {
        runners.iter().map(|r| r.logs().matches("a duplicate of a pending unique job").count()).sum::<usize>()
    };
    eventually("every duplicate dropped", WAIT, || (dropped() == pushed - 1).then_some(()));
    never_before(now() + 3.0, "a second run", || mails(&smtp, "contended") == 1);
    assert_eq!((redis.llen("queue:default"), redis.inprogress_jobs()), (0, 0));
}

/// A duplicate pushed while the first runs is dropped; one pushed after
/// the first has ended runs.
#[test]
fn a_unique_job_pushed_while_its_twin_runs_is_dropped_and_after_it_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let push = || {
        ruby(
            &redis,
            &[],
            r#"puts Sidekiq::Client.push("class" => "SlowJob", "queue" => "default",
                 "args" => [1500, "ops@example.com", "slow"], "unique_for" => 60)"#,
        )
    };
    push();
    eventually("the first to start", WAIT, || (redis.inprogress_jobs() == 1).then_some(()));
    let twin = push();
    let dropped = runner.wait_for_log(&["a duplicate of a pending unique job"], 1);
    assert!(dropped[0].contains(&twin), "{}", dropped[0]);
    eventually("the first's mail", WAIT, || (mails(&smtp, "slow") == 1).then_some(()));
    eventually("the first to end", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    push();
    eventually("the later push's run", WAIT, || (mails(&smtp, "slow") == 2).then_some(()));
    never_before(now() + 2.0, "a third run", || mails(&smtp, "slow") == 2);
}
