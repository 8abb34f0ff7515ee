//! `ActiveStorage::AnalyzeJob`: `Blob#analyze`, which merges what the
//! analyzer found and `analyzed: true` into the blob's `metadata`.

use crate::blob::{BLOB, Blob};
use image::ImageDecoder;
use image::metadata::Orientation;
use jobrunner_plugin_sdk::{JobError, Level, blobs, log, records};
use serde_json::{Map, Value, json};
use std::io::Cursor;

pub fn perform(gid: &str) -> Result<(), JobError> {
    let Some(blob) = Blob::locate(gid)? else { return Ok(()) };
    let mut metadata = stored_metadata(&blob);
    if blob.is_image() {
        match dimensions(&blob)? {
            Ok((width, height)) => {
                metadata.insert("width".into(), json!(width));
                metadata.insert("height".into(), json!(height));
            }
            // As Rails' analyzer does: no dimensions, the blob is still analyzed.
            Err(reason) => {
                log(Level::Warn, &format!("Skipping image analysis of blob {}: {reason}", blob.id))
            }
        }
    }
    metadata.insert("analyzed".into(), json!(true));
    if !records::update(BLOB, blob.id, &json!({ "metadata": metadata }))? {
        log(Level::Info, &format!("blob {} was deleted while it was analyzed", blob.id));
    }
    Ok(())
}

/// The blob's metadata as Rails stored it: JSON text of an object.
fn stored_metadata(blob: &Blob) -> Map<String, Value> {
    match blob.metadata.as_deref().map(serde_json::from_str) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    }
}

/// The image's width and height as it is shown (an EXIF orientation that
/// turns it by a quarter swaps them, as Rails' analyzers do), or why it
/// can't be decoded. A file missing from the service is retried: an
/// upload may not have finished.
fn dimensions(blob: &Blob) -> Result<Result<(u32, u32), String>, JobError> {
    let Some(bytes) = blobs::read_optional(blob.service(), &blob.key)? else {
        return Err(JobError::Retryable(format!(
            "the file of blob {} ({}) is not in its service",
            blob.id, blob.key
        )));
    };
    let reader = match image::ImageReader::new(Cursor::new(bytes)).with_guessed_format() {
        Ok(reader) => reader,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let (width, height) = decoder.dimensions();
    let turned = matches!(
        decoder.orientation().unwrap_or(Orientation::NoTransforms),
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    Ok(Ok(if turned { (height, width) } else { (width, height) }))
}
