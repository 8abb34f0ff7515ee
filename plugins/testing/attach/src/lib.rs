//! A plugin that mails attachments, for the tests of `send-mail-with-
//! attachments`: `AttachJob(kind, to, service, key)` sends
//!
//! - `files`: a text file, a binary file (bytes 0 to 255) and, in an HTML
//!   body, an inline image shown as `cid:logo`;
//! - `blob`: the stored file `key` of `service` as `report.csv`;
//! - `big`: 2 MiB of bytes, for a policy that allows less.

use jobrunner_plugin_sdk::mail::{self, Attachment, Email};
use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, PluginInfo, plugin_info};

struct Attach;

/// The inline image: any bytes do, the test compares them.
const LOGO: &[u8] = b"\x89PNG\r\n\x1a\n not really a picture";

impl Guest for Attach {
    fn describe() -> PluginInfo {
        plugin_info("attach", "1.0.0", &["AttachJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let kind: String = args.required("kind", 0)?;
        let to: String = args.required("to", 1)?;
        let email = Email::new(&to, format!("Attachments: {kind}"), "See the attached files.\n");
        let attachments = match kind.as_str() {
            "files" => {
                let email =
                    Email { html_body: Some("<p>Our logo: <img src=\"cid:logo\"></p>".into()), ..email };
                let binary: Vec<u8> = (0..=255).collect();
                let files = [
                    Attachment::bytes("notes.txt", "text/plain", b"line one\nline two\n".to_vec()),
                    Attachment::bytes("bytes.bin", "application/octet-stream", binary),
                    Attachment::bytes("logo.png", "image/png", LOGO.to_vec()).inline("logo"),
                ];
                return mail::send_with_attachments(&email, &files).map(|_| ());
            }
            "blob" => {
                let (service, key): (String, String) =
                    (args.required("service", 2)?, args.required("key", 3)?);
                vec![Attachment::blob("report.csv", "text/csv", &service, &key)]
            }
            "big" => vec![Attachment::bytes("big.bin", "application/octet-stream", vec![7; 2 << 20])],
            other => return Err(JobError::Permanent(format!("unknown kind {other}"))),
        };
        mail::send_with_attachments(&email, &attachments)?;
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(Attach);
