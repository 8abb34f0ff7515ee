//! A mail server that speaks TLS: smtp-sink behind `stunnel4`, which offers
//! implicit TLS on one port and STARTTLS on another, both with the server
//! certificate of a test CA. smtp-sink logs every command, so a test can
//! see the credentials a client sent with AUTH.

use crate::{Certs, SmtpSink, WAIT, eventually, free_port};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// smtp-sink behind stunnel; both stopped when dropped.
pub struct TlsSmtp {
    /// Where the mail lands.
    pub sink: SmtpSink,
    /// The TLS front.
    stunnel: Child,
    /// stunnel's config and log, and smtp-sink's command log.
    dir: TempDir,
    /// The port with TLS from the first byte.
    pub implicit_port: u16,
    /// The port that offers STARTTLS.
    pub starttls_port: u16,
}

impl TlsSmtp {
    /// Starts both, with `certs`' server certificate (for 127.0.0.1).
    pub fn start(certs: &Certs) -> TlsSmtp {
        let dir = tempfile::tempdir().expect("creating stunnel's temp dir");
        let sink = SmtpSink::start_logging(&dir.path().join("commands.log"));
        let (implicit_port, starttls_port) = (free_port(), free_port());
        let service = |name: &str, port: u16, protocol: &str| {
            format!(
                "[{name}]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{}\ncert = {}\nkey = {}\n{protocol}",
                sink.port(),
                certs.path("server.crt").display(),
                certs.path("server.key").display(),
            )
        };
        let config = format!(
            "foreground = yes\npid =\ndebug = notice\n{}\n{}\n",
            service("implicit", implicit_port, ""),
            service("starttls", starttls_port, "protocol = smtp\n"),
        );
        let config_file = dir.path().join("stunnel.conf");
        std::fs::write(&config_file, config).expect("writing stunnel's config");
        let log = std::fs::File::create(dir.path().join("stunnel.log")).expect("creating stunnel's log");
        let stunnel = Command::new(stunnel_bin())
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting stunnel4 (apt-get install stunnel4)");
        for port in [implicit_port, starttls_port] {
            eventually("stunnel to accept connections", WAIT, || {
                TcpStream::connect(("127.0.0.1", port)).ok()
            });
        }
        TlsSmtp { sink, stunnel, dir, implicit_port, starttls_port }
    }

    /// Every command smtp-sink received, one per line.
    pub fn commands(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("commands.log")).unwrap_or_default()
    }

    /// stunnel's log: which service accepted which connection.
    pub fn tls_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        let _ = self.stunnel.kill();
        let _ = self.stunnel.wait();
    }
}

fn stunnel_bin() -> PathBuf {
    ["/usr/bin/stunnel4", "/usr/bin/stunnel"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("stunnel4"))
}
