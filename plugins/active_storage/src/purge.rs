//! `ActiveStorage::PurgeJob`: `Blob#purge`, which destroys the blob's row
//! (with its variants' records and its preview image) and then deletes
//! its files. A blob still attached somewhere is left alone, as Rails'
//! `before_destroy` check and its `rescue ActiveRecord::InvalidForeignKey`
//! leave it.

use crate::blob::{ATTACHMENT, Attachment, BLOB, Blob, VARIANT_RECORD, attachments_of};
use jobrunner_plugin_sdk::bindings::jobrunner::plugin::records::{self as host, RecordError};
use jobrunner_plugin_sdk::{JobError, Level, blobs, log, records};
use serde::Deserialize;

pub fn perform(gid: &str) -> Result<(), JobError> {
    let Some(blob) = Blob::locate(gid)? else { return Ok(()) };
    purge(&blob)
}

#[derive(Deserialize)]
struct Row {
    id: i64,
}

fn purge(blob: &Blob) -> Result<(), JobError> {
    let attached: Vec<Row> = records::find_all_by(ATTACHMENT, "blob_id", blob.id, &["id"], 1)?;
    if !attached.is_empty() {
        log(Level::Info, &format!("blob {} is still attached; not purged", blob.id));
        return Ok(());
    }
    for variant in variant_records(blob.id)? {
        for attachment in attachments_of(VARIANT_RECORD, variant.id)? {
            detach_and_purge(&attachment)?;
        }
        records::delete(VARIANT_RECORD, variant.id)?;
    }
    for preview in attachments_of(BLOB, blob.id)? {
        detach_and_purge(&preview)?;
    }
    match host::delete(BLOB, &blob.id.to_string()) {
        Ok(_) => {}
        // Attached again since the check above: it stays, as in Rails.
        Err(RecordError::InvalidInput(reason)) if reason.contains("refused") => {
            log(Level::Info, &format!("blob {} was attached again; not purged ({reason})", blob.id));
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    }
    blobs::delete(blob.service(), &blob.key)?;
    if blob.is_image() {
        blobs::delete_prefixed(blob.service(), &format!("variants/{}", blob.key))?;
    }
    log(Level::Info, &format!("blob {} purged", blob.id));
    Ok(())
}

/// The blob's variant records (Rails 6.1's `track_variants`); none when
/// the app has no such table.
fn variant_records(blob_id: i64) -> Result<Vec<Row>, JobError> {
    match host::find_all_by(VARIANT_RECORD, "blob_id", &blob_id.to_string(), &["id".to_string()], 1000) {
        Ok(json) => serde_json::from_str(&json)
            .map_err(|e| JobError::Permanent(format!("records: unexpected variant records: {e}"))),
        Err(RecordError::InvalidInput(reason)) if reason.contains("no table") => Ok(Vec::new()),
        Err(err) => Err(err.into()),
    }
}

fn detach_and_purge(attachment: &Attachment) -> Result<(), JobError> {
    records::delete(ATTACHMENT, attachment.id)?;
    match Blob::find(attachment.blob_id)? {
        Some(blob) => purge(&blob),
        None => Ok(()),
    }
}
