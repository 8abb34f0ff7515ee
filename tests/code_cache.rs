//! The code cache where operators put it: entries are mapped from the
//! cache directory, and one on a `noexec` mount (common for a container's
//! `/tmp` or a hardened volume), which can't be mapped executable, still
//! serves its entries rather than compiling every plugin on every start.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, job_json};
use serde_json::json;

#[test]
fn a_cache_on_a_noexec_mount_is_still_used() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let mut options = RunnerOptions::plugins(&["welcome_mail"]).args(&["--cache-dir", dir]);
    // Each start gets a mount namespace of its own in which the cache
    // directory is bound onto itself `noexec`; the files stay on disk.
    let mount = r#"mount --bind "$0" "$0" && mount -o remount,bind,noexec "$0" && exec "$@""#;
    options.wrapper =
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, dir].map(String::from).to_vec();
    let mut runner = Runner::start(&redis.url, &smtp.url, options);
    runner.wait_for_log(&["plugin loaded", "welcome_mail", "code=compiled"], 1);
    let entries = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(entries, 1, "the compiled code was kept");

    runner.restart();
    runner.wait_for_log(&["plugin loaded", "welcome_mail", "code=cache"], 1);
    // Once as the first start loaded what it had just compiled, once now.
    runner.wait_for_log(&["could not map the code cache entry", "reading it into memory instead"], 2);
    assert!(!runner.logs().contains("ignoring a bad code cache entry"), "{}", runner.logs());
    let args = json!([{"email": "new@example.com", "name": "Ann"}]);
    redis.push("default", &job_json("WelcomeMailJob", args, "aaaaaaaaaaaaaaaaaaaaaac1"));
    assert_eq!(smtp.wait_for(1)[0].subject, "Welcome, Ann!");
}
