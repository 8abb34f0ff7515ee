//! Plugin authoring: `runner check`, `runner try`, `runner new-plugin` in
//! Rust, JavaScript and Python, the contract's versions, and a plugin
//! written in Python.

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, Shop, SmtpSink, job_json, plugin_wasm, repo_root, runner_bin,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn runner(args: &[&str]) -> Output {
    Command::new(runner_bin()).args(args).env("NO_COLOR", "1").output().expect("running the runner")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_prints_what_a_plugin_declares_or_why_it_is_refused() {
    let ok = runner(&["check", path(&plugin_wasm("order_created"))]);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("plugin   order_created 1.0.0") && out.contains("classes  OrderCreateJob"), "{out}");
    assert!(out.contains("contract jobrunner:plugin@0.1.6"), "{out}");

    let command = runner(&["check", path(&plugin_wasm("not_a_plugin"))]);
    assert_eq!(command.status.code(), Some(3));
    assert!(
        text(&command).contains("doesn't export the jobrunner:plugin/job-plugin world"),
        "{}",
        text(&command)
    );
}

#[test]
fn try_performs_one_job_and_its_exit_status_says_how_it_ended() {
    let order = plugin_wasm("order_created");
    let done =
        runner(&["try", path(&order), "--class", "OrderCreateJob", "--args", r#"[42, "buyer@example.com"]"#]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let out = text(&done);
    assert!(
        out.contains("To: buyer@example.com") && out.contains("Subject: Your order #42 is confirmed"),
        "{out}"
    );
    assert!(out.contains("OrderCreateJob") && out.contains("done"), "{out}");

    let misbehave = plugin_wasm("misbehave");
    let flaky = runner(&["try", path(&misbehave), "--class", "FlakyJob", "--args", r#"["later"]"#]);
    assert_eq!(flaky.status.code(), Some(1), "{}", text(&flaky));
    let broken = runner(&["try", path(&misbehave), "--class", "BrokenJob", "--args", r#"["never"]"#]);
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken));
    assert!(text(&broken).contains("failed for good: never"));
    let wrong = runner(&["try", path(&order), "--class", "NoSuchJob"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert!(text(&wrong).contains("order_created handles OrderCreateJob, not NoSuchJob"));
}

#[test]
fn a_new_plugin_from_the_template_builds_passes_try_and_hot_loads() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = repo_root().join("plugins/sdk");
    let created = runner(&["new-plugin", "hello_mail", "--dir", path(dir.path()), "--sdk", path(&sdk)]);
    assert!(created.status.success(), "{}", text(&created));
    let crate_dir = dir.path().join("hello_mail");
    let target = repo_root().join("plugins/target");
    let build = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir", path(&target)])
        .current_dir(&crate_dir)
        .output()
        .expect("running cargo");
    assert!(build.status.success(), "the template doesn't build:\n{}", text(&build));
    let wasm = target.join("wasm32-wasip2/release/hello_mail.wasm");

    let tried =
        runner(&["try", path(&wasm), "--class", "HelloMailJob", "--args", r#"["ann@example.com", "Ann"]"#]);
    assert_eq!(tried.status.code(), Some(0), "{}", text(&tried));
    assert!(text(&tried).contains("Subject: Hello, Ann!"));
    tries_a_user_by_global_id(&wasm, "HelloMailJob");

    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let running = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["order_created"]));
    std::fs::copy(&wasm, running.plugins_dir().join("hello_mail.wasm")).unwrap();
    running.wait_for_log(&["plugin loaded", "hello_mail"], 1);
    redis.push(
        "default",
        &job_json(
            "HelloMailJob",
            json!([{"email": "bo@example.com", "name": "Bo"}]),
            "hellohellohellohellohell",
        ),
    );
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!((mail.rcpt, mail.subject.as_str()), (vec!["bo@example.com".to_string()], "Hello, Bo!"));
}

#[test]
fn a_plugin_built_against_an_older_contract_loads_and_a_newer_one_is_refused_naming_both() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["old_contract", "future_contract"]);
    let running = Runner::start(&redis.url, &smtp.url, options);
    let refused = running.wait_for_log(&["plugin refused", "future_contract.wasm"], 1);
    assert!(
        refused[0].contains("built against jobrunner:plugin@0.2.0")
            && refused[0].contains("provides jobrunner:plugin@0.1.6"),
        "{}",
        refused[0]
    );
    redis.push(
        "default",
        &job_json("OldContractJob", json!(["ops@example.com", "from 0.1.0"]), "01d01d01d01d01d01d01d01d"),
    );
    assert_eq!(smtp.wait_for(1)[0].subject, "from 0.1.0");
}

#[test]
fn the_python_plugin_mails_a_password_reset_and_comes_back_from_the_code_cache() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let mut running = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["password_reset"]));
    let first = running.wait_for_log(&["plugin loaded", "password_reset.wasm"], 1);
    assert!(first[0].contains("code=compiled"), "{}", first[0]);
    running.restart();
    let second = running.wait_for_log(&["plugin loaded", "password_reset.wasm"], 2);
    assert!(second[1].contains("code=cache"), "{}", second[1]);
    redis.push(
        "default",
        &job_json(
            "PasswordResetJob",
            json!([{"email": "ann@example.com", "token": "t0k3n"}]),
            "5e5e5e5e5e5e5e5e5e5e5e5e",
        ),
    );
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["ann@example.com"]);
    assert_eq!(mail.subject, "Reset your password");
    assert!(mail.body.contains("https://shop.example/password/reset?token=t0k3n"), "{}", mail.body);
}

/// Scaffolds plugin `name` in `lang` under `dir` and runs the build command
/// `new-plugin` printed, as printed (componentize-py on the PATH, as `pip
/// install` puts it); returns the component it built.
fn scaffold_and_build(dir: &Path, name: &str, lang: &str) -> PathBuf {
    let created = runner(&["new-plugin", name, "--lang", lang, "--dir", path(dir)]);
    assert!(created.status.success(), "{}", text(&created));
    let printed = text(&created);
    let command = printed.lines().find_map(|line| line.strip_prefix("build it:  ")).expect("a build command");
    let venv = repo_root().join("plugins/target/python-venv/bin");
    let search_path = format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default());
    let build = Command::new("sh")
        .args(["-c", command])
        .env("PATH", search_path)
        .envs([
            ("npm_config_prefer_offline", "true"),
            ("npm_config_audit", "false"),
            ("npm_config_fund", "false"),
        ])
        .output()
        .expect("running the build command");
    assert!(build.status.success(), "the {lang} template doesn't build with {command}:\n{}", text(&build));
    dir.join(name).join(format!("{name}.wasm"))
}

/// `runner try` of `class` with a user by address, then by GlobalID from
/// the example app's database.
fn tries_a_user_by_global_id(wasm: &Path, class: &str) {
    // An interpreter's first compile takes seconds, many more on a loaded machine.
    let by_address = runner(&[
        "try",
        path(wasm),
        "--class",
        class,
        "--args",
        r#"[{"email": "bo@example.com"}]"#,
        "--compile-timeout",
        "120",
    ]);
    assert_eq!(by_address.status.code(), Some(0), "{}", text(&by_address));
    assert!(
        text(&by_address).contains("To: bo@example.com")
            && text(&by_address).contains("Subject: Hello, there!")
    );

    let shop = Shop::sqlite(&Redis::start());
    let id = shop.ruby(r#"puts User.create!(email: "cy@example.com", name: "Cy").id"#);
    let gid = format!(r#"["gid://shop/User/{id}"]"#);
    let database = &shop.runner_database;
    let by_gid = runner(&[
        "try",
        path(wasm),
        "--class",
        class,
        "--database",
        database,
        "--args",
        &gid,
        "--compile-timeout",
        "120",
    ]);
    assert_eq!(by_gid.status.code(), Some(0), "{}", text(&by_gid));
    assert!(text(&by_gid).contains("To: cy@example.com") && text(&by_gid).contains("Subject: Hello, Cy!"));
}

#[test]
fn a_new_javascript_plugin_builds_as_is_and_reads_a_user_by_global_id() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = scaffold_and_build(dir.path(), "hello_js", "js");
    tries_a_user_by_global_id(&wasm, "HelloJsJob");
}

#[test]
fn a_new_python_plugin_builds_as_is_and_reads_a_user_by_global_id() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = scaffold_and_build(dir.path(), "hello_py", "python");
    tries_a_user_by_global_id(&wasm, "HelloPyJob");
}
