//! The benchmark's rows per language: the same kind of job, a mail, by a
//! plugin in Rust (`order_created`), Python (`password_reset`,
//! componentize-py) and JavaScript (`signup_digest`, componentize-js).
//! For each: its first load (compiling) and a load from the code cache,
//! the cost of one job in a fresh instance and in one reused under the
//! policy's `reuse = 100` (both from `runner measure-sandbox`, mail
//! captured), the first load and a fresh job with the baseline compiler
//! (`--compiler winch`), and a drain of mail jobs through smtp-sink.

use super::{drain, print_drain};
use jobrunner_tests::{plugin_wasm, runner_bin};
use serde_json::{Value, json};

/// The plugins, by language.
pub const PLUGINS: [(&str, &str); 3] =
    [("Rust", "order_created"), ("Python", "password_reset"), ("JavaScript", "signup_digest")];

/// The class a mail plugin handles and the arguments of its job `i`.
pub fn mail_job(plugin: &str, i: usize) -> Option<(&'static str, Value)> {
    Some(match plugin {
        "order_created" => ("OrderCreateJob", json!([i, format!("buyer{i}@example.com")])),
        "password_reset" => (
            "PasswordResetJob",
            json!([{"email": format!("buyer{i}@example.com"), "token": format!("t{i}")}]),
        ),
        "signup_digest" => (
            "SignupDigestJob",
            json!(["team@example.com", [{"name": "Ann", "email": "ann@example.com"},
                                        {"name": format!("User {i}"), "email": format!("user{i}@example.com")}]]),
        ),
        _ => return None,
    })
}

/// One run of `runner measure-sandbox` on `plugin`, with `extra` options.
fn measure(plugin: &str, iterations: usize, extra: &[&str]) -> String {
    let (class, args) = mail_job(plugin, 1).expect("a mail plugin");
    let output = std::process::Command::new(runner_bin())
        .args(["measure-sandbox", plugin_wasm(plugin).to_str().unwrap(), "--class", class])
        .args(["--args", &args.to_string(), "--iterations", &iterations.to_string()])
        .args(extra)
        .output()
        .expect("running runner measure-sandbox");
    assert!(output.status.success(), "measure-sandbox {plugin}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of `key=` in `text`.
fn field(text: &str, key: &str) -> String {
    let at = text.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {text}"));
    text[at + key.len() + 1..].split_whitespace().next().unwrap_or_default().to_string()
}

/// Prints the table, draining `jobs` mails per plugin at `concurrency`.
pub fn run(jobs: usize, concurrency: u16) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let policy = dir.path().join("reuse.toml");
    let sections: String = PLUGINS.iter().map(|(_, p)| format!("[plugins.{p}]\nreuse = 100\n")).collect();
    std::fs::write(&policy, sections).expect("writing the reuse policy");
    println!(
        "{:<28} {:>11} {:>12} {:>18} {:>18} {:>24}",
        "mail plugin",
        "first load",
        "cached load",
        "fresh instance/job",
        "reuse = 100/job",
        "winch: first load, job"
    );
    for (language, plugin) in PLUGINS {
        let cache = dir.path().join(format!("cache-{plugin}"));
        let fresh = measure(plugin, 2000, &["--cache-dir", cache.to_str().unwrap()]);
        let reused = measure(plugin, 2000, &["--policy", policy.to_str().unwrap()]);
        let winch_cache = dir.path().join(format!("winch-{plugin}"));
        let winch =
            measure(plugin, 2000, &["--compiler", "winch", "--cache-dir", winch_cache.to_str().unwrap()]);
        let seconds = |text: &str| field(text, "first_ms").parse::<f64>().unwrap() / 1000.0;
        println!(
            "{:<28} {:>9.2} s {:>9} ms {:>15} µs {:>15} µs {:>9.2} s, {:>8} µs",
            format!("{plugin} ({language})"),
            seconds(&fresh),
            field(&fresh, "cached_ms"),
            field(&fresh, "p50_us"),
            field(&reused, "p50_us"),
            seconds(&winch),
            field(&winch, "p50_us"),
        );
    }
    println!();
    for (language, plugin) in PLUGINS {
        let d = drain(plugin, jobs, concurrency);
        print_drain(&format!("{jobs} {plugin} ({language}), c {concurrency}"), jobs, &d);
    }
}
