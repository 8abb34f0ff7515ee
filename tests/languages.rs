//! Plugins in other languages than Rust, performing a Rails app's jobs as
//! the app enqueues them (`scripts/shop/app.rb`): `signup_digest` in
//! JavaScript (componentize-js) and `password_reset` in Python
//! (componentize-py), each reading users by GlobalID from the app's
//! database, and their mail arriving at a real SMTP server; and both
//! compiled by the baseline compiler (`--compiler winch`), which loads
//! them about 4 times faster.

use jobrunner_tests::{Mail, Redis, Runner, RunnerOptions, Shop, SmtpSink, WAIT, eventually, job_json};
use serde_json::{Value, json};

/// A runner with `plugin`, reading the shop's database, once the plugin is
/// loaded. Compiling an interpreter uncached takes 15 to 40 s on 2 busy
/// cores (more than the default `--compile-timeout`), and is not what
/// these tests time.
fn runner(redis: &Redis, smtp: &SmtpSink, shop: &Shop, plugin: &'static str) -> Runner {
    let options = RunnerOptions::plugins(&[plugin]).args(&[
        "--database",
        &shop.runner_database,
        "--compile-timeout",
        "300",
    ]);
    let runner = Runner::start(&redis.url, &smtp.url, options);
    let file = format!("{plugin}.wasm");
    eventually(&format!("{file} loaded"), std::time::Duration::from_secs(300), || {
        runner.logs().lines().any(|line| line.contains("plugin loaded") && line.contains(&file)).then_some(())
    });
    runner
}

/// The HTML part of `mail`, its quoted-printable soft line breaks undone.
fn html_part(mail: &Mail) -> String {
    let at =
        mail.raw.find("Content-Type: text/html").unwrap_or_else(|| panic!("no HTML part in {}", mail.raw));
    mail.raw[at..].replace("=\r\n", "").replace("=\n", "")
}

#[test]
fn the_javascript_plugin_mails_a_signup_digest_of_users_found_by_global_id() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let running = runner(&redis, &smtp, &shop, "signup_digest");
    // A user deleted after signing up is left out, as the app would.
    shop.ruby(
        r#"users = [User.create!(email: "ann@example.com", name: "Ann <Admin>"),
                    User.create!(email: "bo@example.com", name: "Bo")]
           gone = User.create!(email: "cy@example.com", name: "Cy").destroy
           SignupDigestJob.perform_later("team@shop.example", users + [gone])"#,
    );
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["team@shop.example"]);
    assert_eq!(mail.subject, "Signup digest: 2 new signups");
    assert!(mail.body.contains("- Ann <Admin> <ann@example.com>\n- Bo <bo@example.com>"), "{}", mail.body);
    let html = html_part(&mail);
    assert!(html.contains("<td>Ann &#60;Admin&#62;</td><td>ann@example.com</td>"), "escaped in HTML: {html}");
    assert!(!mail.raw.contains("cy@example.com"), "the deleted user is left out: {}", mail.raw);
    running.wait_for_log(&["WARN", "gid://shop/User/3 is gone; left out of the digest"], 1);
}

#[test]
fn the_python_plugin_mails_a_password_reset_to_a_user_found_by_global_id() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let shop = Shop::sqlite(&redis);
    let _running = runner(&redis, &smtp, &shop, "password_reset");
    shop.ruby(
        r#"PasswordResetJob.perform_later(User.create!(email: "dee@example.com", name: "Dee"), "t0k3n")"#,
    );
    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["dee@example.com"]);
    assert_eq!(mail.subject, "Reset your password");
    assert!(mail.body.contains("https://shop.example/password/reset?token=t0k3n"), "{}", mail.body);
}

#[test]
fn with_the_baseline_compiler_both_deliver_mail_and_guests_still_stop_at_their_time_limit() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let options = RunnerOptions::plugins(&["password_reset", "signup_digest", "misbehave"]).args(&[
        "--compiler",
        "winch",
        "--timeout",
        "1",
    ]);
    let running = Runner::start(&redis.url, &smtp.url, options);
    for plugin in ["password_reset", "signup_digest", "misbehave"] {
        running.wait_for_log(
            &["plugin loaded", &format!("{plugin}.wasm"), "code=compiled", "compiler=winch"],
            1,
        );
    }
    let reset = json!([{"email": "ann@example.com", "token": "t0k3n"}]);
    redis.push("default", &job_json("PasswordResetJob", reset, "aaaaaaaaaaaaaaaaaaaaaaa1"));
    let digest = json!(["team@shop.example", [{"name": "Bo", "email": "bo@example.com"}]]);
    redis.push("default", &job_json("SignupDigestJob", digest, "aaaaaaaaaaaaaaaaaaaaaaa2"));
    let mut spin: Value =
        serde_json::from_str(&job_json("SpinJob", json!([]), "aaaaaaaaaaaaaaaaaaaaaaa3")).unwrap();
    spin["retry"] = json!(0);
    redis.push("default", &spin.to_string());
    let mut subjects: Vec<String> = smtp.wait_for(2).into_iter().map(|m| m.subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["Reset your password", "Signup digest: 1 new signup"]);
    let dead = eventually("the spinning job in the dead set", WAIT, || redis.sorted_set("dead").pop());
    assert!(dead["error_message"].as_str().unwrap_or_default().contains("timed out after 1s"), "{dead}");
}

#[test]
fn code_the_baseline_compiler_cached_is_compiled_again_by_cranelift_and_reused_by_winch() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let start = |compiler: &str| {
        let options =
            RunnerOptions::plugins(&["misbehave"]).args(&["--compiler", compiler, "--cache-dir", cache_dir]);
        Runner::start(&redis.url, &smtp.url, options)
    };
    let loaded = |runner: &Runner, code: &str, compiler: &str| {
        let parts: [&str; 4] =
            ["plugin loaded", "misbehave.wasm", &format!("code={code}"), &format!("compiler={compiler}")];
        runner.wait_for_log(&parts, 1);
    };
    let winch = start("winch");
    loaded(&winch, "compiled", "winch");
    drop(winch);
    // Same file, same cache: Cranelift's code is its own, never winch's.
    let cranelift = start("cranelift");
    loaded(&cranelift, "compiled", "cranelift");
    drop(cranelift);
    let again = start("winch");
    loaded(&again, "cache", "winch");
    redis.push(
        "default",
        &job_json(
            "EchoJob",
            json!(["ops@example.com", "from cached winch code"]),
            "aaaaaaaaaaaaaaaaaaaaaaa4",
        ),
    );
    assert_eq!(smtp.wait_for(1)[0].subject, "from cached winch code");
}
