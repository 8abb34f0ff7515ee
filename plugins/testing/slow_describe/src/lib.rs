//! A plugin whose `describe` never returns, for the runner's tests: it must
//! be refused after describe's own short deadline, once, without holding
//! up the plugins loaded after it for a job's time limit.

use jobrunner_plugin_sdk::{Guest, Job, JobError, PluginInfo};

struct SlowDescribe;

impl Guest for SlowDescribe {
    fn describe() -> PluginInfo {
        loop {
            std::hint::black_box(());
        }
    }

    fn perform(_job: Job) -> Result<(), JobError> {
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(SlowDescribe);
