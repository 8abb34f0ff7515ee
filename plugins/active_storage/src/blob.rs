//! An Active Storage blob as its row has it, and the models around it.

use jobrunner_plugin_sdk::rails::is_gid_of;
use jobrunner_plugin_sdk::records;
use jobrunner_plugin_sdk::{JobError, Level, log};
use serde::Deserialize;

pub const BLOB: &str = "ActiveStorage::Blob";
pub const ATTACHMENT: &str = "ActiveStorage::Attachment";
pub const VARIANT_RECORD: &str = "ActiveStorage::VariantRecord";

/// The columns of `active_storage_blobs` these jobs use.
#[derive(Deserialize)]
pub struct Blob {
    pub id: i64,
    pub key: String,
    /// The uploaded file's name; variants are named after it.
    #[serde(default)]
    pub filename: String,
    pub content_type: Option<String>,
    /// JSON text (`{"identified":true}`), as Rails stores it.
    pub metadata: Option<String>,
    /// Rails 6.1 and later; `None` (the default service) before.
    #[serde(default)]
    pub service_name: Option<String>,
}

impl Blob {
    /// The blob `gid` names, or `None` when it no longer exists (the job
    /// has nothing left to do, as Rails' `discard_on RecordNotFound`).
    pub fn locate(gid: &str) -> Result<Option<Blob>, JobError> {
        if !is_gid_of(gid, BLOB) {
            return Err(JobError::Permanent(format!("{gid} is not the GlobalID of an {BLOB}")));
        }
        let blob = records::locate(gid, &[])?;
        if blob.is_none() {
            log(Level::Info, &format!("{gid} no longer exists; nothing to do"));
        }
        Ok(blob)
    }

    /// The blob with primary key `id`, if it exists.
    pub fn find(id: i64) -> Result<Option<Blob>, JobError> {
        records::find(BLOB, id, &[])
    }

    /// The service its file is in: its own, or "" for the default.
    pub fn service(&self) -> &str {
        self.service_name.as_deref().unwrap_or("")
    }

    /// Whether Rails takes it for an image (`Blob#image?`).
    pub fn is_image(&self) -> bool {
        self.content_type.as_deref().is_some_and(|t| t.starts_with("image/"))
    }
}

/// One row of `active_storage_attachments`.
#[derive(Deserialize)]
pub struct Attachment {
    pub id: i64,
    /// The attachment's name (`avatar`; `image` for a variant's file).
    #[serde(default)]
    pub name: String,
    pub record_type: String,
    pub blob_id: i64,
}

/// The attachments of rows of `model` (`record_type`) with `record_id`.
pub fn attachments_of(record_type: &str, record_id: i64) -> Result<Vec<Attachment>, JobError> {
    let rows: Vec<Attachment> = records::find_all_by(ATTACHMENT, "record_id", record_id, &[], 1000)?;
    Ok(rows.into_iter().filter(|a| a.record_type == record_type).collect())
}
