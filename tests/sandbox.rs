//! Hostile plugins and hostile jobs: each fails only itself, with an error
//! that says what happened; the sandbox gives nothing that wasn't granted;
//! the capability policy holds; the runner stays up and keeps serving.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The throughput comparison must not share the machine with the other
/// tests here, so they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A job that goes straight to the dead set when it fails, with its error.
fn one_shot(class: &str, args: Value, jid: &str) -> String {
    let mut job: Value = serde_json::from_str(&job_json(class, args, jid)).unwrap();
    job["retry"] = json!(0);
    job.to_string()
}

/// Dead jobs' error messages by jid, once `count` are there.
fn dead_errors(redis: &Redis, count: usize) -> BTreeMap<String, String> {
    eventually(&format!("{count} jobs in the dead set"), Duration::from_secs(60), || {
        let dead = redis.sorted_set("dead");
        (dead.len() >= count).then(|| {
            dead.iter()
                .map(|d| {
                    (
                        d["jid"].as_str().unwrap_or_default().to_string(),
                        d["error_message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    })
}

/// Pushes `count` EchoJobs and returns how long they took to be mailed.
fn echo_batch(redis: &Redis, smtp: &SmtpSink, tag: &str, count: usize) -> Duration {
    let before = smtp.count();
    let started = Instant::now();
    let jobs: Vec<String> = (0..count)
        .map(|i| {
            job_json("EchoJob", json!(["ops@example.com", format!("{tag}-{i}")]), &format!("{tag}{i:020}"))
        })
        .collect();
    redis.push_many("default", &jobs);
    eventually("the echo batch", Duration::from_secs(120), || (smtp.count() >= before + count).then_some(()));
    started.elapsed()
}

#[test]
fn hostile_plugins_fail_only_their_own_jobs_and_the_rest_keep_flowing() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["misbehave", "hostile"]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options.args(&["--timeout", "3", "-c", "10"]));
    let alone = echo_batch(&redis, &smtp, "alone", 3000);

    let socket = redis.url.trim_start_matches("redis://").to_string();
    let attacks = [
        ("SpinJob", json!([]), "timed out after 3s"),
        ("ClockSpinJob", json!([]), "timed out after 3s"),
        ("HogJob", json!([]), "memory limit of 64 MiB exceeded"),
        ("RecurseJob", json!([]), "call stack exhausted"),
        ("TrapJob", json!([]), "TrapJob panics on purpose"),
        ("ProbeJob", json!(["file"]), "sandbox held: file"),
        ("ProbeJob", json!(["dir"]), "sandbox held: dir"),
        ("ProbeJob", json!(["env"]), "sandbox held: env"),
        ("ProbeJob", json!(["socket", socket]), "sandbox held: socket"),
        ("BigErrorJob", json!([5 << 20]), "eeeeeeeeee"),
        (
            "MailLoopJob",
            json!(["loop@example.com", 1000]),
            "policy violation: a job may send at most 100 mails",
        ),
        ("MailBlastJob", json!([10_000]), "policy violation: 10000 recipients, more than the 50 allowed"),
        ("HugeMailJob", json!([12]), "policy violation: the message is"),
        (
            "SenderJob",
            json!(["ceo@evil.example", "x@example.com"]),
            "policy violation: sender ceo@evil.example is not allowed",
        ),
    ];
    for (i, (class, args, _)) in attacks.iter().enumerate() {
        redis.push("default", &one_shot(class, args.clone(), &format!("attack{i:018}")));
    }
    redis.push("default", &one_shot("LogFloodJob", json!([100_000]), "flood0000000000000000000"));
    let amid = echo_batch(&redis, &smtp, "amid", 3000);

    let errors = dead_errors(&redis, attacks.len());
    for (i, (class, _, expected)) in attacks.iter().enumerate() {
        let error = &errors[&format!("attack{i:018}")];
        assert!(
            error.contains(expected),
            "{class}: expected {expected:?} in {:?}",
            &error[..error.len().min(300)]
        );
        assert!(!error.contains("SANDBOX BROKEN"), "{class}: {error}");
    }
    assert_eq!(errors["attack000000000000000009"].len(), 10_000, "a huge error message is cut");
    let looped = smtp.messages().iter().filter(|m| m.rcpt == ["loop@example.com"]).count();
    assert_eq!(looped, 100, "the mail loop was stopped at the per-job limit");
    runner.wait_for_log(&["log lines dropped", "flood0000000000000000000"], 1);
    let flood_lines = runner.logs().matches("flood line").count();
    // The burst of 100 gets through, then the rate holds: logging works,
    // it is only held back.
    assert!(
        (100..1000).contains(&flood_lines),
        "the log flood was rate-limited, not silenced ({flood_lines} lines written)"
    );

    assert!(runner.is_running(), "the runner survived them all");
    println!("3000 echo jobs: {alone:?} alone, {amid:?} amid the attacks");
    assert!(
        amid <= alone * 2,
        "well-behaved jobs kept less than half their throughput: {alone:?} alone, {amid:?} amid the attacks"
    );
}

#[test]
fn a_policy_file_sets_limits_per_plugin() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[default]
max_recipients = 10

[plugins.hostile]
allowed_senders = ["@shop.example"]
allowed_recipient_domains = ["example.com"]
max_recipients = 3
mail_per_second = 5
"#,
    )
    .unwrap();
    let options = RunnerOptions::plugins(&["hostile"]);
    let policy_arg = policy.display().to_string();
    let _runner =
        Runner::start(&redis.url, &smtp.url, options.args(&["--policy", &policy_arg, "--memory", "512"]));

    let jobs = [
        ("SenderJob", json!(["news@shop.example", "x@example.com"]), None),
        (
            "SenderJob",
            json!(["news@shop.example", "x@elsewhere.org"]),
            Some("recipient domain elsewhere.org is not allowed"),
        ),
        ("MailBlastJob", json!([4]), Some("4 recipients, more than the 3 allowed (max_recipients)")),
        // Over its mail rate a plugin waits its turn; the job still succeeds.
        ("MailLoopJob", json!(["loop@example.com", 20]), None),
        ("HugeMailJob", json!([50]), Some("more than the 10485760 allowed (max_message_bytes)")),
    ];
    let pushed = Instant::now();
    for (i, (class, args, _)) in jobs.iter().enumerate() {
        redis.push("default", &one_shot(class, args.clone(), &format!("policy{i:018}")));
    }
    let looped = eventually("the mail loop's 20 mails", Duration::from_secs(30), || {
        let count = smtp.messages().iter().filter(|m| m.rcpt == ["loop@example.com"]).count();
        (count == 20).then(|| pushed.elapsed())
    });
    // A burst of 5, then one every 200 ms.
    assert!(looped >= Duration::from_millis(2500), "20 mails at 5 per second took only {looped:?}");
    let errors = dead_errors(&redis, 3);
    for (i, (class, _, expected)) in jobs.iter().enumerate() {
        match (expected, errors.get(&format!("policy{i:018}"))) {
            (Some(expected), Some(error)) => assert!(error.contains(expected), "{class}: {error}"),
            (None, None) => {}
            (expected, error) => panic!("{class}: expected {expected:?}, got {error:?}"),
        }
    }
    let spoofed = smtp.wait_for(1);
    assert!(spoofed.iter().any(|m| m.raw.contains("From: news@shop.example")));
}

#[test]
fn malformed_jobs_go_to_the_dead_set_with_the_reason_and_never_block_the_queue() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::default().args(&["--max-payload", "100000"]));
    let nested = format!(r#"{{"class":"EchoJob","args":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    let big =
        job_json("EchoJob", json!(["ops@example.com", "x".repeat(200_000)]), "bigbigbigbigbigbigbigbig");
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"class\":\"EchoJob\",\"args\":[\"\xff\xfe\"]}".to_vec(), "not valid UTF-8"),
        (br#"{"args":[]}"#.to_vec(), "no `class` string"),
        (br#"{"class":42,"args":[]}"#.to_vec(), "no `class` string"),
        (br#"{"class":"EchoJob","args":{"to":"x"}}"#.to_vec(), "no `args` array"),
        (big.into_bytes(), "more than the limit of 100000 (--max-payload)"),
        (br#"{"class":"Sidekiq::ActiveJob::Wrapper","args":[{"arguments":[]}]}"#.to_vec(), "no `job_class`"),
        (br#"{"class":"EchoJob","args":[],"retry":"yes"}"#.to_vec(), "`retry` is \"yes\""),
        (nested.into_bytes(), "not valid JSON"),
    ];
    for (payload, _) in &bad {
        redis.push_bytes("default", payload);
    }
    redis.push(
        "default",
        &job_json("EchoJob", json!(["ops@example.com", "after the garbage"]), "okokokokokokokokokokokok"),
    );
    assert_eq!(smtp.wait_for(1)[0].subject, "after the garbage");

    let dead = eventually("every bad payload in the dead set", WAIT, || {
        let dead = redis.sorted_set("dead");
        (dead.len() == bad.len()).then_some(dead)
    });
    let errors: Vec<String> = dead.iter().map(|d| d["error_message"].as_str().unwrap().to_string()).collect();
    for (_, reason) in &bad {
        assert!(errors.iter().any(|e| e.contains(reason)), "no dead job says {reason:?}: {errors:?}");
    }
    assert!(dead.iter().all(|d| d["class"] == "InvalidJob" && d["payload"].is_string()));
    assert_eq!(redis.llen("queue:default"), 0);
}

#[test]
fn configuration_mistakes_stop_the_runner_with_one_clear_line() {
    let _turn = alone();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().display().to_string();
    let bad_policy = dir.path().join("policy.toml");
    std::fs::write(&bad_policy, "[default]\nmax_recipient = 3\n").unwrap();
    let bad_policy = bad_policy.display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["--redis", "nonsense://x"], "--redis nonsense://x is not a valid Redis URL"),
        (&["--smtp", "http://mail.example.com"], "invalid SMTP URL http://mail.example.com"),
        (&["--plugins", "/no/such/dir"], "the plugins directory /no/such/dir is not usable"),
        (&["--concurency", "3"], "unexpected argument '--concurency'"),
        (&["--policy", &bad_policy], "max_recipient"),
        (
            &["--timeout", "0"],
            "invalid value '0' for '--timeout <SECONDS>': expected a positive number of seconds",
        ),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(jobrunner_tests::runner_bin())
            .args(["--plugins", &plugins, "--redis", "redis://127.0.0.1:1"])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{stderr}");
    }
}

#[test]
fn an_unreadable_plugin_file_is_refused_with_its_name_and_the_others_serve() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    std::os::unix::fs::symlink("/no/such/plugin.wasm", runner.plugins_dir().join("dangling.wasm")).unwrap();
    runner.restart();
    let refused = runner.wait_for_log(&["plugin refused", "dangling.wasm"], 1);
    assert!(refused[0].contains("cannot open it"), "{refused:?}");
    redis.push(
        "default",
        &job_json("EchoJob", json!(["ops@example.com", "still here"]), "abababababababababababab"),
    );
    assert_eq!(smtp.wait_for(1)[0].subject, "still here");
}

/// Each job gets fresh memory: what one job leaves in a static or on its
/// heap is gone for the next, though they run one after the other in the
/// same pooled slot.
#[test]
fn a_job_cannot_see_what_an_earlier_job_left_in_memory() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]).args(&["-c", "1"]));
    for i in 0..5 {
        let job =
            job_json("SecretJob", json!(["ops@example.com", format!("secret-{i}")]), &format!("{i:024}"));
        redis.push("default", &job);
        smtp.wait_for(i + 1);
    }
    let subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, vec!["clean"; 5], "a job saw an earlier one's memory");
}

/// A plugin's log line is cut at the documented 8 KiB, and
/// `logging.enabled` tells the plugin what the runner's filter lets through.
#[test]
fn log_lines_are_cut_at_8_kib_and_enabled_follows_the_filter() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    for (filter, debug) in [("info", false), ("info,plugin=debug", true)] {
        let options = RunnerOptions { log: filter, ..RunnerOptions::plugins(&["misbehave"]) };
        let runner = Runner::start(&redis.url, &smtp.url, options);
        redis.push("default", &job_json("LogJob", json!([20_000]), "1a1a1a1a1a1a1a1a1a1a1a1a"));
        let enabled = runner.wait_for_log(&["debug enabled:"], 1);
        assert!(enabled[0].contains(&format!("debug enabled: {debug}")), "{filter}: {}", enabled[0]);
        let logs = runner.logs();
        let line = logs.lines().find(|l| l.contains("xxxx")).expect("the long line");
        let run = line.split(|c| c != 'x').map(str::len).max().unwrap();
        assert_eq!(run, 8 * 1024, "cut at 8 KiB");
        assert!(line.contains("(cut)"), "marked as cut");
    }
}

/// The `log_lines_per_second` default of docs/security.md, 100, with bursts of up to
/// one second's worth: a plugin logging flat out for three seconds gets
/// about 400 lines written, and the rest are counted as dropped.
#[test]
fn a_log_flood_is_held_to_the_documented_100_lines_a_second() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["hostile"]));
    redis.push("default", &job_json("LogFloodForJob", json!([3]), "f1f1f1f1f1f1f1f1f1f1f1f1"));
    let dropped = runner.wait_for_log(&["log lines dropped", "f1f1f1f1f1f1f1f1f1f1f1f1"], 1);
    let written = runner.logs().matches("timed flood line ").count();
    // 100 at once, then 100 a second for three seconds (and a little for
    // the moments around them).
    assert!((300..=420).contains(&written), "{written} lines written in 3 s at 100 a second");
    let count: u64 = dropped[0]
        .split("dropped=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the dropped count");
    assert!(count > 10 * written as u64, "{count} lines dropped against {written} written");
}

/// A plugin that floods its log in every job gets its dropped lines noted
/// about once a second, not once per job (which would flood the log in its
/// place), and counted to the line in `/metrics`.
#[test]
fn lines_dropped_in_every_job_are_noted_once_a_second_and_all_counted() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["hostile"]));
    let (jobs, lines) = (300, 50);
    let payloads: Vec<String> =
        (0..jobs).map(|i| job_json("LogFloodJob", json!([lines]), &format!("{:024x}", 0xf100 + i))).collect();
    let started = Instant::now();
    redis.push_many("default", &payloads);
    eventually("every flooding job done", WAIT, || {
        let done: usize = redis.query::<Option<usize>>(&["GET", "stat:processed"]).unwrap_or(0);
        (done == jobs).then_some(())
    });
    let took = started.elapsed();
    // Every line either written (the last may still be in the log's batch
    // for a millisecond) or counted as dropped, none both.
    let dropped = |metrics: &str| -> Option<usize> {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("jobrunner_plugin_log_lines_dropped_total{plugin=\"hostile\"}"))?;
        line.rsplit(' ').next()?.parse().ok()
    };
    let (written, counted) = eventually("every line written or counted as dropped", WAIT, || {
        let written = runner.logs().matches("flood line ").count();
        let counted = dropped(&runner.metrics())?;
        (written + counted == jobs * lines).then_some((written, counted))
    });
    assert!(counted > jobs * lines / 2, "the rate held most lines back: {written} written");
    let notes = runner.logs().lines().filter(|l| l.contains("log lines dropped")).count();
    let seconds = took.as_secs() as usize + 1;
    assert!(
        (1..=seconds + 1).contains(&notes),
        "{notes} notes about dropped lines for {jobs} jobs in {took:?}: at most one a second"
    );
}

/// Instance reuse is an opt-in of one plugin's policy section: with
/// `reuse = 3` an instance performs up to three jobs, the later ones seeing
/// what the one before left, and the fourth gets a fresh instance. A job
/// that traps or runs out of time ends its instance, so the next is clean,
/// and a reused instance gets each job's own time limit.
#[test]
fn reuse_is_opted_into_per_plugin_bounded_and_ended_by_a_broken_job() {
    let _turn = alone();
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[plugins.misbehave]\nreuse = 3\n").unwrap();
    let options = RunnerOptions::plugins(&["misbehave"]);
    let runner = Runner::start(
        &redis.url,
        &smtp.url,
        options.args(&["-c", "1", "--timeout", "1", "--policy", policy.to_str().unwrap()]),
    );
    runner.wait_for_log(&["instances reused for up to 3 jobs each", "plugin=misbehave"], 1);
    let mut sent = 0;
    let mut secret = |i: usize| {
        let jid = format!("{i:024}");
        redis.push("default", &job_json("SecretJob", json!(["ops@example.com", format!("s{i}")]), &jid));
        sent += 1;
        let mail = smtp.wait_for(sent).into_iter().find(|m| m.message_id.contains(&jid));
        mail.expect("the job's mail").subject
    };
    assert_eq!(secret(0), "clean");
    assert_eq!(secret(1), "saw s0 and s0");
    // Longer than the time limit between two jobs of one instance: the
    // next job has a time limit of its own.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(secret(2), "saw s1 and s1");
    assert_eq!(secret(3), "clean", "an instance performs at most 3 jobs");
    redis.push("default", &one_shot("TrapJob", json!([]), "7a7a7a7a7a7a7a7a7a7a7a7a"));
    dead_errors(&redis, 1);
    assert_eq!(secret(4), "clean", "a trapped instance is not reused");
    assert_eq!(secret(5), "saw s4 and s4");
    redis.push("default", &one_shot("SpinJob", json!([]), "5b5b5b5b5b5b5b5b5b5b5b5b"));
    assert!(dead_errors(&redis, 2)["5b5b5b5b5b5b5b5b5b5b5b5b"].contains("timed out after 1s"));
    assert_eq!(secret(6), "clean", "a timed-out instance is not reused");
    let failed: Option<String> = redis.query(&["GET", "stat:failed"]);
    assert_eq!(failed.as_deref(), Some("2"), "only the trap and the spin failed, each once");
}
