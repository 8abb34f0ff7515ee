//! Python 3 as a second opinion: a test hands a mail or a file to
//! Python's own `email`, `gzip` and `csv` packages, so what the runner
//! produced is read by code that isn't ours.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the Python `script` with `input` on its stdin and returns the JSON
/// it prints; fails the test, with Python's error, if it fails.
pub fn python_json(script: &str, input: &[u8]) -> serde_json::Value {
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting python3");
    python.stdin.take().expect("python's stdin").write_all(input).expect("writing to python");
    let output = python.wait_with_output().expect("waiting for python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}
