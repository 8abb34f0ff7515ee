//! A plugin built against `jobrunner:plugin@0.1.0` (a copy of that WIT in
//! `testing/contracts`), to test which contract versions the runner loads.
//! `OldContractJob` mails `args[0]` with the subject `args[1]`.

// The generated bindings take every field of a record as an argument.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ path: "../contracts/0.1.0", world: "job-plugin" });

use jobrunner::plugin::mail::{Email, send_mail};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "old_contract".into(),
            version: "0.1.0".into(),
            classes: vec!["OldContractJob".into()],
        }
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = strings(&job.args);
        let (Some(to), Some(subject)) = (args.first(), args.get(1)) else {
            return Err(JobError::Permanent("expected [to, subject]".into()));
        };
        let email = Email {
            from: None,
            to: vec![to.clone()],
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: subject.clone(),
            text_body: "sent by a plugin built against 0.1.0\n".into(),
            html_body: None,
            headers: vec![],
        };
        send_mail(&email).map(|_| ()).map_err(|e| JobError::Retryable(format!("{e:?}")))
    }
}

/// The strings of a flat JSON array of strings, without a JSON crate.
fn strings(text: &str) -> Vec<String> {
    text.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

export!(Plugin);
