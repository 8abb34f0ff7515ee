//! One plugin's rules, applied to each `send-mail` and `log` call.

use super::Rules;
use super::rate::{Rate, Turn};
use crate::wit::Email;
use lettre::message::Mailbox;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often, at most, a plugin's dropped log lines are noted in the log.
pub const NOTE_DROPS_EVERY: Duration = Duration::from_secs(1);

/// Applies a plugin's [`Rules`]; shared by all its instances.
pub struct Guard {
    /// The limits.
    rules: Rules,
    /// The runner's default sender, always allowed.
    default_sender: String,
    /// Paces `send-mail` across the plugin's jobs.
    mail_rate: Rate,
    /// Paces `log` across the plugin's jobs.
    log_rate: Rate,
    /// Log lines dropped at that pace and not yet noted.
    log_drops: Mutex<Drops>,
}

/// Log lines dropped since the last note, and when that was.
#[derive(Default)]
struct Drops {
    lines: u64,
    jobs: u64,
    noted: Option<Instant>,
}

/// What a note about dropped log lines says.
#[derive(Debug, PartialEq)]
pub struct DroppedLogs {
    /// Lines dropped since the last note.
    pub lines: u64,
    /// How many jobs dropped them.
    pub jobs: u64,
}

impl Guard {
    pub fn new(rules: Rules, default_sender: &Mailbox) -> Guard {
        Guard {
            mail_rate: Rate::new(rules.mail_per_second),
            log_rate: Rate::new(rules.log_lines_per_second),
            log_drops: Mutex::default(),
            default_sender: default_sender.email.to_string().to_lowercase(),
            rules,
        }
    }

    /// Checks call `seq` (0 for a job's first) of `send-mail`; the error
    /// says which rule the message breaks. A message within the rules gets
    /// its turn at the plugin's mail rate, to wait for before sending.
    pub fn check_mail(&self, email: &Email, seq: u32) -> Result<Turn<'_>, String> {
        self.check_mail_with(email, 0, seq)
    }

    /// As [`Guard::check_mail`], for a message carrying `attached` bytes of
    /// attachments, which count against `max_message_bytes`.
    pub fn check_mail_with(&self, email: &Email, attached: usize, seq: u32) -> Result<Turn<'_>, String> {
        let rules = &self.rules;
        if seq >= rules.max_mails_per_job {
            return Err(format!(
                "a job may send at most {} mails (max_mails_per_job)",
                rules.max_mails_per_job
            ));
        }
        let recipients = email.to.len() + email.cc.len() + email.bcc.len();
        if recipients > rules.max_recipients {
            return Err(format!(
                "{recipients} recipients, more than the {} allowed (max_recipients)",
                rules.max_recipients
            ));
        }
        if email.headers.len() > rules.max_headers {
            return Err(format!(
                "{} extra headers, more than the {} allowed (max_headers)",
                email.headers.len(),
                rules.max_headers
            ));
        }
        let header_bytes: usize = email.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if header_bytes > rules.max_header_bytes {
            return Err(format!(
                "the extra headers are {header_bytes} bytes, more than the {} allowed (max_header_bytes)",
                rules.max_header_bytes
            ));
        }
        let size = crate::mail::message_size(email) + attached;
        if size > rules.max_message_bytes {
            return Err(format!(
                "the message is {size} bytes, more than the {} allowed (max_message_bytes)",
                rules.max_message_bytes
            ));
        }
        if let Some(from) = &email.from {
            self.check_sender(from)?;
        }
        if !rules.allowed_recipient_domains.is_empty() {
            for address in email.to.iter().chain(&email.cc).chain(&email.bcc) {
                self.check_recipient(address)?;
            }
        }
        Ok(self.mail_rate.reserve())
    }

    /// Whether a log line may be written now.
    pub fn allow_log(&self) -> bool {
        self.log_rate.try_take()
    }

    /// Counts the `lines` a job dropped at the log rate, and says what to
    /// note in the log now: the first time, and then at most once per
    /// [`NOTE_DROPS_EVERY`], with everything dropped since the last note.
    /// A plugin that floods its log drops lines in every job; a note per
    /// job would flood the log in its place.
    pub fn dropped_logs(&self, lines: u64) -> Option<DroppedLogs> {
        let mut drops = self.log_drops.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drops.lines += lines;
        drops.jobs += 1;
        let now = Instant::now();
        if drops.noted.is_some_and(|noted| now.duration_since(noted) < NOTE_DROPS_EVERY) {
            return None;
        }
        let note = DroppedLogs { lines: drops.lines, jobs: drops.jobs };
        *drops = Drops { noted: Some(now), ..Drops::default() };
        Some(note)
    }

    /// The models and columns the plugin may read.
    pub fn record_grants(&self) -> &super::Grants {
        &self.rules.records
    }

    /// The columns the plugin may update, by model.
    pub fn record_writes(&self) -> &super::WriteGrants {
        &self.rules.writes
    }

    /// The columns the plugin may set in new records, by model.
    pub fn record_inserts(&self) -> &super::WriteGrants {
        &self.rules.inserts
    }

    /// The models whose rows the plugin may delete.
    pub fn record_deletes(&self) -> &[String] {
        &self.rules.deletes
    }

    /// What the plugin may do with stored files.
    /// The largest message, attachments included (`max_message_bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.rules.max_message_bytes
    }

    pub fn blob_grants(&self) -> &super::BlobGrants {
        &self.rules.blobs
    }

    /// The plugin's compiled HTTP grant, if its policy has one.
    pub fn http(&self) -> Option<&std::sync::Arc<crate::outbound::Routes>> {
        self.rules.http.as_ref().and_then(|grant| grant.routes())
    }

    /// The plugin's signing key called `name`, if its policy names one.
    pub fn signing_key(&self, name: &str) -> Option<&[u8]> {
        self.rules.keys.get(name).map(|secret| secret.0.as_slice())
    }

    /// The log rate, for the note about dropped lines.
    pub fn log_lines_per_second(&self) -> u32 {
        self.rules.log_lines_per_second
    }

    fn check_sender(&self, from: &str) -> Result<(), String> {
        // An unparsable address is reported as invalid input later.
        let Ok(mailbox) = from.parse::<Mailbox>() else { return Ok(()) };
        let address = mailbox.email.to_string().to_lowercase();
        let domain = format!("@{}", mailbox.email.domain().to_lowercase());
        let allowed = address == self.default_sender
            || self
                .rules
                .allowed_senders
                .iter()
                .any(|a| a.to_lowercase() == address || a.to_lowercase() == domain);
        if allowed { Ok(()) } else { Err(format!("sender {address} is not allowed (allowed_senders)")) }
    }

    fn check_recipient(&self, address: &str) -> Result<(), String> {
        let Ok(mailbox) = address.parse::<Mailbox>() else { return Ok(()) };
        let domain = mailbox.email.domain().to_lowercase();
        if self
            .rules
            .allowed_recipient_domains
            .iter()
            .any(|d| d.trim_start_matches('@').to_lowercase() == domain)
        {
            Ok(())
        } else {
            Err(format!("recipient domain {domain} is not allowed (allowed_recipient_domains)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: &[&str]) -> Email {
        Email {
            from: None,
            to: to.iter().map(|s| s.to_string()).collect(),
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: "Hi".into(),
            text_body: "body".into(),
            html_body: None,
            headers: vec![],
        }
    }

    fn guard(rules: Rules) -> Guard {
        Guard::new(rules, &"Shop <shop@example.com>".parse().unwrap())
    }

    #[test]
    fn dropped_log_lines_are_noted_at_once_then_at_most_once_a_second() {
        let g = guard(Rules::default());
        assert_eq!(g.dropped_logs(5), Some(DroppedLogs { lines: 5, jobs: 1 }));
        // A flood in every job: counted, not noted per job.
        for _ in 0..1000 {
            assert_eq!(g.dropped_logs(2), None);
        }
        g.log_drops.lock().unwrap().noted = Instant::now().checked_sub(NOTE_DROPS_EVERY);
        assert_eq!(g.dropped_logs(3), Some(DroppedLogs { lines: 2003, jobs: 1001 }));
        assert_eq!(g.dropped_logs(1), None);
    }

    #[test]
    fn each_rule_names_itself() {
        let g = guard(Rules {
            max_recipients: 2,
            max_message_bytes: 100,
            max_mails_per_job: 3,
            ..Rules::default()
        });
        assert!(g.check_mail(&email(&["a@x.org"]), 0).is_ok());
        assert!(g.check_mail(&email(&["a@x.org"]), 3).unwrap_err().contains("max_mails_per_job"));
        assert!(
            g.check_mail(&email(&["a@x.org", "b@x.org", "c@x.org"]), 0)
                .unwrap_err()
                .contains("max_recipients")
        );
        let mut big = email(&["a@x.org"]);
        big.text_body = "x".repeat(200);
        assert!(g.check_mail(&big, 0).unwrap_err().contains("max_message_bytes"));
        let mut many = email(&["a@x.org"]);
        many.headers = (0..51).map(|i| (format!("X-{i}"), "v".to_string())).collect();
        assert!(g.check_mail(&many, 0).unwrap_err().contains("max_headers"));
        let g = guard(Rules::default());
        many.headers = vec![("X-Long".into(), "v".repeat(20_000))];
        assert!(g.check_mail(&many, 0).unwrap_err().contains("max_header_bytes"));
    }

    #[test]
    fn senders_and_recipient_domains() {
        let g = guard(Rules {
            allowed_senders: vec!["@news.example.com".into()],
            allowed_recipient_domains: vec!["customers.org".into()],
            ..Rules::default()
        });
        let mut mail = email(&["a@customers.org"]);
        mail.from = Some("shop@example.com".into());
        assert!(g.check_mail(&mail, 0).is_ok(), "the default sender is always allowed");
        mail.from = Some("Letters <hello@news.example.com>".into());
        assert!(g.check_mail(&mail, 0).is_ok());
        mail.from = Some("ceo@evil.example".into());
        assert!(g.check_mail(&mail, 0).unwrap_err().contains("allowed_senders"));
        mail.from = None;
        mail.to.push("b@elsewhere.net".into());
        assert!(g.check_mail(&mail, 0).unwrap_err().contains("elsewhere.net"));
    }

    #[test]
    fn past_the_mail_rate_calls_wait() {
        let g = guard(Rules { mail_per_second: 2, ..Rules::default() });
        // Turns are kept, as by jobs waiting for them.
        let turns: Vec<_> = (0..3).map(|seq| g.check_mail(&email(&["a@x.org"]), seq).unwrap()).collect();
        assert_eq!((turns[0].wait, turns[1].wait), (Duration::ZERO, Duration::ZERO));
        assert!(turns[2].wait > Duration::from_millis(400), "{:?}", turns[2].wait);
    }
}
