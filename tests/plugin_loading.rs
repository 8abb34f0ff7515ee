//! Loading plugins never lets one file hold back or starve the others:
//! each serves as soon as it is ready, compiling is bounded in time and
//! memory, and a component needing more than an instance may have is
//! refused at load with the reason.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, job_json, plugin_wasm, runner_bin};
use serde_json::json;
use std::time::Duration;

fn welcome(jid: &str, to: &str) -> String {
    job_json("WelcomeMailJob", json!([to, "Ann"]), jid)
}

/// The position in the log of the first line with all of `parts`.
fn line_of(logs: &str, parts: &[&str]) -> Option<usize> {
    logs.lines().position(|line| parts.iter().all(|p| line.contains(p)))
}

#[test]
fn a_plugin_stuck_in_describe_holds_back_no_other_at_start_up() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    redis.push("default", &welcome("c1c1c1c1c1c1c1c1c1c1c1c1", "ann@example.com"));
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "[classes]\nWelcomeMailJob = \"welcome_mail\"\n").unwrap();
    let options = RunnerOptions::plugins(&["slow_describe", "welcome_mail"])
        .args(&["--policy", policy.path().to_str().unwrap()]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    // slow_describe.wasm sorts first and takes 5 s to be refused.
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["ann@example.com"]);
    let logs = runner.logs();
    assert!(line_of(&logs, &["plugin refused", "slow_describe.wasm"]).is_none(), "the mail waited:\n{logs}");
    runner.wait_for_log(&["plugin refused", "slow_describe.wasm", "timed out"], 1);
}

#[test]
fn a_plugin_dropped_while_another_compiles_serves_at_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&[]));
    // The Python plugin takes seconds to compile; welcome_mail a fraction.
    std::fs::copy(plugin_wasm("password_reset"), runner.plugin_path("password_reset.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(500)); // its load begins first
    std::fs::copy(plugin_wasm("welcome_mail"), runner.plugin_path("welcome_mail.wasm")).unwrap();
    redis.push("default", &welcome("c2c2c2c2c2c2c2c2c2c2c2c2", "bo@example.com"));
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["bo@example.com"]);
    runner.wait_for_log(&["plugin loaded", "password_reset"], 1);
    let logs = runner.logs();
    let (python, welcome) = (
        line_of(&logs, &["plugin loaded", "password_reset"]).unwrap(),
        line_of(&logs, &["plugin loaded", "welcome_mail"]).unwrap(),
    );
    assert!(welcome < python, "welcome_mail waited for the compile:\n{logs}");
}

#[test]
fn compiling_is_bounded_in_time_and_memory() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    for (flag, value, reason) in [
        ("--compile-timeout", "1", "longer than the 1s allowed"),
        ("--compile-memory", "128", "more than the 128 MiB"),
    ] {
        let options = RunnerOptions::plugins(&["password_reset", "welcome_mail"]).args(&[flag, value]);
        let runner = Runner::start(&redis.url, &smtp.url, options);
        let refused = runner.wait_for_log(&["plugin refused", "password_reset.wasm"], 1);
        assert!(refused[0].contains(reason) && refused[0].contains(flag), "{refused:?}");
        runner.wait_for_log(&["plugin loaded", "welcome_mail"], 1);
    }
}

/// A component of `memories` core instances, each with one page of memory.
fn many_memories(memories: u32) -> Vec<u8> {
    use wasm_encoder::{
        Component, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    };
    let mut module = Module::new();
    let mut section = MemorySection::new();
    let page = MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None };
    section.memory(page);
    module.section(&section);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    let mut instances = InstanceSection::new();
    for _ in 0..memories {
        instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    }
    component.section(&instances);
    component.finish()
}

#[test]
fn a_component_with_more_memories_than_an_instance_may_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memories.wasm");
    std::fs::write(&file, many_memories(36)).unwrap();
    let check = std::process::Command::new(runner_bin()).arg("check").arg(&file).output().unwrap();
    let said = String::from_utf8_lossy(&check.stderr).into_owned() + &String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success() && said.contains("36 Wasm linear memories"), "{said}");

    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["welcome_mail"]));
    std::fs::write(runner.plugin_path("memories.wasm"), many_memories(36)).unwrap();
    let refused = runner.wait_for_log(&["plugin refused", "memories.wasm"], 1);
    assert!(refused[0].contains("maximum of 4"), "{refused:?}");
    redis.push("default", &welcome("c3c3c3c3c3c3c3c3c3c3c3c3", "cy@example.com"));
    assert_eq!(smtp.wait_for(1)[0].rcpt, ["cy@example.com"]);
}

#[test]
fn runner_check_and_try_take_the_same_compile_bounds() {
    let python = plugin_wasm("password_reset");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(runner_bin()).args(args).output().unwrap();
        let said =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        (output.status.code(), said)
    };
    let file = python.to_str().unwrap();
    let (code, said) = run(&["check", file, "--compile-memory", "64"]);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("needed more than the 64 MiB allowed (--compile-memory)"), "{said}");
    let (code, said) = run(&["try", file, "--class", "PasswordResetJob", "--compile-timeout", "0.05"]);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("took longer than the 0.05s allowed (--compile-timeout)"), "{said}");
}
