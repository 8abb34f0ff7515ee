//! Does nothing, for `NoopJob`: the benchmark's measure of what the runner
//! itself costs per job (fetch, a fresh sandboxed instance, acknowledge).

use jobrunner_plugin_sdk::{Guest, Job, JobError, PluginInfo, plugin_info};

struct Noop;

impl Guest for Noop {
    fn describe() -> PluginInfo {
        plugin_info("noop", env!("CARGO_PKG_VERSION"), &["NoopJob"])
    }

    fn perform(_job: Job) -> Result<(), JobError> {
        Ok(())
    }
}

jobrunner_plugin_sdk::export_plugin!(Noop);
