//! Sending mail through the host's `send-mail` capability.
//!
//! [`Email::new`] starts a message with the required parts; [`send`] hands it
//! to the host and turns a [`MailError`] into the [`JobError`] that makes the
//! runner do the right thing: retry on a passing failure, give up on a message
//! that can never be delivered.

use crate::JobError;
pub use crate::bindings::jobrunner::plugin::mail::{Attachment, AttachmentContent, Email, MailError};

impl Email {
    /// A plain-text message from the host's default sender (`--mail-from`)
    /// to one recipient. The other fields are public: set `html_body`,
    /// `cc`, `bcc`, `reply_to` or `from` (one the policy's
    /// `allowed_senders` permits) directly.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::mail::Email;
    ///
    /// let mut email = Email::new("ann@example.com", "Your order #42", "Thank you for your order.\n");
    /// email.html_body = Some("<p>Thank you for your order.</p>".into());
    /// email.cc.push("orders@shop.example".into());
    /// ```
    pub fn new(to: &str, subject: impl Into<String>, text_body: impl Into<String>) -> Email {
        Email {
            from: None,
            to: vec![to.to_string()],
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: None,
            subject: subject.into(),
            text_body: text_body.into(),
            html_body: None,
            headers: Vec::new(),
        }
    }

    /// Adds an extra header, e.g. `X-Order-Id`. Names that would change
    /// the sender, the recipients or the structure (`From`, `Bcc`,
    /// `Content-*`, ...) are refused by the host as invalid input.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::mail::Email;
    ///
    /// let email = Email::new("ann@example.com", "Shipped", "On its way.\n").header("X-Order-Id", "42");
    /// assert_eq!(email.headers, [("X-Order-Id".to_string(), "42".to_string())]);
    /// ```
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Email {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

impl Attachment {
    /// A file to download, given as its bytes.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::mail::Attachment;
    ///
    /// let invoice = Attachment::bytes("invoice-42.txt", "text/plain", b"Total: 7.00\n".to_vec());
    /// ```
    pub fn bytes(filename: &str, content_type: &str, bytes: Vec<u8>) -> Attachment {
        Attachment {
            filename: filename.to_string(),
            content_type: content_type.to_string(),
            content_id: None,
            content: AttachmentContent::Bytes(bytes),
        }
    }

    /// A stored file (`key` of `service`, "" for the default), read by the
    /// host; linked instead when it is too big for the message and its
    /// service can sign a URL.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::mail::Attachment;
    ///
    /// let export = Attachment::blob("orders.csv.gz", "application/gzip", "", "exports/orders-2026-11.csv.gz");
    /// ```
    pub fn blob(filename: &str, content_type: &str, service: &str, key: &str) -> Attachment {
        Attachment {
            filename: filename.to_string(),
            content_type: content_type.to_string(),
            content_id: None,
            content: AttachmentContent::Blob((service.to_string(), key.to_string())),
        }
    }

    /// Shown inline by the HTML body as `cid:<content_id>` (e.g. a logo).
    ///
    /// ```
    /// use jobrunner_plugin_sdk::mail::{Attachment, Email};
    ///
    /// # let png = Vec::new();
    /// let logo = Attachment::bytes("logo.png", "image/png", png).inline("logo");
    /// let mut email = Email::new("ann@example.com", "Welcome", "Welcome!\n");
    /// email.html_body = Some(r#"<img src="cid:logo"> Welcome!"#.into());
    /// ```
    pub fn inline(mut self, content_id: &str) -> Attachment {
        self.content_id = Some(content_id.to_string());
        self
    }
}

/// Sends `email` with `attachments` and returns its Message-ID. The
/// policy's `max_message_bytes` counts the attachments; a stored file too
/// big for the message is linked by a signed URL where its service can
/// sign one (S3), and refused otherwise.
///
/// ```no_run
/// use jobrunner_plugin_sdk::mail::{self, Attachment, Email};
///
/// let email = Email::new("accounts@shop.example", "November's orders", "Attached.\n");
/// let csv = Attachment::blob("orders.csv.gz", "application/gzip", "", "exports/orders-2026-11.csv.gz");
/// mail::send_with_attachments(&email, &[csv])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn send_with_attachments(email: &Email, attachments: &[Attachment]) -> Result<String, JobError> {
    crate::bindings::jobrunner::plugin::mail::send_mail_with_attachments(email, attachments)
        .map_err(JobError::from)
}

/// Sends `email` and returns its Message-ID. A job that runs again (after
/// a crash, or a failure in a later step) gets the same Message-ID back
/// without a second mail: the runner's ledger remembers each call. A
/// refused or invalid message is a permanent error, a mail server's 4xx or
/// an unreachable one retryable.
///
/// ```no_run
/// use jobrunner_plugin_sdk::{Level, log, mail};
///
/// let id = mail::send(&mail::Email::new("ann@example.com", "Hello", "Hello, Ann.\n"))?;
/// log(Level::Info, &format!("sent as {id}"));
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn send(email: &Email) -> Result<String, JobError> {
    crate::bindings::jobrunner::plugin::mail::send_mail(email).map_err(JobError::from)
}

impl From<MailError> for JobError {
    fn from(err: MailError) -> JobError {
        match err {
            MailError::InvalidInput(reason) => JobError::Permanent(format!("invalid mail: {reason}")),
            MailError::Rejected(reason) => JobError::Permanent(format!("mail rejected: {reason}")),
            MailError::Transient(reason) => JobError::Retryable(format!("mail not sent: {reason}")),
        }
    }
}
