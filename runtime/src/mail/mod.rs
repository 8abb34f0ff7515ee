//! Mail delivery behind the plugins' `send-mail` capability.
//!
//! [`Mailer`] sends through pooled SMTP connections when an `--smtp` URL is
//! configured, and otherwise writes each message as an `.eml` file into the
//! outbox directory. Every failure is sorted into what a plugin can act on:
//! a message that is wrong ([`MailError::InvalidInput`]), a server that
//! refused it for good ([`MailError::Rejected`], SMTP 5xx) and a passing
//! failure worth a retry ([`MailError::Transient`], 4xx or no connection).
//! With a [`Ledger`], a job that runs again doesn't resend what it sent.

mod compose;
pub mod ledger;
mod smtp;

pub use ledger::Ledger;

use crate::plugin::wit::{Email, MailError};
use anyhow::{Context, Result};
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::{Path, PathBuf};

/// Where messages go.
enum Transport {
    /// Our pool of SMTP connections (plain or STARTTLS).
    Smtp(smtp::SmtpPool),
    /// lettre's pooled transport, for implicit TLS.
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
    /// Kept in memory, for `runner try`.
    Capture(std::sync::Mutex<Vec<String>>),
    /// One `.eml` file per message in a directory.
    Outbox(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Sends the mail plugins ask for.
pub struct Mailer {
    /// Where messages go.
    transport: Transport,
    /// The sender used when a plugin names none.
    default_from: Mailbox,
    /// Remembers what each job sent; without it every call sends.
    ledger: Option<Ledger>,
}

/// What became of a job's `send-mail` call.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent now, with this Message-ID.
    Sent(String),
    /// Sent by an earlier run of the same job, with this Message-ID.
    Remembered(String),
}

impl Mailer {
    /// Sends through the SMTP server at `url`, over at most
    /// `max_connections` connections: `smtp://user:pass@host:port` (STARTTLS
    /// when the server offers it; `?tls=required` to insist, `?tls=none` to
    /// never), or `smtps://...` for implicit TLS.
    pub fn smtp(url: &str, default_from: &str, max_connections: usize) -> Result<Mailer> {
        let invalid = || format!("invalid SMTP URL {}", crate::secret::redact_url(url));
        let transport = if url.starts_with("smtps://") {
            let pool = lettre::transport::smtp::PoolConfig::new().max_size(max_connections as u32);
            let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).with_context(invalid)?;
            Transport::Smtps(builder.pool_config(pool).build())
        } else {
            Transport::Smtp(smtp::SmtpPool::new(
                smtp::Server::from_url(url).with_context(invalid)?,
                max_connections,
            ))
        };
        Ok(Mailer { transport, default_from: parse_from(default_from)?, ledger: None })
    }

    /// Writes every message into `dir` as an `.eml` file.
    pub fn outbox(dir: &Path, default_from: &str) -> Result<Mailer> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the outbox directory {}", dir.display()))?;
        let transport = AsyncFileTransport::<Tokio1Executor>::new(dir);
        Ok(Mailer {
            transport: Transport::Outbox(transport, dir.to_path_buf()),
            default_from: parse_from(default_from)?,
            ledger: None,
        })
    }

    /// Keeps every message in memory instead of sending it; see [`Mailer::captured`].
    pub fn capture(default_from: &str) -> Result<Mailer> {
        let transport = Transport::Capture(std::sync::Mutex::new(Vec::new()));
        Ok(Mailer { transport, default_from: parse_from(default_from)?, ledger: None })
    }

    /// The messages a capturing mailer kept, as they would have been sent.
    pub fn captured(&self) -> Vec<String> {
        match &self.transport {
            Transport::Capture(kept) => kept.lock().expect("capture lock").clone(),
            _ => Vec::new(),
        }
    }

    /// Remembers each job's sent mail in `ledger`.
    pub fn with_ledger(self, ledger: Ledger) -> Mailer {
        Mailer { ledger: Some(ledger), ..self }
    }

    /// The sender of mail whose plugin names none.
    pub fn default_from(&self) -> &Mailbox {
        &self.default_from
    }

    /// Where mail goes, for the start-up log line.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP".to_string(),
            Transport::Smtps(_) => "SMTP over TLS".to_string(),
            Transport::Capture(_) => "memory".to_string(),
            Transport::Outbox(_, dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Sends `email` as call `seq` of job `jid`, unless an earlier run of
    /// the job sent it already. Without a jid (or a ledger) it just sends.
    pub async fn send_for_job(&self, email: &Email, jid: &str, seq: u32) -> Result<Delivery, MailError> {
        if jid.is_empty() {
            return self.send(email, None).await.map(Delivery::Sent);
        }
        let Some(ledger) = &self.ledger else {
            return self.send(email, Some((jid, seq))).await.map(Delivery::Sent);
        };
        // Not knowing whether it went out, sending could duplicate it: wait.
        let sent = ledger.recall(jid, seq).await.map_err(|e| MailError::Transient(format!("{e:#}")))?;
        if let Some(id) = sent {
            return Ok(Delivery::Remembered(id));
        }
        let id = self.send(email, Some((jid, seq))).await?;
        if let Err(err) = ledger.remember(jid, seq, &id).await {
            tracing::warn!(jid, error = %format!("{err:#}"), "mail sent but not noted; a rerun of this job would send it again");
        }
        Ok(Delivery::Sent(id))
    }

    /// Sends `email`, as call `seq` of job `jid` when `key` says so;
    /// returns its Message-ID.
    async fn send(&self, email: &Email, key: Option<(&str, u32)>) -> Result<String, MailError> {
        let message = compose::message(email, &self.default_from, key)?;
        let id = message.headers().get_raw("Message-ID").unwrap_or_default().to_string();
        match &self.transport {
            Transport::Smtp(pool) => pool.send(message.envelope(), &message.formatted()).await?,
            Transport::Smtps(smtps) => {
                smtps.send(message).await.map_err(classify_smtp)?;
            }
            Transport::Capture(kept) => {
                let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                kept.lock().expect("capture lock").push(text);
            }
            Transport::Outbox(outbox, dir) => {
                outbox.send(message).await.map_err(|e| {
                    MailError::Transient(format!("writing to the outbox {}: {e}", dir.display()))
                })?;
            }
        };
        Ok(id)
    }
}

fn parse_from(from: &str) -> Result<Mailbox> {
    from.parse().with_context(|| format!("invalid --mail-from address {from:?}"))
}

fn classify_smtp(err: lettre::transport::smtp::Error) -> MailError {
    let reason = error_chain(&err);
    if err.is_permanent() { MailError::Rejected(reason) } else { MailError::Transient(reason) }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
