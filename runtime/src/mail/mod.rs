//! Mail delivery behind the plugins' `send-mail` capability.
//!
//! [`Mailer`] sends through pooled SMTP connections when an `--smtp` URL is
//! configured, and otherwise writes each message as an `.eml` file into the
//! outbox directory. Every failure is sorted into what a plugin can act on:
//! a message that is wrong ([`SendError::InvalidInput`]), a server that
//! refused it for good ([`SendError::Rejected`], SMTP 5xx) and a passing
//! failure worth a retry ([`SendError::Transient`], 4xx or no connection).
//! The plugin host turns these into the contract's `mail-error`.
//! With a [`Ledger`], a job that runs again doesn't resend what it sent,
//! and a call cut off mid-send is settled by its [`Progress`].

mod compose;
pub mod ledger;
mod progress;
mod smtp;
pub(crate) mod tls;
mod wire;

pub use compose::Attachment;
pub use compose::weight as message_size;
pub use ledger::Ledger;
pub use progress::{Progress, Stage};

use crate::wit::Email;
use anyhow::{Context, Result};
use compose::Prepared;
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a message wasn't sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The message is wrong: an address, a header, no recipient.
    #[error("invalid mail: {0}")]
    InvalidInput(String),
    /// The server refused it for good (SMTP 5xx).
    #[error("mail rejected: {0}")]
    Rejected(String),
    /// A passing failure worth a retry (4xx, no connection, a full disk).
    #[error("mail not sent: {0}")]
    Transient(String),
}

/// Where messages go.
enum Transport {
    /// Our pool of SMTP connections (plain, STARTTLS or implicit TLS).
    Smtp(smtp::SmtpPool),
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
    /// Being sent by an earlier run that ran out of time before it learnt
    /// whether the server took it; counted as sent, not sent again.
    Interrupted(String),
}

/// Messages up to this size are built where the job runs, in microseconds;
/// larger ones (the policy allows 10 MiB) on a blocking thread, so that
/// encoding them never holds up other jobs or the heartbeat.
const BUILD_INLINE_BYTES: usize = 64 * 1024;

impl Mailer {
    /// Sends through the SMTP server at `url`, over at most
    /// `max_connections` connections: `smtp://user:pass@host:port` (STARTTLS
    /// when the server offers it; `?tls=required` to insist, `?tls=none` to
    /// never), or `smtps://...` for implicit TLS. The server's certificate
    /// is checked against Mozilla's roots, or only those in `ca_file`.
    pub fn smtp(
        url: &str,
        ca_file: Option<&Path>,
        default_from: &str,
        max_connections: usize,
    ) -> Result<Mailer> {
        let invalid = || format!("invalid SMTP URL {}", crate::secret::redact_url(url));
        let server = smtp::Server::from_url(url).with_context(invalid)?;
        let transport = Transport::Smtp(smtp::SmtpPool::new(server, ca_file, max_connections)?);
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
            Transport::Smtp(pool) => pool.describe(),
            Transport::Capture(_) => "memory".to_string(),
            Transport::Outbox(_, dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Sends `email` as call `seq` of job `jid` (taken from `shard`), unless
    /// an earlier run of the job sent it already. Without a jid (or a ledger) it just sends.
    /// The call is claimed in the ledger before the message is handed over,
    /// so a run that runs out of time while sending can't lead to a second
    /// copy; `progress` says how far it got (see [`Mailer::cut_off`] and
    /// the [`ledger`]).
    pub async fn send_for_job(
        &self,
        (email, attachments): (&Arc<Email>, Vec<Attachment>),
        (shard, jid, seq): (usize, &str, u32),
        progress: &Progress,
    ) -> Result<Delivery, SendError> {
        let key = (!jid.is_empty()).then_some((jid, seq));
        let prepared = self.prepare(email, attachments, key).await?;
        let id = prepared.id.clone();
        let Some(ledger) = self.ledger.as_ref().filter(|_| key.is_some()) else {
            self.transmit(prepared, progress).await?;
            return Ok(Delivery::Sent(id));
        };
        // Not knowing whether it went out, sending could duplicate it: wait.
        let claim =
            ledger.claim(shard, jid, seq, &id).await.map_err(|e| SendError::Transient(format!("{e:#}")))?;
        match claim {
            ledger::Claim::Ours => {}
            ledger::Claim::Sent(id) => return Ok(Delivery::Remembered(id)),
            ledger::Claim::Interrupted(id) => return Ok(Delivery::Interrupted(id)),
            ledger::Claim::Unfinished(id) => tracing::warn!(jid, message_id = %id,
                "an earlier run was killed while sending this mail; sending it again with the same Message-ID"),
        }
        progress.set(Stage::Claimed);
        if let Err(err) = self.transmit(prepared, progress).await {
            // Settled as a cut-off is: failed before its end went out (or
            // refused), the claim goes back; after it, with no answer
            // heard, the server may have it and it counts as sent.
            self.cut_off((shard, jid, seq), progress).await;
            return Err(err);
        }
        if let Err(err) = ledger.confirm(shard, jid, seq, &id).await {
            tracing::warn!(jid, error = %format!("{err:#}"), "mail sent but not confirmed in the ledger; should this job run again, it sends the mail again with the same Message-ID");
        }
        Ok(Delivery::Sent(id))
    }

    /// Settles the ledger for call `seq` of job `jid`, which ended without
    /// the server's acceptance at `progress`'s stage: handed over, it is
    /// marked "interrupted" and a rerun counts it as sent; only claimed, the
    /// claim is given back and a rerun sends it. Returns the stage.
    pub async fn cut_off(&self, (shard, jid, seq): (usize, &str, u32), progress: &Progress) -> Stage {
        let stage = progress.stage();
        let Some(ledger) = self.ledger.as_ref().filter(|_| !jid.is_empty()) else { return stage };
        match stage {
            Stage::Unclaimed => {}
            Stage::Claimed => {
                if let Err(err) = ledger.release(shard, jid, seq).await {
                    tracing::warn!(jid, error = %format!("{err:#}"), "mail not sent, but still marked as sending; a rerun of this job sends it again with the same Message-ID");
                }
            }
            Stage::HandedOver => {
                if let Err(err) = ledger.interrupt(shard, jid, seq).await {
                    tracing::warn!(jid, error = %format!("{err:#}"), "could not mark an interrupted mail; a rerun will send it again");
                }
            }
        }
        stage
    }

    /// Builds and encodes `email`, as call `seq` of job `jid` when `key`
    /// says so; big messages on a blocking thread.
    async fn prepare(
        &self,
        email: &Arc<Email>,
        attachments: Vec<Attachment>,
        key: Option<(&str, u32)>,
    ) -> Result<Prepared, SendError> {
        let attached: usize = attachments.iter().map(|a| a.bytes.len()).sum();
        if message_size(email) + attached <= BUILD_INLINE_BYTES {
            return compose::prepare(email, &attachments, &self.default_from, key);
        }
        // Shared, not copied: a copy of a 10 MB body on the runtime's
        // thread, into memory never touched before, cost more than the
        // build it was handed over for.
        let (email, from) = (email.clone(), self.default_from.clone());
        let key = key.map(|(jid, seq)| (jid.to_string(), seq));
        tokio::task::spawn_blocking(move || {
            compose::prepare(&email, &attachments, &from, key.as_ref().map(|(jid, seq)| (jid.as_str(), *seq)))
        })
        .await
        .map_err(|e| SendError::Transient(format!("building the message failed: {e}")))?
    }

    /// Hands `message` to the transport, noting the hand-over in `progress`.
    async fn transmit(&self, message: Prepared, progress: &Progress) -> Result<(), SendError> {
        let Prepared { envelope, raw, .. } = message;
        if !matches!(self.transport, Transport::Smtp(_)) {
            // A file or memory takes it whole or not at all, but may be cut
            // off mid-write: counted as handed over from the start.
            progress.set(Stage::HandedOver);
        }
        match &self.transport {
            Transport::Smtp(pool) => pool.send(&envelope, &raw, progress).await?,
            Transport::Capture(kept) => {
                let text = String::from_utf8_lossy(&raw).into_owned();
                kept.lock().expect("capture lock").push(text);
            }
            Transport::Outbox(outbox, dir) => {
                outbox.send_raw(&envelope, &raw).await.map_err(|e| {
                    // Not written: a rerun writes it.
                    progress.set(Stage::Claimed);
                    SendError::Transient(format!("writing to the outbox {}: {e}", dir.display()))
                })?;
            }
        };
        Ok(())
    }
}

fn parse_from(from: &str) -> Result<Mailbox> {
    from.parse().with_context(|| format!("invalid --mail-from address {from:?}"))
}

fn classify_smtp(err: lettre::transport::smtp::Error) -> SendError {
    let reason = error_chain(&err);
    if err.is_permanent() { SendError::Rejected(reason) } else { SendError::Transient(reason) }
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
