//! Rails' own Active Storage jobs, performed in the sandbox:
//!
//! - `ActiveStorage::AnalyzeJob` (enqueued by every `attach`): reads the
//!   blob's file, decodes an image's header for its width and height (as
//!   Rails' image analyzer does, turned for EXIF orientations that swap
//!   them) and writes the blob's `metadata` back with `analyzed: true`;
//! - `ActiveStorage::PurgeJob` (`purge_later`): deletes the blob's row, its
//!   variants' and preview's rows, and then its files, as `Blob#purge`
//!   does, and leaves a blob something still has attached;
//! - `ActiveStorage::TransformJob` (Rails 7.1+, for `preprocessed: true`
//!   variants): resizes the image as the variant's transformations say and
//!   stores it as a new blob attached to a variant record under Rails'
//!   digest of the variation, as `VariantWithRecord#process` does;
//! - `ActiveStorage::MirrorJob` (a Mirror service): copies a file uploaded
//!   to the primary to each mirror that lacks it.
//!
//! Each but the last takes the blob's GlobalID, as Rails enqueues them,
//! and does nothing for a blob that no longer exists (Rails discards those jobs too). The
//! image is untrusted input: decoding it here runs under the sandbox's
//! memory cap and deadline, with no files or shell to reach.

mod analyze;
mod blob;
mod decode;
mod marshal;
mod mirror;
mod purge;
mod resize;
mod transform;
mod variation;

use jobrunner_plugin_sdk::{Args, Guest, Job, JobError, PluginInfo, plugin_info};

struct ActiveStorage;

impl Guest for ActiveStorage {
    fn describe() -> PluginInfo {
        plugin_info(
            "active_storage",
            env!("CARGO_PKG_VERSION"),
            &[
                "ActiveStorage::AnalyzeJob",
                "ActiveStorage::PurgeJob",
                "ActiveStorage::TransformJob",
                "ActiveStorage::MirrorJob",
            ],
        )
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let args = Args::parse(&job.args)?;
        let blob = || args.required::<String>("blob", 0);
        match job.class.as_str() {
            "ActiveStorage::AnalyzeJob" => analyze::perform(&blob()?),
            "ActiveStorage::PurgeJob" => purge::perform(&blob()?),
            "ActiveStorage::TransformJob" => {
                transform::perform(&blob()?, &args.required("transformations", 1)?)
            }
            "ActiveStorage::MirrorJob" => mirror::perform(&args),
            other => Err(JobError::Permanent(format!("active_storage does not perform {other}"))),
        }
    }
}

jobrunner_plugin_sdk::export_plugin!(ActiveStorage);
