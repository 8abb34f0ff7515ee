//! `ActiveStorage::MirrorJob` (enqueued for each attachment when the app's
//! service is a Mirror, with the blob's key and `checksum:`): copies a
//! file uploaded straight to the primary (a direct upload) to each mirror
//! that lacks it, as `MirrorService#mirror` does, through the host. Rails
//! mirrors with the app's default service, whatever the blob's own.

use jobrunner_plugin_sdk::{Args, JobError, Level, blobs, log};
use serde::Deserialize;

/// `checksum:`, the job's keyword argument.
#[derive(Deserialize)]
struct Options {
    checksum: String,
}

pub fn perform(args: &Args) -> Result<(), JobError> {
    let key: String = args.required("key", 0)?;
    let Options { checksum } = args.required("checksum:", 1)?;
    match blobs::mirror("", &key, &checksum)? {
        Some(0) => log(Level::Info, &format!("blob {key} is on every mirror already")),
        Some(copies) => log(Level::Info, &format!("blob {key} copied to {copies} mirror(s)")),
        // Rails discards the job (`FileNotFoundError`).
        None => log(Level::Info, &format!("blob {key} is not in the primary service; nothing to mirror")),
    }
    Ok(())
}
