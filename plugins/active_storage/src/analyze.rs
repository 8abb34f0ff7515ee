//! `ActiveStorage::AnalyzeJob`: `Blob#analyze`, which merges what the
//! analyzer found and `analyzed: true` into the blob's `metadata`.
//!
//! The image is checked and decoded by [`crate::decode`]: one that lies
//! about its format, is damaged, or is too big fails the job for good, and
//! its blob is left as it was.

use crate::blob::{BLOB, Blob};
use crate::decode::{MAX_DECODED_BYTES, Source, bad, turns};
use image::ImageDecoder;
use jobrunner_plugin_sdk::{JobError, Level, log, records};
use serde_json::{Map, Value, json};

pub fn perform(gid: &str) -> Result<(), JobError> {
    let Some(blob) = Blob::locate(gid)? else { return Ok(()) };
    let mut metadata = stored_metadata(&blob);
    if blob.is_image() {
        match dimensions(&blob)? {
            Some((width, height)) => {
                metadata.insert("width".into(), json!(width));
                metadata.insert("height".into(), json!(height));
            }
            None => log(
                Level::Info,
                &format!(
                    "blob {} is an image in a format this doesn't decode; analyzed without its size",
                    blob.id
                ),
            ),
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
/// turns it by a quarter swaps them, as Rails' analyzers do), or `None`
/// for an image in a format this doesn't decode. An image whose pixels
/// fit in [`MAX_DECODED_BYTES`] is decoded whole, so that a truncated or
/// corrupt file is caught here rather than in a later variant; a bigger
/// one is measured by its header, as `identify` does.
fn dimensions(blob: &Blob) -> Result<Option<(u32, u32)>, JobError> {
    let Some(source) = Source::read(blob)? else { return Ok(None) };
    let (decoder, orientation) = source.decoder(blob)?;
    let (width, height) = decoder.dimensions();
    if decoder.total_bytes() <= MAX_DECODED_BYTES {
        let mut pixels = vec![0; decoder.total_bytes() as usize];
        decoder.read_image(&mut pixels).map_err(|e| bad(blob, format!("a damaged image: {e}")))?;
    }
    Ok(Some(if turns(orientation) { (height, width) } else { (width, height) }))
}
