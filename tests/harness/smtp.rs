//! Postfix's `smtp-sink`, a real SMTP server that writes each message it
//! accepts to a file, and reading those messages back.

use crate::{WAIT, eventually, free_port};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A running smtp-sink, stopped when dropped.
pub struct SmtpSink {
    /// The server process.
    child: Child,
    /// Where messages are written.
    dir: TempDir,
    /// The port it listens on.
    port: u16,
    /// `smtp://127.0.0.1:<port>`.
    pub url: String,
}

/// One message as delivered.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients.
    pub rcpt: Vec<String>,
    /// The Subject header.
    pub subject: String,
    /// The Message-ID header.
    pub message_id: String,
    /// Everything after the headers.
    pub body: String,
    /// The whole file.
    pub raw: String,
}

impl SmtpSink {
    /// A sink that accepts everything.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(&[])
    }

    /// A sink with extra smtp-sink options, e.g. `["-f", "RCPT"]` to reject
    /// every recipient with a 5xx, `["-r", "RCPT"]` with a 4xx.
    pub fn start_with(options: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("creating smtp-sink's temp dir");
        let port = free_port();
        let child = spawn(port, &dir, options, Stdio::inherit());
        SmtpSink { child, dir, port, url: format!("smtp://127.0.0.1:{port}") }
    }

    /// A sink that writes every command it receives to `log` (`-v`), to
    /// see what a client said (AUTH, STARTTLS) besides the messages.
    pub fn start_logging(log: &std::path::Path) -> SmtpSink {
        let dir = tempfile::tempdir().expect("creating smtp-sink's temp dir");
        let port = free_port();
        let file = std::fs::File::create(log).expect("creating smtp-sink's log");
        let child = spawn(port, &dir, &["-v"], Stdio::from(file));
        SmtpSink { child, dir, port, url: format!("smtp://127.0.0.1:{port}") }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A sink that accepts everything and keeps nothing, for the benchmark:
    /// writing each message to a file would measure the disk, not the runner.
    pub fn start_discarding() -> SmtpSink {
        let dir = tempfile::tempdir().expect("creating smtp-sink's temp dir");
        let port = free_port();
        let child = Command::new(smtp_sink())
            .args(["-u", "root"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting smtp-sink (apt-get install postfix)");
        eventually("smtp-sink to accept connections", WAIT, || TcpStream::connect(("127.0.0.1", port)).ok());
        SmtpSink { child, dir, port, url: format!("smtp://127.0.0.1:{port}") }
    }

    /// Restarts the server on the same port and directory with other
    /// options, e.g. `[]` to start accepting after a spell of `-r RCPT`.
    pub fn restart_with(&mut self, options: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, &self.dir, options, Stdio::inherit());
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("listing smtp-sink's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).filter_map(|raw| parse(&raw)).collect()
    }

    /// How many messages have arrived, without reading them.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path()).expect("listing smtp-sink's directory").count()
    }

    /// Waits until `count` messages have arrived and returns them.
    pub fn wait_for(&self, count: usize) -> Vec<Mail> {
        eventually(&format!("{count} mails at smtp-sink"), crate::WAIT, || {
            let messages = self.messages();
            (messages.len() >= count).then_some(messages)
        })
    }
}

fn spawn(port: u16, dir: &TempDir, options: &[&str], stderr: Stdio) -> Child {
    let template = format!("{}/%H%M%S.", dir.path().display());
    let child = Command::new(smtp_sink())
        .args(["-u", "root", "-d", &template])
        .args(options)
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting smtp-sink (apt-get install postfix)");
    eventually("smtp-sink to accept connections", WAIT, || TcpStream::connect(("127.0.0.1", port)).ok());
    child
}

fn smtp_sink() -> &'static str {
    if std::path::Path::new("/usr/sbin/smtp-sink").exists() { "/usr/sbin/smtp-sink" } else { "smtp-sink" }
}

/// Parses a dumped message; `None` while the file is still being written.
fn parse(raw: &str) -> Option<Mail> {
    let (headers, body) = raw.split_once("\n\n")?;
    let header = |name: &str| -> Vec<String> {
        headers.lines().filter_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).collect()
    };
    // A multipart message is whole once its closing boundary is in.
    if let Some((_, rest)) = headers.split_once("boundary=\"")
        && let Some((boundary, _)) = rest.split_once('"')
        && !body.contains(&format!("--{boundary}--"))
    {
        return None;
    }
    let subject = header("Subject:").into_iter().next()?;
    let message_id = header("Message-ID:").into_iter().next().unwrap_or_default();
    let rcpt = header("X-Rcpt-Args:").iter().map(|r| r.trim_matches(['<', '>']).to_string()).collect();
    Some(Mail { rcpt, subject, message_id, body: body.replace("=\n", "").to_string(), raw: raw.to_string() })
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
