//! Sending mail through the host's `send-mail` capability.
//!
//! [`Email::new`] starts a message with the required parts; [`send`] hands it
//! to the host and turns a [`MailError`] into the [`JobError`] that makes the
//! runner do the right thing: retry on a passing failure, give up on a message
//! that can never be delivered.

use crate::JobError;
pub use crate::bindings::jobrunner::plugin::mail::{Attachment, AttachmentContent, Email, MailError};

impl Email {
    /// A plain-text message from the host's default sender to one recipient.
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

    /// Adds an extra header, e.g. `X-Order-Id`.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Email {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

impl Attachment {
    /// A file to download, given as its bytes.
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
    pub fn blob(filename: &str, content_type: &str, service: &str, key: &str) -> Attachment {
        Attachment {
            filename: filename.to_string(),
            content_type: content_type.to_string(),
            content_id: None,
            content: AttachmentContent::Blob((service.to_string(), key.to_string())),
        }
    }

    /// Shown inline by the HTML body as `cid:<content_id>` (e.g. a logo).
    pub fn inline(mut self, content_id: &str) -> Attachment {
        self.content_id = Some(content_id.to_string());
        self
    }
}

/// Sends `email` with `attachments` and returns its Message-ID.
pub fn send_with_attachments(email: &Email, attachments: &[Attachment]) -> Result<String, JobError> {
    crate::bindings::jobrunner::plugin::mail::send_mail_with_attachments(email, attachments)
        .map_err(JobError::from)
}

/// Sends `email` and returns its Message-ID.
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
