//! Defects an outside review and hostile plugins found, each shown fixed
//! from the outside: secrets never shown, header names checked, plugin
//! text escaped in logs, plugin files that aren't regular files refused.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json, runner_bin};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const REDIS_PW: &str = "redis-pw-4d1e";
const SMTP_PW: &str = "smtp-pw-9c2b";
const DB_PW: &str = "db-pw-77aa";
const TOKEN: &str = "http-token-5f5f5f5f5f5f";

/// The runner with every secret set through the environment.
fn with_secrets(command: &mut Command) -> &mut Command {
    command
        .env("REDIS_URL", format!("redis://:{REDIS_PW}@127.0.0.1:1"))
        .env("SMTP_URL", format!("smtp://shop:{SMTP_PW}@127.0.0.1:1"))
        .env("DATABASE_URL", format!("postgres://jobrunner:{DB_PW}@127.0.0.1:1/shop"))
        .env("JOBRUNNER_HTTP_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [REDIS_PW, SMTP_PW, DB_PW, TOKEN] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[test]
fn secrets_never_show_in_help_errors_or_logs() {
    let help = with_secrets(&mut Command::new(runner_bin())).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("REDIS_URL") && help.contains("SMTP_URL") && help.contains("DATABASE_URL"));
    assert_no_secret("--help", &help);

    let plugins = tempfile::tempdir().unwrap();
    let plugins = plugins.path().to_str().unwrap();
    for bad in [
        vec!["--redis".to_string(), format!("redis://:{REDIS_PW}@bad host:x")],
        vec!["--smtp".to_string(), format!("smtp://shop:{SMTP_PW}@bad host:x")],
        vec!["--database".to_string(), format!("oracle://jobrunner:{DB_PW}@db/shop")],
    ] {
        let out = with_secrets(&mut Command::new(runner_bin()))
            .args(["--plugins", plugins, "--no-http"])
            .args(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} is refused");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("***") || text.contains("not a valid"), "{text}");
        assert_no_secret(&format!("the error for {bad:?}"), &text);
    }

    // Waiting for an unreachable Redis, with everything else configured.
    let log_path = std::path::Path::new(plugins).join("runner.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = with_secrets(&mut Command::new(runner_bin()))
        .args(["--plugins", plugins, "--no-http"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let logs = eventually("the runner to say Redis is unreachable", WAIT, || {
        let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
        logs.contains("not reachable").then_some(logs)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_secret("the start-up log", &logs);
}

/// Every secret in use at once: Redis with `requirepass`, a mail server
/// with credentials, a database URL and `--http-token`. A mail goes out
/// and a job fails, so the pages have jobs, errors and sends to show.
#[test]
fn the_dashboard_and_metrics_show_no_secret() {
    let mut redis = Redis::start();
    let _: () = redis.query(&["CONFIG", "SET", "requirepass", REDIS_PW]);
    redis.url = format!("redis://:{REDIS_PW}@127.0.0.1:{}", redis.port());
    let smtp = SmtpSink::start();
    let smtp_url = format!("smtp://shop:{SMTP_PW}@127.0.0.1:{}", smtp.port());
    let options = RunnerOptions::plugins(&["order_created", "misbehave"]).args(&[
        "--database",
        &format!("postgres://jobrunner:{DB_PW}@127.0.0.1:1/shop"),
        "--http-token",
        TOKEN,
    ]);
    let runner = Runner::start(&redis.url, &smtp_url, options);
    redis.push(
        "default",
        &job_json("EchoJob", json!(["ann@example.com", "through AUTH"]), "5ec0000000000000000000e1"),
    );
    redis.push("default", &job_json("FlakyJob", json!(["flaky on purpose"]), "5ec0000000000000000000f1"));
    assert_eq!(smtp.wait_for(1)[0].subject, "through AUTH");
    eventually("the failed job in the retry set", WAIT, || {
        (redis.sorted_set("retry").len() == 1).then_some(())
    });

    let url = runner.dashboard_url();
    let refused = ureq::get(&format!("{url}/api/stats")).call();
    assert!(matches!(refused, Err(ureq::Error::StatusCode(401))), "no token, no stats: {refused:?}");
    let pages = [
        "/",
        "/queues",
        "/busy",
        "/plugins",
        "/periodic",
        "/retries",
        "/dead",
        "/metrics",
        "/api/stats",
        "/api/history",
        "/api/queues",
        "/api/busy",
        "/api/plugins",
        "/api/retries",
        "/api/periodic",
    ];
    for page in pages {
        let body = eventually(&format!("GET {page}"), WAIT, || {
            let response =
                ureq::get(&format!("{url}{page}")).header("Authorization", format!("Bearer {TOKEN}"));
            response.call().ok()?.into_body().read_to_string().ok()
        });
        assert_no_secret(page, &body);
    }
    let retries = ureq::get(&format!("{url}/api/retries")).header("Authorization", format!("Bearer {TOKEN}"));
    let retries = retries.call().unwrap().into_body().read_to_string().unwrap();
    assert!(retries.contains("flaky on purpose"), "the retry's error is shown: {retries}");
    let logs = runner.logs();
    assert!(logs.contains("jobrunner:***@127.0.0.1:1/shop"), "{logs}");
    assert!(logs.contains("mail sent"), "{logs}");
    assert_no_secret("the log", &logs);
}

/// A job that dies on its first failure.
fn one_shot(class: &str, args: serde_json::Value, jid: &str) -> String {
    let mut job: serde_json::Value = serde_json::from_str(&job_json(class, args, jid)).unwrap();
    job["retry"] = json!(0);
    job.to_string()
}

/// Dead jobs' error messages by jid, once `count` are there.
fn dead_errors(redis: &Redis, count: usize) -> BTreeMap<String, String> {
    eventually(&format!("{count} jobs in the dead set"), WAIT, || {
        let dead = redis.sorted_set("dead");
        (dead.len() >= count).then(|| {
            dead.iter()
                .map(|d| {
                    (d["jid"].as_str().unwrap().to_string(), d["error_message"].as_str().unwrap().to_string())
                })
                .collect()
        })
    })
}

#[test]
fn header_names_cannot_add_headers_and_header_counts_are_capped() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["hostile", "welcome_mail"]));
    let to = "ann@example.com";
    let attacks = [
        ("a1", json!([to, [["X-A\r\nFrom: Bank <billing@bank.example>", "x"]]])),
        ("a2", json!([to, [["X-B\nBcc: thief@evil.example", "x"]]])),
        ("a3", json!([to, [["X-C", "v\r\n\r\nforged body"]]])),
        ("a4", json!([to, [["Content-Type", "text/html"]]])),
        ("a5", json!([to, [["Resent-From", "billing@bank.example"]]])),
        ("a6", json!([to, [["X-Many", "v"]], 100_000])),
    ];
    for (jid, args) in &attacks {
        redis.push("default", &one_shot("HeadersJob", args.clone(), &format!("{jid:0>24}")));
    }
    let dead = dead_errors(&redis, attacks.len());
    for (jid, _) in &attacks[..5] {
        let error = &dead[&format!("{jid:0>24}")];
        assert!(error.contains("invalid mail: header"), "{jid}: {error}");
    }
    assert!(dead[&format!("{:0>24}", "a6")].contains("max_headers"), "{dead:?}");
    // A plain extra header still goes through, and nothing forged was sent.
    redis.push(
        "default",
        &one_shot("HeadersJob", json!([to, [["X-Order-Id", "42"]]]), "b1b1b1b1b1b1b1b1b1b1b1b1"),
    );
    let mail = smtp.wait_for(1).remove(0);
    assert!(mail.raw.contains("X-Order-Id: 42"), "{}", mail.raw);
    assert_eq!(smtp.count(), 1, "no attack produced a mail");
    let logs = runner.logs();
    assert!(!logs.lines().any(|l| l.starts_with("From:") || l.starts_with("Bcc:")), "{logs}");
}

/// What a plugin writes can't forge a line of the runner's log, in the
/// human format or the JSON one.
#[test]
fn plugin_text_cannot_forge_log_lines() {
    for format in ["human", "json"] {
        let (redis, smtp) = (Redis::start(), SmtpSink::start());
        let options = RunnerOptions::plugins(&["hostile", "odd_describe"]).args(&["--log-format", format]);
        let runner = Runner::start(&redis.url, &smtp.url, options);
        redis.push("default", &one_shot("ForgeLogJob", json!([]), "f0f0f0f0f0f0f0f0f0f0f0f0"));
        runner.wait_for_log(&["job failed", "f0f0f0f0f0f0f0f0f0f0f0f0"], 1);
        let logs = runner.logs();
        assert!(logs.contains("odd_describe.wasm") && logs.contains("\\u{1b}[2J"), "{logs}");
        for line in logs.lines() {
            assert!(!line.starts_with("1999-09-09"), "a forged line in the {format} log:\n{logs}");
            assert!(!line.contains('\u{1b}') && !line.contains('\r'), "a raw control character: {line:?}");
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            }
        }
        let kept = if format == "json" { "innocent\\\\n1999-09-09" } else { "innocent\\n1999-09-09" };
        assert!(logs.contains(kept), "the message is kept, escaped:\n{logs}");
    }
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string naming a path in a temp dir.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// A FIFO, a huge sparse file and a link to a system file, all named
/// `*.wasm`, are refused at start-up and when dropped in later, without
/// blocking anything, reading the huge file or quoting the linked one.
#[test]
fn plugin_files_that_are_not_regular_or_too_big_are_refused() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(jobrunner_tests::plugin_wasm("order_created"), dir.path().join("order_created.wasm"))
        .unwrap();
    mkfifo(&dir.path().join("fifo.wasm"));
    let huge = std::fs::File::create(dir.path().join("huge.wasm")).unwrap();
    huge.set_len(1 << 30).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd.wasm")).unwrap();
    let options = RunnerOptions::plugins(&[]).args(&[
        "--plugins",
        dir.path().to_str().unwrap(),
        "--max-plugin-size",
        "32",
    ]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push(
        "default",
        &job_json("OrderCreateJob", json!([1, "ann@example.com"]), "d1d1d1d1d1d1d1d1d1d1d1d1"),
    );
    smtp.wait_for(1);
    let refused = runner.wait_for_log(&["plugin refused"], 3).join("\n");
    assert!(refused.contains("fifo.wasm") && refused.contains("not a regular file"), "{refused}");
    assert!(refused.contains("huge.wasm") && refused.contains("--max-plugin-size"), "{refused}");
    assert!(refused.contains("passwd.wasm") && refused.contains("not WebAssembly"), "{refused}");
    assert!(!runner.logs().contains("root:"), "the linked file is not quoted");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", runner.pid().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:")?.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 512 * 1024, "the huge file was not read: peak RSS {rss_kib} KiB");

    // Dropped in while running: refused, and later loads aren't held up.
    mkfifo(&dir.path().join("late_fifo.wasm"));
    runner.wait_for_log(&["plugin refused", "late_fifo.wasm"], 1);
    std::fs::copy(jobrunner_tests::plugin_wasm("welcome_mail"), dir.path().join("welcome_mail.wasm"))
        .unwrap();
    runner.wait_for_log(&["plugin loaded", "welcome_mail"], 1);

    // `runner check` refuses a FIFO at once instead of waiting on it.
    let out = Command::new(runner_bin()).arg("check").arg(dir.path().join("fifo.wasm")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a regular file"));
}

/// A panic in the runner while it performs a job (injected by the test
/// build, `faulty-runner`) records the job as failed; it is not left in progress, and
/// the other jobs keep flowing.
#[test]
fn a_panic_performing_a_job_still_records_its_outcome() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created", "welcome_mail"]).panicking_on("OrderCreateJob");
    let runner = Runner::start(&redis.url, &smtp.url, options);
    redis.push(
        "default",
        &job_json("OrderCreateJob", json!([1, "ann@example.com"]), "e1e1e1e1e1e1e1e1e1e1e1e1"),
    );
    let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["error_class"], "RunnerPanic");
    assert!(retry["error_message"].as_str().unwrap().contains("fault injected"), "{retry}");
    assert_eq!(redis.inprogress_jobs(), 0, "nothing left in progress");
    runner.wait_for_log(&["panicked", "e1e1e1e1e1e1e1e1e1e1e1e1"], 1);
    redis.push(
        "default",
        &job_json("WelcomeMailJob", json!(["bo@example.com", "Bo"]), "e2e2e2e2e2e2e2e2e2e2e2e2"),
    );
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["bo@example.com"]);
}

/// Background tasks that panic (injected by the test build as each starts)
/// are restarted and go on doing their work: a scheduled job still comes
/// due, outcomes are still recorded, the heartbeat still beats and a
/// cancel still reaches a running job.
#[test]
fn background_tasks_that_panic_are_restarted_and_keep_working() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let tasks = ["schedule poller", "outcome recorder", "heartbeat", "cancel listener"];
    let options = RunnerOptions::plugins(&["welcome_mail", "misbehave"]).panicking_tasks(&tasks);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    for task in tasks {
        runner.wait_for_log(&["background task panicked; restarting it", &format!("task=\"{task}\"")], 1);
    }
    let out = jobrunner_tests::runner_enqueue(
        &redis.url,
        &["WelcomeMailJob", r#"["cy@example.com","Cy"]"#, "--in", "1s"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["cy@example.com"], "the scheduled job ran");
    eventually("its outcome recorded", WAIT, || (redis.inprogress_jobs() == 0).then_some(()));
    let processes: Vec<String> = redis.query(&["SMEMBERS", "processes"]);
    assert_eq!(processes.len(), 1, "the heartbeat wrote the process record");

    let spin = "e3e3e3e3e3e3e3e3e3e3e3e3";
    redis.push("default", &job_json("SpinJob", json!([]), spin));
    let identity = processes[0].clone();
    eventually("the heartbeat listing the spinning job", WAIT, || {
        let work: Vec<String> = redis.query(&["HVALS", &format!("{identity}:work")]);
        work.iter().any(|entry| entry.contains(spin)).then_some(())
    });
    let said = jobrunner_tests::runner_cancel(&redis.url, spin);
    assert!(said.contains("running on"), "{said}");
    runner.wait_for_log(&["job cancelled while running; stopped", spin], 1);
}

/// A code cache others may write is not used: loading compiled code from
/// it would run whatever they put there.
#[test]
fn a_code_cache_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let options =
        RunnerOptions::plugins(&["welcome_mail"]).args(&["--cache-dir", cache.path().to_str().unwrap()]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let warning = runner.wait_for_log(&["not using the code cache"], 1).remove(0);
    assert!(warning.contains("may write it"), "{warning}");
    assert!(runner.wait_for_log(&["plugin loaded", "welcome_mail"], 1)[0].contains("code=compiled"));
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "nothing written there");
}

/// An idle runner doesn't reload its plugins on its own reads, and a
/// refused file stays refused, once, until its content changes.
#[test]
fn plugins_are_loaded_once_and_refused_once_until_they_change() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["order_created", "not_a_plugin"]));
    runner.wait_for_log(&["plugin refused", "not_a_plugin.wasm"], 1);
    // Reading a file the way anyone might doesn't count as a change either.
    for _ in 0..5 {
        std::fs::read(runner.plugin_path("order_created.wasm")).unwrap();
        std::fs::read(runner.plugin_path("not_a_plugin.wasm")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let logs = runner.logs();
    assert_eq!(logs.matches("plugin refused").count(), 1, "{logs}");
    assert_eq!(logs.matches("plugin loaded").count(), 1, "{logs}");
    // The same bytes written again: still the same, nothing happens.
    let bytes = std::fs::read(runner.plugin_path("not_a_plugin.wasm")).unwrap();
    std::fs::write(runner.plugin_path("not_a_plugin.wasm"), &bytes).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(runner.logs().matches("plugin refused").count(), 1);
    // New content is looked at again.
    runner.install_plugin("welcome_mail", "not_a_plugin.wasm");
    runner.wait_for_log(&["plugin loaded", "welcome_mail"], 1);
}

/// A file claiming another plugin's class never wins it by its name: at
/// start-up the class goes to the plugin that served it before (remembered
/// in Redis) or the one the policy pins it to, and with neither, every
/// claimant is refused.
#[test]
fn a_class_is_never_won_by_file_name_at_restart() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let order = |id: u64| {
        job_json("OrderCreateJob", json!([id, format!("buyer{id}@example.com")]), &format!("{id:024}"))
    };
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path().to_str().unwrap();
    std::fs::copy(jobrunner_tests::plugin_wasm("order_created"), plugins.path().join("order_created.wasm"))
        .unwrap();
    let options = RunnerOptions::plugins(&[]).args(&["--plugins", dir]);
    let mut runner = Runner::start(&redis.url, &smtp.url, options.clone());
    redis.push("default", &order(1));
    smtp.wait_for(1);
    std::fs::copy(jobrunner_tests::plugin_wasm("thief"), plugins.path().join("0_collide.wasm")).unwrap();
    runner.wait_for_log(&["plugin refused", "0_collide.wasm", "already served"], 1);

    runner.restart();
    let refused =
        runner.wait_for_log(&["plugin refused", "0_collide.wasm", "last served by plugin order_created"], 1);
    assert!(refused[0].contains("thief"), "{refused:?}");
    redis.push("default", &order(2));
    // Mails delivered within one second come back in any order.
    let mails = smtp.wait_for(2);
    assert!(
        mails.iter().any(|m| m.rcpt == ["buyer2@example.com"]),
        "the order went to its plugin: {mails:?}"
    );

    // A Redis with no history: both claimants are refused, naming each other.
    drop(runner);
    let fresh = Redis::start();
    let runner = Runner::start(&fresh.url, &smtp.url, options.clone());
    let refused = runner.wait_for_log(&["plugin refused", "no plugin served it before"], 2).join("\n");
    assert!(refused.contains("order_created.wasm") && refused.contains("0_collide.wasm"), "{refused}");
    fresh.push("default", &order(3));
    let retry = eventually("the order waiting for its plugin", WAIT, || fresh.sorted_set("retry").pop());
    assert_eq!(retry["error_class"], "NoPluginError");
    drop(runner);

    // A pin in the policy settles it.
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "[classes]\nOrderCreateJob = \"order_created\"\n").unwrap();
    let pinned = Redis::start();
    let runner =
        Runner::start(&pinned.url, &smtp.url, options.args(&["--policy", policy.path().to_str().unwrap()]));
    runner.wait_for_log(&["plugin refused", "0_collide.wasm", "pinned to plugin order_created"], 1);
    pinned.push("default", &order(4));
    assert!(smtp.wait_for(3).iter().any(|m| m.rcpt == ["buyer4@example.com"]));
    assert!(!smtp.messages().iter().any(|m| m.rcpt == ["thief@evil.example"]), "the thief got nothing");
}

/// `runner try` shows a job's error as the runner records it: cut to
/// 10,000 characters, control characters escaped.
#[test]
fn runner_try_cuts_and_escapes_a_plugins_error() {
    let out = Command::new(runner_bin())
        .arg("try")
        .arg(jobrunner_tests::plugin_wasm("hostile"))
        .args(["--class", "BigErrorJob", "--args", r#"[{"bytes": 50000000}]"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "retryable");
    assert!(out.stdout.len() < 20_000, "{} bytes printed", out.stdout.len());
    let out = Command::new(runner_bin())
        .arg("try")
        .arg(jobrunner_tests::plugin_wasm("hostile"))
        .args(["--class", "ForgeLogJob"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("failed\\r\\n1999") && !stdout.contains('\u{1b}'), "{stdout}");
}

/// A `describe` that never returns is cut off after its own short
/// deadline, not a job's, and is refused once.
#[test]
fn a_describe_that_never_returns_is_refused_within_seconds() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let started = std::time::Instant::now();
    let runner =
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["slow_describe", "welcome_mail"]));
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "start-up took {:?}", started.elapsed());
    let refused = runner.wait_for_log(&["plugin refused", "slow_describe.wasm"], 1);
    assert!(refused[0].contains("timed out after 5s"), "{refused:?}");
    redis.push(
        "default",
        &job_json("WelcomeMailJob", json!(["bo@example.com", "Bo"]), "a7a7a7a7a7a7a7a7a7a7a7a7"),
    );
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["bo@example.com"]);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(runner.logs().matches("plugin refused").count(), 1, "refused once");
}
