//! A plugin whose `describe` panics, for the runner's tests: it must be
//! refused with the panic message, and never serve a job.

use jobrunner_plugin_sdk::{Guest, Job, JobError, PluginInfo};

struct BadDescribe;

impl Guest for BadDescribe {
    fn describe() -> PluginInfo {
        panic!("bad_describe cannot describe itself")
    }

    fn perform(_job: Job) -> Result<(), JobError> {
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(BadDescribe);
