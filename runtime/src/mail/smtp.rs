//! A pool of SMTP connections, built on lettre's SMTP client.
//!
//! lettre's own pooled transport can't set `TCP_NODELAY`, and lettre writes
//! a message's body and its closing dot separately: with Nagle's algorithm
//! the dot waits for the server's delayed ACK, about 40 ms per message.
//! Worse, a runner killed in those 40 ms leaves the dot in the kernel's send
//! buffer, which still delivers it, so the mail goes out without the runner
//! ever learning that it did. Connecting ourselves fixes both. Connections
//! are kept for reuse, up to one per concurrent job; one that failed is
//! dropped, one idle for a while is checked with NOOP before use.
//!
//! Implicit TLS (`smtps://`) is left to lettre's transport (see `mail`).

use super::SendError;
use super::classify_smtp;
use anyhow::{Context, Result, bail};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection idle longer than this is checked with NOOP before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(5);

/// Whether to encrypt with STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StartTls {
    /// Never (`?tls=none`).
    Never,
    /// When the server offers it (the default).
    Opportunistic,
    /// Always; a server that doesn't offer it is an error (`?tls=required`).
    Required,
}

/// Where and how to connect.
#[derive(Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: StartTls,
    pub credentials: Option<Credentials>,
}

impl Server {
    /// Parses `smtp://[user:pass@]host[:port][?tls=none|opportunistic|required]`.
    pub fn from_url(text: &str) -> Result<Server> {
        let url = url::Url::parse(text).context("not a URL")?;
        if url.scheme() != "smtp" {
            bail!("the scheme must be smtp:// or smtps://, not {}://", url.scheme());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).context("the URL names no host")?;
        let mut tls = StartTls::Opportunistic;
        for (key, value) in url.query_pairs() {
            tls = match (key.as_ref(), value.as_ref()) {
                ("tls", "none") => StartTls::Never,
                ("tls", "opportunistic") => StartTls::Opportunistic,
                ("tls", "required") => StartTls::Required,
                _ => bail!("unknown setting {key}={value}; expected tls=none|opportunistic|required"),
            };
        }
        let credentials = match url.username() {
            "" => None,
            user => {
                let decode =
                    |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
                Some(Credentials::new(decode(user), decode(url.password().unwrap_or_default())))
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(Server { host, port: url.port().unwrap_or(25), tls, credentials })
    }
}

/// Open connections, ready for the next message.
pub struct SmtpPool {
    /// Where to connect.
    server: Server,
    /// Our name in EHLO.
    hello: ClientId,
    /// Idle connections and when each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// Caps the open connections.
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(server: Server, max_connections: usize) -> SmtpPool {
        let hello =
            hostname::get().ok().and_then(|h| h.into_string().ok()).map(ClientId::Domain).unwrap_or_default();
        SmtpPool {
            server,
            hello,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_connections.max(1)),
        }
    }

    /// Sends one message over a pooled connection.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let _slot = self.slots.acquire().await.expect("the SMTP slot semaphore is never closed");
        let mut conn = self.checkout().await?;
        let result = conn.send(envelope, message).await;
        // lettre aborts a connection on any error; a healthy one goes back.
        if !conn.has_broken() {
            self.idle.lock().expect("SMTP pool lock").push((conn, Instant::now()));
        }
        result.map(|_| ()).map_err(classify_smtp)
    }

    /// An idle connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let Some((mut conn, last_used)) = self.idle.lock().expect("SMTP pool lock").pop() else {
                return self.connect().await;
            };
            if last_used.elapsed() < CHECK_AFTER_IDLE || conn.test_connected().await {
                return Ok(conn);
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let Server { host, port, .. } = &self.server;
        let unreachable = |e: String| SendError::Transient(format!("cannot connect to {host}:{port}: {e}"));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), *port)))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
            .await
            .map_err(classify_smtp)?;
        self.secure(&mut conn).await?;
        if let Some(credentials) = &self.server.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(classify_smtp)?;
        }
        Ok(conn)
    }

    /// Upgrades with STARTTLS as configured.
    async fn secure(&self, conn: &mut AsyncSmtpConnection) -> Result<(), SendError> {
        let wanted = match self.server.tls {
            StartTls::Never => false,
            StartTls::Opportunistic => conn.can_starttls(),
            StartTls::Required if conn.can_starttls() => true,
            StartTls::Required => {
                return Err(SendError::Transient(format!(
                    "{} does not offer STARTTLS, which tls=required insists on",
                    self.server.host
                )));
            }
        };
        if wanted {
            let tls = TlsParameters::new(self.server.host.clone()).map_err(classify_smtp)?;
            conn.starttls(tls, &self.hello).await.map_err(classify_smtp)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smtp_urls() {
        let plain = Server::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("127.0.0.1", 2525, StartTls::Opportunistic)
        );
        assert!(plain.credentials.is_none());
        let full = Server::from_url("smtp://me%40x.org:p%2Fw@mail.example.com?tls=required").unwrap();
        assert_eq!((full.port, full.tls), (25, StartTls::Required));
        assert!(full.credentials.is_some());
        assert!(Server::from_url("smtp://h?tls=maybe").unwrap_err().to_string().contains("tls=maybe"));
        assert!(Server::from_url("http://h").unwrap_err().to_string().contains("scheme"));
    }
}
