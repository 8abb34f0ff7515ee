//! The two shipped plugins deliver their mail through a real SMTP server,
//! and the mail server's answers become the right job outcomes.

use jobrunner_tests::{Certs, Redis, Runner, RunnerOptions, SmtpSink, TlsSmtp, WAIT, eventually, runner_bin};
use serde_json::json;
use std::process::Command;

fn job(class: &str, args: serde_json::Value) -> String {
    json!({"class": class, "args": args, "jid": "b4a577edbccf1d805744efa9", "queue": "default",
           "retry": true, "created_at": 1795440397.24, "enqueued_at": 1795440397.24})
    .to_string()
}

#[test]
fn order_confirmation_lists_items_and_total() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let args = json!([{"id": 42, "email": "buyer@example.com", "name": "Ann",
                       "items": [{"name": "Tea", "quantity": 2, "price": "3.50"}], "total": "7.00"}]);
    redis.push("default", &job("OrderCreateJob", args));

    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["buyer@example.com"]);
    assert!(mail.subject.contains("#42"), "subject: {}", mail.subject);
    assert!(mail.raw.contains("From: Shop <shop@example.com>"), "{}", mail.raw);
    assert!(mail.body.contains("Hello Ann"), "{}", mail.body);
    assert!(mail.body.contains("2 x Tea at 3.50"), "{}", mail.body);
    assert!(mail.body.contains("Total: 7.00"), "{}", mail.body);
}

/// MAIL, RCPT and DATA go out together only to a server that offers
/// PIPELINING; one that doesn't gets them one at a time, and every mail.
#[test]
fn a_server_that_offers_no_pipelining_gets_every_mail_once() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start_with(&["-p"]));
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    for id in 0..20 {
        let args = json!([id, format!("buyer{id}@example.com")]);
        redis.push("default", &jobrunner_tests::job_json("OrderCreateJob", args, &format!("order-{id}")));
    }
    let mut to: Vec<String> = smtp.wait_for(20).into_iter().flat_map(|mail| mail.rcpt).collect();
    to.sort();
    let mut expected: Vec<String> = (0..20).map(|id| format!("buyer{id}@example.com")).collect();
    expected.sort();
    assert_eq!(to, expected);
}

#[test]
fn welcome_mail_greets_by_name_from_positional_args() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("mailers", &job("WelcomeMailJob", json!(["new@example.com", "Ann"])));

    let mail = smtp.wait_for(1).remove(0);
    assert_eq!(mail.rcpt, ["new@example.com"]);
    assert!(mail.subject.contains("Welcome"), "subject: {}", mail.subject);
    assert!(mail.body.contains("Hello Ann"), "{}", mail.body);
}

#[test]
fn enqueue_command_pushes_a_job_that_runs() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    let output = Command::new(runner_bin())
        .args(["enqueue", "OrderCreateJob", r#"[7, "buyer@example.com"]"#, "--redis", &redis.url])
        .output()
        .expect("running runner enqueue");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let jid = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(jid.len(), 24, "jid {jid:?}");

    let mail = smtp.wait_for(1).remove(0);
    assert!(mail.subject.contains("#7"), "subject: {}", mail.subject);
}

/// Runs `payload` against a runner mailing through `smtp_url` and returns
/// the entry it leaves in the sorted set `set`.
fn failure_recorded(smtp_url: &str, payload: String, set: &str) -> serde_json::Value {
    let redis = Redis::start();
    let _runner = Runner::start(&redis.url, smtp_url, RunnerOptions::default());
    redis.push("default", &payload);
    eventually(&format!("the job in the {set} set"), WAIT, || redis.sorted_set(set).pop())
}

#[test]
fn smtp_rejection_is_a_permanent_failure() {
    let rejecting = SmtpSink::start_with(&["-f", "RCPT"]);
    let dead =
        failure_recorded(&rejecting.url, job("OrderCreateJob", json!([1, "buyer@example.com"])), "dead");
    assert_eq!(dead["error_class"], "PermanentError");
    assert!(dead["error_message"].as_str().unwrap().contains("mail rejected"), "{dead}");
}

#[test]
fn temporary_smtp_failures_are_retried() {
    let deferring = SmtpSink::start_with(&["-r", "RCPT"]);
    let retry =
        failure_recorded(&deferring.url, job("OrderCreateJob", json!([1, "buyer@example.com"])), "retry");
    assert_eq!(retry["error_class"], "RetryableError");
    assert!(retry["error_message"].as_str().unwrap().contains("mail not sent"), "{retry}");
}

#[test]
fn an_unreachable_mail_server_is_retried() {
    let nowhere = format!("smtp://127.0.0.1:{}", jobrunner_tests::free_port());
    let retry = failure_recorded(&nowhere, job("WelcomeMailJob", json!(["new@example.com", "Ann"])), "retry");
    assert_eq!(retry["error_class"], "RetryableError");
    assert!(retry["error_message"].as_str().unwrap().contains("mail not sent"), "{retry}");
}

#[test]
fn bad_recipient_address_is_a_permanent_failure_naming_the_field() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::default());
    redis.push("default", &job("EchoJob", json!(["not an address", "hi"])));
    let dead = eventually("the job in the dead set", WAIT, || redis.sorted_set("dead").pop());
    let message = dead["error_message"].as_str().unwrap();
    assert!(message.contains("invalid mail") && message.contains("`to`"), "{message}");
    assert_eq!(smtp.count(), 0, "no file at all, parsed or not");
}

#[test]
fn cc_bcc_reply_to_and_html_arrive_as_sent_and_bcc_stays_hidden() {
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]));
    let args = json!(["to@example.com", "cc@example.com", "hidden@example.com", "replies@example.com"]);
    redis.push("default", &job("RichMailJob", args));
    let mail = smtp.wait_for(1).remove(0);
    let mut rcpt = mail.rcpt.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        ["cc@example.com", "hidden@example.com", "to@example.com"],
        "every recipient in the envelope"
    );
    // The header block, without smtp-sink's own record of the envelope.
    let headers: Vec<&str> = mail
        .raw
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("X-Rcpt-Args:"))
        .collect();
    assert!(headers.iter().any(|h| h.starts_with("Cc: cc@example.com")), "{headers:?}");
    assert!(headers.iter().any(|h| h.starts_with("Reply-To: replies@example.com")), "{headers:?}");
    assert!(!headers.iter().any(|h| h.to_lowercase().starts_with("bcc")), "a Bcc header: {headers:?}");
    assert!(!headers.iter().any(|h| h.contains("hidden@")), "the bcc recipient shows: {headers:?}");
    assert!(mail.raw.contains("multipart/alternative"), "{}", mail.raw);
    assert!(
        mail.body.contains("plain text") && mail.body.contains("<p>html <b>body</b></p>"),
        "{}",
        mail.body
    );
}

/// `mailer` / `s3cret p@ss`, as AUTH PLAIN sends them (base64 of
/// "\0mailer\0s3cret p@ss").
const AUTH_PLAIN: &str = "AUTH PLAIN AG1haWxlcgBzM2NyZXQgcEBzcw==";

#[test]
fn smtps_and_starttls_deliver_with_auth_and_a_checked_certificate() {
    let certs = Certs::generate();
    let (redis, tls) = (Redis::start(), TlsSmtp::start(&certs));
    let ca = certs.path("ca.crt").display().to_string();
    let urls = [
        ("implicit", format!("smtps://mailer:s3cret%20p%40ss@127.0.0.1:{}", tls.implicit_port)),
        ("starttls", format!("smtp://mailer:s3cret%20p%40ss@127.0.0.1:{}?tls=required", tls.starttls_port)),
    ];
    for (i, (name, url)) in urls.iter().enumerate() {
        let options = RunnerOptions::plugins(&["welcome_mail"]).args(&["--smtp-ca", &ca]);
        let runner = Runner::start(&redis.url, url, options);
        redis.push("mailers", &job("WelcomeMailJob", json!([format!("{name}@example.com"), name])));
        let rcpt = [format!("{name}@example.com")];
        let mails = tls.sink.wait_for(i + 1);
        let mail = mails.iter().find(|m| m.rcpt == rcpt).expect("the mail for this URL");
        assert!(mail.body.contains(&format!("Hello {name}")), "{}", mail.body);
        assert!(!runner.logs().contains("s3cret"), "the password shows in the log");
        // Recorded before the runner goes: both jobs share a jid, and one
        // left in progress would be run again beside the next.
        eventually("the job recorded as done", WAIT, || {
            (redis.query::<Option<u64>>(&["GET", "stat:processed"]) == Some(i as u64 + 1)).then_some(())
        });
    }
    let commands = tls.commands();
    assert_eq!(
        commands.matches(AUTH_PLAIN).count(),
        2,
        "both logged in with the URL's credentials:\n{commands}"
    );
    let tls_log = tls.tls_log();
    for service in ["implicit", "starttls"] {
        assert!(
            tls_log.contains(&format!("Service [{service}] accepted connection")),
            "{service}:\n{tls_log}"
        );
    }
}

#[test]
fn a_server_certificate_from_an_untrusted_ca_sends_nothing_and_the_job_retries() {
    let certs = Certs::generate();
    let (redis, tls) = (Redis::start(), TlsSmtp::start(&certs));
    for url in [
        format!("smtps://mailer:s3cret%20p%40ss@127.0.0.1:{}", tls.implicit_port),
        format!("smtp://mailer:s3cret%20p%40ss@127.0.0.1:{}", tls.starttls_port),
    ] {
        let _: i64 = redis.query(&["DEL", "retry"]);
        let _runner = Runner::start(&redis.url, &url, RunnerOptions::plugins(&["welcome_mail"]));
        redis.push("mailers", &job("WelcomeMailJob", json!(["new@example.com", "Ann"])));
        let retry = eventually("the job in the retry set", WAIT, || redis.sorted_set("retry").pop());
        let error = retry["error_message"].as_str().unwrap_or_default();
        assert!(error.contains("certificate"), "{url}: {error}");
    }
    assert_eq!(tls.sink.count(), 0, "no mail went past an unchecked certificate");
    assert!(!tls.commands().contains("AUTH"), "the credentials were never sent");
}

#[test]
fn without_smtp_each_mail_is_one_file_in_the_outbox_and_a_rerun_writes_none_again() {
    let redis = Redis::start();
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().join("mail");
    let options = RunnerOptions::plugins(&["misbehave"]).args(&["--outbox", dir.to_str().unwrap()]);
    let runner = Runner::start(&redis.url, "", options);
    runner.wait_for_log(&["outbox"], 1);
    let files = || -> Vec<String> {
        let mut texts: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
            .unwrap_or_default();
        texts.sort();
        texts
    };
    // Mails, then fails once: the retry finds the mail in the ledger.
    redis.push("default", &job("MailThenFailJob", json!(["ops@example.com", "to the outbox"])));
    let retry = eventually("the first run failed", WAIT, || redis.sorted_set("retry").pop());
    assert_eq!(retry["retry_count"], 0, "{retry}");
    let written = files();
    assert_eq!(written.len(), 1, "one file: {written:?}");
    assert!(written[0].contains("Subject: to the outbox"), "{}", written[0]);
    assert!(written[0].contains("To: ops@example.com"), "{}", written[0]);

    let member: Vec<String> = redis.query(&["ZRANGE", "retry", "0", "0"]);
    let _: () = redis.query(&["ZADD", "retry", "0", &member[0]]);
    runner.wait_for_log(&["mail already sent by an earlier run", "b4a577edbccf1d805744efa9"], 1);
    eventually("the job done", WAIT, || {
        (redis.sorted_set("retry").is_empty() && redis.inprogress_jobs() == 0).then_some(())
    });
    assert_eq!(files().len(), 1, "the rerun wrote no second file");
}
