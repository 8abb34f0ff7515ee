//! Turning a plugin's `email` record into a MIME message, validating every
//! address and header on the way so that a bad one is reported as invalid
//! input naming the field, not as a delivery failure.

use super::SendError;
use crate::wit::Email;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

/// Headers a plugin may not set through `headers`: the message's structure,
/// addressing and identity come from the record's own fields. Any name
/// starting with `Resent-` or `Content-` is refused too.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "return-path",
];

/// The longest header name accepted (RFC 5322 lines are 78 characters).
const MAX_NAME: usize = 76;

fn invalid(msg: String) -> SendError {
    SendError::InvalidInput(msg)
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, SendError> {
    address.parse().map_err(|e| invalid(format!("invalid `{field}` address {address:?}: {e}")))
}

/// Builds the message `email` describes, sent from `default_from` unless it
/// names its own sender. The message sent by call `seq` of job `jid` gets
/// a Message-ID made of both, so should it ever be delivered twice the
/// copies are recognisably the same message; without a key it is random.
pub fn message(
    email: &Email,
    attachments: &[Attachment],
    default_from: &Mailbox,
    key: Option<(&str, u32)>,
) -> Result<Message, SendError> {
    if email.to.is_empty() && email.cc.is_empty() && email.bcc.is_empty() {
        return Err(invalid("the message has no recipient (to, cc and bcc are empty)".into()));
    }
    let from = match &email.from {
        Some(from) => mailbox("from", from)?,
        None => default_from.clone(),
    };
    let id = key.map(|(jid, seq)| message_id(jid, seq, &from));
    // The envelope is the one lettre would derive from the headers (From;
    // To, Cc, Bcc in that order), given so that it doesn't parse them back.
    let sender = from.email.clone();
    let mut recipients = Vec::with_capacity(email.to.len() + email.cc.len() + email.bcc.len());
    let mut builder = Message::builder().from(from).subject(email.subject.clone()).message_id(id);
    for to in &email.to {
        let to = mailbox("to", to)?;
        recipients.push(to.email.clone());
        builder = builder.to(to);
    }
    for cc in &email.cc {
        let cc = mailbox("cc", cc)?;
        recipients.push(cc.email.clone());
        builder = builder.cc(cc);
    }
    for bcc in &email.bcc {
        let bcc = mailbox("bcc", bcc)?;
        recipients.push(bcc.email.clone());
        builder = builder.bcc(bcc);
    }
    let envelope = Envelope::new(Some(sender), recipients)
        .map_err(|e| invalid(format!("cannot build the message: {e}")))?;
    builder = builder.envelope(envelope);
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox("reply-to", reply_to)?);
    }
    for (name, value) in &email.headers {
        builder = builder.raw_header(header(name, value)?);
    }
    let built = match (&email.html_body, attachments.is_empty()) {
        (Some(html), true) => {
            builder.multipart(MultiPart::alternative_plain_html(email.text_body.clone(), html.clone()))
        }
        (None, true) => builder.singlepart(SinglePart::plain(email.text_body.clone())),
        (_, false) => builder.multipart(with_attachments(email, attachments)?),
    };
    built.map_err(|e| invalid(format!("cannot build the message: {e}")))
}

/// A file sent with a message, its bytes in hand.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// The name the recipient sees.
    pub filename: String,
    /// Its MIME type.
    pub content_type: String,
    /// The Content-ID of an inline part, without angle brackets.
    pub content_id: Option<String>,
    pub bytes: Vec<u8>,
}

/// The body and its attachments: multipart/mixed around the text (or its
/// HTML alternative, inside multipart/related with the inline parts).
fn with_attachments(email: &Email, attachments: &[Attachment]) -> Result<MultiPart, SendError> {
    let (inline, files): (Vec<&Attachment>, Vec<&Attachment>) =
        attachments.iter().partition(|a| a.content_id.is_some());
    let text = SinglePart::plain(email.text_body.clone());
    let mut mixed = match (&email.html_body, inline.is_empty()) {
        (None, true) => MultiPart::mixed().singlepart(text),
        (None, false) => return Err(invalid("inline attachments need an HTML body that shows them".into())),
        (Some(html), true) => MultiPart::mixed()
            .multipart(MultiPart::alternative_plain_html(email.text_body.clone(), html.clone())),
        (Some(html), false) => {
            let mut related = MultiPart::related().singlepart(SinglePart::html(html.clone()));
            for part in inline {
                related = related.singlepart(part_of(part)?);
            }
            MultiPart::mixed().multipart(MultiPart::alternative().singlepart(text).multipart(related))
        }
    };
    for file in files {
        mixed = mixed.singlepart(part_of(file)?);
    }
    Ok(mixed)
}

/// One attachment as a MIME part, its name and type checked.
fn part_of(attachment: &Attachment) -> Result<SinglePart, SendError> {
    let name = &attachment.filename;
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(invalid(format!("attachment file name {name:?}: empty, over 255 bytes, or a path")));
    }
    let content_type = ContentType::parse(&attachment.content_type).map_err(|e| {
        invalid(format!("attachment {name:?}: content type {:?}: {e}", attachment.content_type))
    })?;
    let builder = match &attachment.content_id {
        Some(id) if id.is_empty() || !id.chars().all(|c| c.is_ascii_graphic() && c != '<' && c != '>') => {
            return Err(invalid(format!(
                "attachment {name:?}: Content-ID {id:?} isn't plain printable ASCII"
            )));
        }
        Some(id) => lettre::message::Attachment::new_inline_with_name(id.clone(), name.clone()),
        None => lettre::message::Attachment::new(name.clone()),
    };
    Ok(builder.body(attachment.bytes.clone(), content_type))
}

/// A message ready for any transport.
pub struct Prepared {
    /// Who it goes from and to, for SMTP's MAIL and RCPT.
    pub envelope: Envelope,
    /// The message as sent.
    pub raw: Vec<u8>,
    /// Its Message-ID header.
    pub id: String,
}

/// Builds and encodes the message `email` describes (see [`message`]).
pub fn prepare(
    email: &Email,
    attachments: &[Attachment],
    default_from: &Mailbox,
    key: Option<(&str, u32)>,
) -> Result<Prepared, SendError> {
    let message = message(email, attachments, default_from, key)?;
    let id = message.headers().get_raw("Message-ID").unwrap_or_default().to_string();
    Ok(Prepared { envelope: message.envelope().clone(), raw: message.formatted(), id })
}

/// The bytes a message's content takes: subject, bodies and headers.
pub fn weight(email: &Email) -> usize {
    let headers: usize = email.headers.iter().map(|(name, value)| name.len() + value.len()).sum();
    email.subject.len() + email.text_body.len() + email.html_body.as_ref().map_or(0, String::len) + headers
}

/// `<jid.seq@sender-domain>`; a jid that isn't plain letters and digits is hashed.
fn message_id(jid: &str, seq: u32, from: &Mailbox) -> String {
    let jid = if jid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        jid.to_string()
    } else {
        crate::digest::sha256_hex(jid.as_bytes())[..32].to_string()
    };
    format!("<{jid}.{seq}@{}>", from.email.domain())
}

fn header(name: &str, value: &str) -> Result<HeaderValue, SendError> {
    check_name(name)?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(format!("header {name:?} has a line break or control character in its value")));
    }
    let name = HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
    Ok(HeaderValue::new(name, value.to_string()))
}

/// A header name must be an RFC 5322 field name (printable ASCII, no colon,
/// no space) and not one the message's own fields set.
fn check_name(name: &str) -> Result<(), SendError> {
    let shown: String = name.chars().take(MAX_NAME).collect();
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
    {
        return Err(invalid(format!(
            "header name {shown:?} is not a field name (1 to {MAX_NAME} printable ASCII characters, no colon)"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("resent-") || lower.starts_with("content-") {
        return Err(invalid(format!("header {name:?} is set from the email's own fields")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            from: None,
            to: vec!["Ann <ann@example.com>".into()],
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: "Hi".into(),
            text_body: "Hello".into(),
            html_body: None,
            headers: vec![("X-Order-Id".into(), "42".into())],
        }
    }

    fn error(email: &Email) -> String {
        match message(email, &[], &"shop@example.com".parse().unwrap(), None) {
            Err(SendError::InvalidInput(msg)) => msg,
            other => panic!("expected invalid input, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn builds_a_valid_message_with_default_sender() {
        let msg = message(&email(), &[], &"shop@example.com".parse().unwrap(), None).unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("From: shop@example.com"));
        assert!(text.contains("X-Order-Id: 42"));
        assert!(text.contains("Message-ID: <"));
    }

    #[test]
    fn a_jobs_mail_is_named_by_jid_and_call() {
        let from = "shop@example.com".parse().unwrap();
        let msg = message(&email(), &[], &from, Some(("abc123", 2))).unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("Message-ID: <abc123.2@example.com>"), "{text}");
        let odd = message(&email(), &[], &from, Some(("a b>", 0))).unwrap();
        let text = String::from_utf8(odd.formatted()).unwrap();
        assert!(!text.contains("a b>"));
    }

    #[test]
    fn the_envelope_goes_from_the_sender_to_every_recipient_and_bcc_stays_out_of_the_headers() {
        let mut all = email();
        all.from = Some("Orders <orders@example.com>".into());
        all.to.push("bob@example.com".into());
        all.cc = vec!["Cy <cy@example.com>".into()];
        all.bcc = vec!["audit@example.com".into(), "dee@example.com".into()];
        let msg = message(&all, &[], &"shop@example.com".parse().unwrap(), None).unwrap();
        let addresses = |list: &[lettre::Address]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(msg.envelope().from().map(|a| a.to_string()).as_deref(), Some("orders@example.com"));
        assert_eq!(
            addresses(msg.envelope().to()),
            ["ann@example.com", "bob@example.com", "cy@example.com", "audit@example.com", "dee@example.com"]
        );
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("Cc: Cy <cy@example.com>") && !text.contains("audit@"), "{text}");
    }

    #[test]
    fn names_the_bad_field() {
        let mut bad = email();
        bad.to = vec!["not an address".into()];
        assert!(error(&bad).contains("`to`"));
        let mut none = email();
        none.to.clear();
        assert!(error(&none).contains("no recipient"));
        let mut reserved = email();
        reserved.headers = vec![("Subject".into(), "x".into())];
        assert!(error(&reserved).contains("Subject"));
    }

    #[test]
    fn header_names_are_field_names_and_not_reserved() {
        for name in [
            "X-A\r\nFrom: Bank <billing@bank.example>",
            "X-A\nBcc: thief@evil.example",
            "X A",
            "X-A:",
            "",
            "Résumé",
            "Resent-From",
            "Content-Type",
            "content-disposition",
            "SENDER",
            &"X".repeat(77),
        ] {
            let mut bad = email();
            bad.headers = vec![(name.to_string(), "v".into())];
            let err = error(&bad);
            assert!(err.contains("header"), "{name:?}: {err}");
        }
        let mut control = email();
        control.headers = vec![("X-A".into(), "a\u{1b}[31m".into())];
        assert!(error(&control).contains("control"));
    }
}
