//! A plugin whose `describe` names it with control characters and a line
//! that looks like the runner's own, for the runner's tests: it must be
//! refused, and the log must show the name escaped.

use jobrunner_plugin_sdk::{Guest, Job, JobError, PluginInfo, plugin_info};

struct OddDescribe;

impl Guest for OddDescribe {
    fn describe() -> PluginInfo {
        let name = "odd\u{1b}[2J\n1999-09-09T09:09:09.000000Z  INFO jobrunner::runner: runner stopped";
        plugin_info(name, "1.0.0", &["OddJob"])
    }

    fn perform(_job: Job) -> Result<(), JobError> {
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(OddDescribe);
