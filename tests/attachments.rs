//! Mail with attachments (`send-mail-with-attachments`), read as a mail
//! client reads it, with Python's `email` package: text and binary files
//! arrive byte for byte, an inline image sits in multipart/related with
//! the HTML that shows it by Content-ID, a stored file is attached from
//! its service, and one too big for the message is refused naming the cap
//! (Disk) or linked by a URL that fetches it (S3).

use jobrunner_tests::{
    Redis, Runner, RunnerOptions, S3Server, SmtpSink, WAIT, eventually, job_json, python_json,
};
use serde_json::{Value, json};
use std::path::PathBuf;

/// What the `attach` plugin may do: read every service, mail up to 1 MiB.
const POLICY: &str = "[plugins.attach]\nblobs = { read = true }\nmax_message_bytes = 1048576\n";

/// Every part of a mail on stdin: type, file name, Content-ID, its
/// parent's type, and its decoded bytes in hex (text parts as text).
const READ_PARTS: &str = r#"
import email, json, sys
from email import policy
message = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
parts = []
def walk(part, parent):
    if part.is_multipart():
        for child in part.iter_parts():
            walk(child, part.get_content_type())
        return
    payload = part.get_payload(decode=True)
    parts.append({"type": part.get_content_type(), "filename": part.get_filename(),
        "content_id": part["Content-ID"], "parent": parent, "hex": payload.hex(),
        "text": payload.decode("utf-8", "replace")})
walk(message, None)
print(json.dumps({"type": message.get_content_type(), "parts": parts}))
"#;

/// The parts of `mail`, as [`READ_PARTS`] prints them.
fn parts(mail: &jobrunner_tests::Mail) -> Value {
    python_json(READ_PARTS, mail.raw.as_bytes())
}

/// The part named `filename`.
fn part<'a>(mail: &'a Value, filename: &str) -> &'a Value {
    let parts = mail["parts"].as_array().unwrap();
    parts.iter().find(|p| p["filename"] == filename).unwrap_or_else(|| panic!("no {filename} in {mail}"))
}

/// A storage.yml with a Disk service `local` under `dir`, and `amazon` on
/// the S3 server when there is one; the runner's flags for it.
fn runner(redis: &Redis, smtp: &SmtpSink, dir: &tempfile::TempDir, s3: Option<&S3Server>) -> Runner {
    let mut yml = format!("local:\n  service: Disk\n  root: {}\n", dir.path().join("files").display());
    if let Some(s3) = s3 {
        yml.push_str(&format!(
            "amazon:\n  service: S3\n  region: us-east-1\n  bucket: {}\n  endpoint: {}\n  force_path_style: true\n",
            s3.bucket, s3.endpoint
        ));
    }
    std::fs::write(dir.path().join("storage.yml"), yml).unwrap();
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    let (config, policy) = (dir.path().join("storage.yml"), dir.path().join("policy.toml"));
    let mut options = RunnerOptions::plugins(&["attach"]).args(&[
        "--storage-config",
        config.to_str().unwrap(),
        "--storage-service",
        "local",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    for (name, value) in s3.map(S3Server::env).unwrap_or_default() {
        options = options.env(name, &value);
    }
    Runner::start(&redis.url, &smtp.url, options)
}

/// Where the Disk service keeps `key`, as Rails lays it out.
fn on_disk(dir: &tempfile::TempDir, key: &str) -> PathBuf {
    let path = dir.path().join("files").join(&key[0..2]).join(&key[2..4]).join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

/// The mail with `subject`, once it has arrived whole.
fn mail_titled(smtp: &SmtpSink, subject: &str) -> jobrunner_tests::Mail {
    eventually(subject, WAIT, || smtp.messages().into_iter().find(|m| m.subject == subject))
}

/// The dead set's error message for job `jid`, once it is there.
fn dead_error(redis: &Redis, jid: &str) -> String {
    let dead = eventually("the job in the dead set", WAIT, || {
        redis.sorted_set("dead").into_iter().find(|job| job["jid"] == jid)
    });
    dead["error_message"].as_str().unwrap().to_string()
}

#[test]
fn text_binary_and_inline_parts_arrive_byte_for_byte() {
    let (redis, smtp, dir) = (Redis::start(), SmtpSink::start(), tempfile::tempdir().unwrap());
    let _runner = runner(&redis, &smtp, &dir, None);
    redis.push(
        "default",
        &job_json("AttachJob", json!(["files", "ann@example.com"]), "a77a77a77a77a77a77a77a77"),
    );
    let mail = parts(&mail_titled(&smtp, "Attachments: files"));
    assert_eq!(mail["type"], "multipart/mixed", "{mail}");
    let notes = part(&mail, "notes.txt");
    assert_eq!(
        (notes["type"].as_str(), notes["text"].as_str()),
        (Some("text/plain"), Some("line one\nline two\n"))
    );
    let binary: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
    assert_eq!(part(&mail, "bytes.bin")["hex"], binary);
    let logo = part(&mail, "logo.png");
    assert_eq!(
        (logo["content_id"].as_str(), logo["parent"].as_str()),
        (Some("<logo>"), Some("multipart/related"))
    );
    assert_eq!(logo["hex"], hex(b"\x89PNG\r\n\x1a\n not really a picture"));
    let parts = mail["parts"].as_array().unwrap();
    let html = parts.iter().find(|p| p["type"] == "text/html").expect("the HTML body");
    assert!(html["text"].as_str().unwrap().contains("cid:logo") && html["parent"] == "multipart/related");
}

#[test]
fn a_stored_file_is_attached_and_one_over_the_message_cap_is_refused_naming_it() {
    let (redis, smtp, dir) = (Redis::start(), SmtpSink::start(), tempfile::tempdir().unwrap());
    let _runner = runner(&redis, &smtp, &dir, None);
    std::fs::write(on_disk(&dir, "reportkey1"), "id,total\n1,7.50\n").unwrap();
    std::fs::write(on_disk(&dir, "bigreport1"), vec![b'x'; 2 << 20]).unwrap();
    let blob =
        |key: &str, jid: &str| job_json("AttachJob", json!(["blob", "ann@example.com", "local", key]), jid);
    redis.push("default", &blob("reportkey1", "b10b10b10b10b10b10b10b10"));
    let mail = parts(&mail_titled(&smtp, "Attachments: blob"));
    assert_eq!(part(&mail, "report.csv")["text"], "id,total\n1,7.50\n");

    // 2 MiB on Disk, with 1 MiB allowed and no URL to link: refused for good.
    redis.push("default", &blob("bigreport1", "b16b16b16b16b16b16b16b16"));
    let error = dead_error(&redis, "b16b16b16b16b16b16b16b16");
    assert!(error.contains("report.csv") && error.contains("max_message_bytes"), "{error}");
    // 2 MiB of bytes in the message itself: a policy violation.
    redis.push(
        "default",
        &job_json("AttachJob", json!(["big", "ann@example.com"]), "b19b19b19b19b19b19b19b19"),
    );
    let error = dead_error(&redis, "b19b19b19b19b19b19b19b19");
    assert!(error.contains("max_message_bytes"), "{error}");
    assert_eq!(smtp.count(), 1, "nothing over the cap went out");
}

#[test]
fn a_stored_file_too_big_for_the_message_is_linked_from_s3() {
    let (redis, smtp, dir, s3) =
        (Redis::start(), SmtpSink::start(), tempfile::tempdir().unwrap(), S3Server::start("exports"));
    let _runner = runner(&redis, &smtp, &dir, Some(&s3));
    let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(s3.stored("bigreport2"), &big).unwrap();
    redis.push(
        "default",
        &job_json(
            "AttachJob",
            json!(["blob", "ann@example.com", "amazon", "bigreport2"]),
            "b2b2b2b2b2b2b2b2b2b2b2b2",
        ),
    );
    let mail = mail_titled(&smtp, "Attachments: blob");
    let mail = parts(&mail);
    let text = mail["parts"].as_array().unwrap().iter().find(|p| p["type"] == "text/plain").unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("Too large to attach; download within 7 days:"), "{text}");
    let url = text.lines().find_map(|l| l.strip_prefix("report.csv: ")).expect("a link").trim().to_string();
    assert!(url.starts_with(&s3.endpoint) && url.contains("X-Amz-Signature="), "{url}");
    let fetched =
        ureq::get(&url).call().unwrap().into_body().with_config().limit(8 << 20).read_to_vec().unwrap();
    assert!(fetched == big, "the link fetches the file");
    assert!(
        mail["parts"].as_array().unwrap().iter().all(|p| p["filename"] != "report.csv"),
        "linked, not attached"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
