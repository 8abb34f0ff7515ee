//! Sends the welcome mail for `WelcomeMailJob`.
//!
//! Arguments: `[{"email":"new@example.com","name":"Ann"}]` or
//! positionally `["new@example.com", "Ann"]`.

use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, PluginInfo, mail, plugin_info};

struct WelcomeMail;

impl Guest for WelcomeMail {
    fn describe() -> PluginInfo {
        plugin_info("welcome_mail", env!("CARGO_PKG_VERSION"), &["WelcomeMailJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let email: String = args.required("email", 0)?;
        let name: String = args.required("name", 1)?;
        let body =
            format!("Hello {name},\n\nwelcome aboard! Your account for {email} is ready.\n\nSee you soon.\n");
        mail::send(&mail::Email::new(&email, format!("Welcome, {name}!"), body))?;
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(WelcomeMail);
