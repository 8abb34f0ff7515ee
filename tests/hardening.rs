//! Defects an outside review and hostile plugins found, each shown fixed
//! from the outside: secrets never shown, header names checked, plugin
//! text escaped in logs, plugin files that aren't regular files refused.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, runner_bin};
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

#[test]
fn the_dashboard_and_metrics_show_no_secret() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["order_created"])
        .args(&["--database", &format!("postgres://jobrunner:{DB_PW}@127.0.0.1:1/shop")]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let url = runner.dashboard_url();
    for page in ["/", "/busy", "/plugins", "/metrics", "/api/stats", "/api/busy", "/api/plugins"] {
        let body = eventually(&format!("GET {page}"), WAIT, || {
            ureq::get(&format!("{url}{page}")).call().ok()?.into_body().read_to_string().ok()
        });
        assert_no_secret(page, &body);
    }
    assert!(runner.logs().contains("jobrunner:***@127.0.0.1:1/shop"), "{}", runner.logs());
    assert_no_secret("the log", &runner.logs());
}
