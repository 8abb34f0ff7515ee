//! An S3-compatible server for the tests: `s3s-fs` (built by
//! `scripts/test` into `target/tools/`) on a free port, keeping each
//! bucket as a folder of its temp directory, so a test sees an object as
//! the file `root/BUCKET/KEY`.

use crate::{WAIT, eventually, free_port, repo_root};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// The credentials the server takes.
pub const S3_ACCESS_KEY: &str = "runner-test-key";
pub const S3_SECRET_KEY: &str = "runner-test-secret";

/// A running server with one bucket.
pub struct S3Server {
    child: Child,
    dir: TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    /// Starts the server with an empty `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().expect("creating the S3 server's temp dir");
        std::fs::create_dir(dir.path().join(bucket)).expect("creating the bucket");
        let port = free_port();
        let binary = repo_root().join("target/tools/bin/s3s-fs");
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {} (scripts/test builds it): {err}", binary.display()));
        eventually("s3s-fs to accept connections", WAIT, || TcpStream::connect(("127.0.0.1", port)).ok());
        S3Server { child, dir, endpoint: format!("http://127.0.0.1:{port}"), bucket: bucket.to_string() }
    }

    /// Where the server keeps the object `key`.
    pub fn stored(&self, key: &str) -> PathBuf {
        self.dir.path().join(&self.bucket).join(key)
    }

    /// What a client needs in its environment, as the AWS SDKs read it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_string()),
            ("S3_ENDPOINT", self.endpoint.clone()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
