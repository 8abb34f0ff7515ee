// The body shared by the contract test plugins, included after their
// bindings and their NAME, VERSION and CLASS constants. Their job mails
// `args[0]` with the subject `args[1]`.

use jobrunner::plugin::mail::{Email, send_mail};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo { name: NAME.into(), version: VERSION.into(), classes: vec![CLASS.into()] }
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
            text_body: format!("sent by a plugin built against {VERSION}\n"),
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
