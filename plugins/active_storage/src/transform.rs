//! `ActiveStorage::TransformJob` (Rails 7.1+, enqueued for a
//! `preprocessed: true` variant): `blob.variant(transformations).processed`
//! as `VariantWithRecord#process` does it. The image is resized in the
//! sandbox, written as a new blob in the original's service, and attached
//! as `image` to a variant record under the variation's digest, where the
//! app looks for it.
//!
//! A variant already there is left alone. A run cut off between the steps
//! is completed by the next: a variant record without its image gets one.
//! Two runs at once race on the variant record's unique index, and the
//! loser removes the blob it made.

use crate::blob::{ATTACHMENT, BLOB, Blob, VARIANT_RECORD, attachments_of};
use crate::decode::{MAX_DECODED_BYTES, Source, bad};
use crate::resize;
use crate::variation::{Variation, extension};
use base64::Engine;
use image::{DynamicImage, ImageDecoder, ImageFormat};
use jobrunner_plugin_sdk::{JobError, Level, blobs, log, records};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::io::Cursor;

/// The content types `ActiveStorage.variable_content_types` lists that
/// aren't decoded here.
const VARIABLE_ONLY_BY_RAILS: [&str; 5] =
    ["image/vnd.adobe.photoshop", "image/vnd.microsoft.icon", "image/avif", "image/heic", "image/heif"];

#[derive(Deserialize)]
struct VariantRecord {
    id: i64,
    variation_digest: String,
}

pub fn perform(gid: &str, transformations: &Map<String, Value>) -> Result<(), JobError> {
    let Some(blob) = Blob::locate(gid)? else { return Ok(()) };
    if !representable(&blob)? {
        return Ok(());
    }
    let variation = Variation::new(&blob, transformations)?;
    let record = existing_record(&blob, &variation)?;
    if let Some(record) = &record
        && has_image(record.id)?
    {
        log(Level::Info, &format!("the variant of blob {} is already processed", blob.id));
        return Ok(());
    }
    let (bytes, size) = render(&blob, &variation)?;
    let variant = store(&blob, &variation, &bytes, size)?;
    let record_id = match record {
        Some(record) => record.id,
        None => match create_record(&blob, &variation, &variant)? {
            Some(id) => id,
            None => return Ok(()),
        },
    };
    let attachment =
        json!({"name": "image", "record_type": VARIANT_RECORD, "record_id": record_id, "blob_id": variant.0});
    records::insert(ATTACHMENT, &attachment)?;
    log(
        Level::Info,
        &format!("blob {} has its variant: blob {} ({}×{})", blob.id, variant.0, size.0, size.1),
    );
    Ok(())
}

/// Whether the blob can have variants. Rails discards the job for one
/// that can't (`UnrepresentableError`); previews of PDFs and videos, which
/// Rails makes with external tools, are not made here.
fn representable(blob: &Blob) -> Result<bool, JobError> {
    let kind = blob.content_type.as_deref().unwrap_or("no content type");
    if blob.is_image() {
        Ok(true)
    } else if kind.starts_with("video/") || kind == "application/pdf" {
        Err(JobError::Permanent(format!("blob {} ({kind}): previews are not made here", blob.id)))
    } else {
        log(Level::Info, &format!("blob {} ({kind}) has no variants; nothing to do", blob.id));
        Ok(false)
    }
}

/// Creates the variant record for `variant`; `None` when another run made
/// one first (its unique index refused ours), and this run's blob is gone.
fn create_record(
    blob: &Blob,
    variation: &Variation,
    variant: &(i64, String),
) -> Result<Option<i64>, JobError> {
    let record = json!({"blob_id": blob.id, "variation_digest": variation.digests[0]});
    match records::insert(VARIANT_RECORD, &record) {
        Ok(id) => {
            Ok(Some(id.parse().map_err(|_| JobError::Permanent(format!("a variant record's id {id}")))?))
        }
        Err(err) => {
            discard(blob, variant)?;
            match existing_record(blob, variation)? {
                Some(_) => {
                    log(Level::Info, &format!("another run made the variant of blob {}", blob.id));
                    Ok(None)
                }
                None => Err(err),
            }
        }
    }
}

/// The blob's variant record under any digest the app may use.
fn existing_record(blob: &Blob, variation: &Variation) -> Result<Option<VariantRecord>, JobError> {
    let rows: Vec<VariantRecord> =
        records::find_all_by(VARIANT_RECORD, "blob_id", blob.id, &["id", "variation_digest"], 1000)?;
    Ok(rows.into_iter().find(|r| variation.digests.contains(&r.variation_digest)))
}

/// Whether the variant record has its `image` attached.
fn has_image(record_id: i64) -> Result<bool, JobError> {
    Ok(attachments_of(VARIANT_RECORD, record_id)?.iter().any(|a| a.name == "image"))
}

/// The variant's file and its size.
fn render(blob: &Blob, variation: &Variation) -> Result<(Vec<u8>, (u32, u32)), JobError> {
    let Some(source) = Source::read(blob)? else {
        let declared = blob.content_type.as_deref().unwrap_or_default();
        let reason = match VARIABLE_ONLY_BY_RAILS.contains(&declared) {
            true => format!("{declared} images are not decoded here"),
            false => format!("a variant of a {declared} file can't be made"),
        };
        return Err(bad(blob, reason));
    };
    let (decoder, orientation) = source.decoder(blob)?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        let (w, h) = decoder.dimensions();
        return Err(bad(blob, format!("{w}×{h} pixels are more than a variant is made of here")));
    }
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| bad(blob, format!("a damaged image: {e}")))?;
    let image = resize::apply(image, orientation, &variation.steps).map_err(|e| bad(blob, e))?;
    let size = (image.width(), image.height());
    let bytes = encode(image, &variation.format, variation.quality).map_err(|e| bad(blob, e))?;
    Ok((bytes, size))
}

/// The image in `format`; a JPEG at `quality` (90 unless the variant's
/// `saver` says).
fn encode(image: DynamicImage, format: &str, quality: Option<u8>) -> Result<Vec<u8>, String> {
    let format = ImageFormat::from_extension(format).ok_or_else(|| format!("no encoder for {format}"))?;
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.unwrap_or(90));
            DynamicImage::ImageRgb8(image.to_rgb8()).write_with_encoder(encoder)
        }
        format if image.color().has_alpha() => {
            DynamicImage::ImageRgba8(image.to_rgba8()).write_to(&mut out, format)
        }
        format => DynamicImage::ImageRgb8(image.to_rgb8()).write_to(&mut out, format),
    };
    written.map_err(|e| format!("writing the variant: {e}"))?;
    Ok(out.into_inner())
}

/// Writes the variant's file and its blob row, named as Rails names it
/// (`photo.jpg` becomes `photo.png` for a PNG variant), already analyzed.
/// Returns the new blob's id and key.
fn store(
    blob: &Blob,
    variation: &Variation,
    bytes: &[u8],
    (width, height): (u32, u32),
) -> Result<(i64, String), JobError> {
    let key = new_key()?;
    let content_type = variation.content_type();
    blobs::write(blob.service(), &key, bytes, content_type)?;
    let base =
        blob.filename.strip_suffix(&format!(".{}", extension(&blob.filename))).unwrap_or(&blob.filename);
    let mut row = json!({
        "key": key,
        "filename": format!("{base}.{}", variation.format),
        "content_type": content_type,
        "metadata": {"identified": true, "width": width, "height": height, "analyzed": true},
        "byte_size": bytes.len(),
        "checksum": base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes)),
    });
    if let Some(service) = &blob.service_name {
        row["service_name"] = json!(service);
    }
    match records::insert(BLOB, &row) {
        Ok(id) => Ok((id.parse().map_err(|_| JobError::Permanent(format!("a blob's id {id}")))?, key)),
        Err(err) => {
            blobs::delete(blob.service(), &key)?;
            Err(err)
        }
    }
}

/// Removes a variant blob this run made and no longer needs.
fn discard(blob: &Blob, (id, key): &(i64, String)) -> Result<(), JobError> {
    records::delete(BLOB, id)?;
    blobs::delete(blob.service(), key)
}

/// A new blob key as Rails makes one: 28 characters of base 36.
fn new_key() -> Result<String, JobError> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut key = String::with_capacity(28);
    while key.len() < 28 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| JobError::Retryable(format!("no randomness for a blob key: {e}")))?;
        // Only bytes below 252 (7 × 36), so that every character is as likely.
        key.extend(
            bytes
                .iter()
                .filter(|b| **b < 252)
                .map(|b| ALPHABET[usize::from(*b % 36)] as char)
                .take(28 - key.len()),
        );
    }
    Ok(key)
}
