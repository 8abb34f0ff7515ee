//! A message's attachments as a plugin hands them over: bytes, or stored
//! files the host reads under the plugin's `blobs` grant. A stored file
//! too big for the message (`max_message_bytes`) is linked from the body
//! instead, with a URL the service signs (S3), or refused where it can't.

use super::host::HostState;
use crate::mail::Attachment;
use crate::policy::BlobAccess;
use crate::storage::BlobError;
use crate::wit::jobrunner::plugin::blobs::BlobError as WitBlobError;
use crate::wit::jobrunner::plugin::mail::{self, AttachmentContent, MailError};
use std::time::Duration;

/// How long a link to a file too big to attach works: a week, the longest
/// an S3 signature allows.
pub const LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl HostState {
    /// The attachments with their bytes, and the lines linking the stored
    /// files too big to attach.
    pub(super) async fn attachments(
        &mut self,
        given: Vec<mail::Attachment>,
    ) -> Result<(Vec<Attachment>, Vec<String>), MailError> {
        let room = self.caps.guard.max_message_bytes() as u64;
        let (mut attached, mut links) = (Vec::new(), Vec::new());
        for attachment in given {
            let mail::Attachment { filename, content_type, content_id, content } = attachment;
            let bytes = match content {
                AttachmentContent::Bytes(bytes) => bytes,
                AttachmentContent::Blob((service, key)) => match self.stored(&service, &key, room).await? {
                    Stored::Bytes(bytes) => bytes,
                    Stored::Link(url) => {
                        links.push(format!("{filename}: {url}"));
                        continue;
                    }
                    Stored::TooBig(size) => {
                        return Err(MailError::InvalidInput(format!(
                            "attachment {filename:?} (blob {key:?}) is {size} bytes, more than a message may carry \
                             ({room}, max_message_bytes), and its service can't link to it"
                        )));
                    }
                },
            };
            attached.push(Attachment { filename, content_type, content_id, bytes });
        }
        Ok((attached, links))
    }

    /// The stored file `key` of `service`, as bytes if at most `room` of
    /// them, else as a link if the service can sign one.
    async fn stored(&mut self, service: &str, key: &str, room: u64) -> Result<Stored, MailError> {
        let (storage, name, cap) = self.blob_call(service, BlobAccess::Read).map_err(from_blob_call)?;
        let failed = |err: BlobError| match err {
            BlobError::Unavailable { .. } => MailError::Transient(format!("attachment: {err}")),
            err => MailError::InvalidInput(format!("attachment: {err}")),
        };
        let reader = storage.reader(&name).map_err(failed)?;
        let size = reader.size(key).await.map_err(failed)?;
        if size <= room.min(cap) {
            return reader.read(key, 0, None, cap).await.map(Stored::Bytes).map_err(failed);
        }
        match reader.link(key, LINK_TTL).await.map_err(failed)? {
            Some(url) => Ok(Stored::Link(url)),
            None => Ok(Stored::TooBig(size)),
        }
    }
}

/// A stored attachment, fetched or not.
enum Stored {
    Bytes(Vec<u8>),
    Link(String),
    TooBig(u64),
}

/// A `blobs` refusal as a mail error: a denied grant is a policy matter.
fn from_blob_call(err: WitBlobError) -> MailError {
    match err {
        WitBlobError::Denied(rule) => MailError::Rejected(format!("policy: {rule}")),
        WitBlobError::Unavailable(why) => MailError::Transient(why),
        WitBlobError::NotFound(why) | WitBlobError::InvalidInput(why) => MailError::InvalidInput(why),
    }
}

/// Adds the links to files too big to attach to the message's bodies.
pub fn add_links(message: &mut mail::Email, links: &[String]) {
    if links.is_empty() {
        return;
    }
    let days = LINK_TTL.as_secs() / 86_400;
    let intro = format!("Too large to attach; download within {days} days:");
    message.text_body.push_str(&format!("\n\n{intro}\n{}\n", links.join("\n")));
    if let Some(html) = &mut message.html_body {
        let items: String = links.iter().map(|l| format!("<li>{}</li>", html_escape(l))).collect();
        html.push_str(&format!("<p>{intro}</p><ul>{items}</ul>"));
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
