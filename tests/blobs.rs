//! Stored files through `blobs`: a plugin reads, writes and deletes the
//! files of an app's Disk service, laid out as Rails lays them out, only as
//! far as its policy grants, and never outside the service.

use jobrunner_tests::{Redis, Runner, RunnerOptions, SmtpSink, WAIT, eventually, job_json};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const KEY: &str = "xtapjjcjiudrlk3tmwyjgpuobabd";

/// An app whose `config/storage.yml` is the one `rails new` writes, with
/// one file stored under `KEY`, and a policy file.
struct App {
    dir: tempfile::TempDir,
}

impl App {
    fn new(policy: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/storage.yml"),
            "test:\n  service: Disk\n  root: <%= Rails.root.join(\"tmp/storage\") %>\n\n\
             local:\n  service: Disk\n  root: <%= Rails.root.join(\"storage\") %>\n\n\
             # amazon:\n#   service: S3\n\
             #   access_key_id: <%= Rails.application.credentials.dig(:aws, :access_key_id) %>\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        let app = App { dir };
        std::fs::create_dir_all(app.stored(KEY).parent().unwrap()).unwrap();
        std::fs::write(app.stored(KEY), b"hello, blob").unwrap();
        app
    }

    /// Where Rails' Disk service keeps `key`.
    fn stored(&self, key: &str) -> PathBuf {
        self.dir.path().join("storage").join(&key[..2]).join(&key[2..4]).join(key)
    }

    fn runner(&self, redis: &Redis, smtp: &SmtpSink) -> Runner {
        let root = self.dir.path();
        let (config, policy) = (root.join("config/storage.yml"), root.join("policy.toml"));
        let args =
            ["--storage-config", path(&config), "--storage-service", "local", "--policy", path(&policy)];
        Runner::start(&redis.url, &smtp.url, RunnerOptions::plugins(&["misbehave"]).args(&args))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dead_with(redis: &Redis, jid: &str) -> Value {
    eventually(&format!("{jid} in the dead set"), WAIT, || {
        redis.sorted_set("dead").into_iter().find(|job| job["jid"] == jid)
    })
}

#[test]
fn a_plugin_reads_writes_and_deletes_the_files_of_an_apps_disk_service() {
    let app = App::new("[plugins.misbehave.blobs]\nwrite = true\ndelete = true\n");
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let _runner = app.runner(&redis, &smtp);
    let variant = format!("variants/{KEY}/reversed");
    redis.push("default", &job_json("BlobReverseJob", json!(["", KEY, variant]), "b10b00000000000000000001"));

    let written = eventually("the reversed file", WAIT, || std::fs::read(app.stored(&variant)).ok());
    assert_eq!(written, b"bolb ,olleh");
    eventually("the original deleted", WAIT, || (!app.stored(KEY).exists()).then_some(()));
    let leftovers: Vec<_> = std::fs::read_dir(app.stored(&variant).parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left beside it");
}

#[test]
fn writes_without_a_grant_and_keys_outside_the_service_end_the_job_untouched() {
    let app = App::new("[plugins.misbehave.blobs]\nservices = [\"local\"]\n");
    let (redis, smtp) = (Redis::start(), SmtpSink::start());
    let runner = app.runner(&redis, &smtp);
    redis.push(
        "default",
        &job_json("BlobReverseJob", json!(["", KEY, "copy0000"]), "b10b00000000000000000002"),
    );
    let denied = dead_with(&redis, "b10b00000000000000000002");
    let message = denied["error_message"].as_str().unwrap();
    assert!(message.contains("plugin misbehave may not write stored files in local"), "{message}");
    assert!(!app.stored("copy0000").exists() && app.stored(KEY).exists(), "nothing written or deleted");
    runner.wait_for_log(&["blob call denied by the policy", "b10b00000000000000000002"], 1);

    let escape = "../../config/storage.yml";
    redis.push(
        "default",
        &job_json("BlobReverseJob", json!(["", escape, "x0000000"]), "b10b00000000000000000003"),
    );
    let refused = dead_with(&redis, "b10b00000000000000000003");
    let message = refused["error_message"].as_str().unwrap();
    assert!(message.contains("invalid blob key") && message.contains("`..`"), "{message}");

    redis.push(
        "default",
        &job_json("BlobReverseJob", json!(["test", KEY, "x0000000"]), "b10b00000000000000000004"),
    );
    let other = dead_with(&redis, "b10b00000000000000000004");
    let message = other["error_message"].as_str().unwrap();
    assert!(message.contains("may not use storage service test"), "{message}");
}
