//! Periodic jobs declared in `sidekiq.yml` as sidekiq-scheduler declares
//! them: each tick enqueued exactly once however many runners run, with
//! one SIGKILLed mid-way; and turned off, on and enqueued at once from the
//! dashboard.

use jobrunner_tests::{Forms, Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, never_before, now};
use std::path::PathBuf;
use std::time::Duration;

/// A config file with one periodic job, every second, into a queue no
/// runner here serves, so the test can read every tick's job.
fn config(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("sidekiq.yml");
    std::fs::write(
        &path,
        r#":queues: [default]
:scheduler:
  :schedule:
    beat:
      every: 1s
      class: EchoJob
      queue: ticks
      args: ["ops@example.com", "beat"]
      description: "One a second"
"#,
    )
    .unwrap();
    path
}

/// The ticks of the jobs waiting in `ticks`, oldest first (a job
/// enqueued by hand has none).
fn ticks(redis: &Redis) -> Vec<f64> {
    let jobs: Vec<String> = redis.query(&["LRANGE", "queue:ticks", "0", "-1"]);
    let mut ticks: Vec<f64> = jobs
        .iter()
        .filter_map(|job| serde_json::from_str::<serde_json::Value>(job).unwrap()["periodic_at"].as_f64())
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks
}

#[test]
fn three_runners_enqueue_every_tick_once_and_a_killed_one_leaves_no_gap() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir).display().to_string();
    let options = || RunnerOptions::plugins(&["misbehave"]).args(&["-C", &file]);
    let mut runners: Vec<Runner> = (0..3).map(|_| Runner::start(&redis.url, &smtp.url, options())).collect();
    let started = now();
    eventually("ten ticks", Duration::from_secs(30), || (ticks(&redis).len() >= 10).then_some(()));
    runners[0].kill();
    let killed_at = now();
    eventually("ten more ticks", Duration::from_secs(30), || (ticks(&redis).len() >= 20).then_some(()));
    drop(runners);

    let ticks = ticks(&redis);
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1.0, "one job a second, none doubled or missed: {ticks:?}");
    }
    assert!(ticks[0] >= started.floor() && ticks[0] <= started + 2.0, "ticking from the start: {ticks:?}");
    assert!(ticks.iter().any(|t| *t > killed_at + 2.0), "ticking on after the kill: {ticks:?}");
}

#[test]
fn a_periodic_job_is_turned_off_on_and_enqueued_now_from_the_dashboard() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir).display().to_string();
    let options = || RunnerOptions::plugins(&["misbehave"]).args(&["-C", &file]);
    let runner = Runner::start(&redis.url, &smtp.url, options());
    // A second runner with the same schedule: turned off on one dashboard,
    // the job is off for every runner.
    let _other = Runner::start(&redis.url, &smtp.url, options());
    let url = runner.dashboard_url();
    eventually("a tick", WAIT, || (!ticks(&redis).is_empty()).then_some(()));

    let html = ureq::get(&format!("{url}/periodic")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(html.contains("every 1s") && html.contains("EchoJob"), "{html}");
    let forms = Forms::open(&url);
    let act =
        |action: &str| assert_eq!(forms.post("/periodic/act", &[("name", "beat"), ("action", action)]), 303);

    act("disable");
    let off = ticks(&redis).len();
    never_before(now() + 3.0, "a tick while off", || ticks(&redis).len() <= off + 1);
    let off = ticks(&redis).len();
    let api: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{url}/api/periodic")).call().unwrap().into_body().read_to_string().unwrap(),
    )
    .unwrap();
    assert_eq!(api[0]["enabled"], false, "{api}");

    act("enqueue");
    let jobs = eventually("the job enqueued by hand", WAIT, || {
        let jobs: Vec<String> = redis.query(&["LRANGE", "queue:ticks", "0", "-1"]);
        (jobs.len() == off + 1).then_some(jobs)
    });
    assert!(!jobs[0].contains("periodic_at"), "enqueued by hand, not by a tick: {}", jobs[0]);

    act("enable");
    eventually("ticks again", WAIT, || (ticks(&redis).len() >= off + 2).then_some(()));
}
