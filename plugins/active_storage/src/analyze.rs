//! `ActiveStorage::AnalyzeJob`: `Blob#analyze`, which merges what the
//! analyzer found and `analyzed: true` into the blob's `metadata`.
//!
//! An image is untrusted input. It is decoded here, in the sandbox, under
//! limits of its own besides the sandbox's memory cap and deadline: a file
//! that lies about its format, is damaged, or claims more pixels than an
//! image may have fails the job for good, and its blob is left as it was.

use crate::blob::{BLOB, Blob};
use image::metadata::Orientation;
use image::{ImageDecoder, ImageError, ImageFormat, ImageReader};
use jobrunner_plugin_sdk::{JobError, Level, blobs, log, records};
use serde_json::{Map, Value, json};
use std::io::Cursor;

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

/// The most pixels per side and in all an image may have: those of
/// Debian's ImageMagick policy (16KP, 128MP), which Rails' analyzer runs
/// under there.
const MAX_SIDE: u32 = 16_384;
const MAX_PIXELS: u64 = 128 * 1024 * 1024;

/// Images whose pixels fit in this many bytes are decoded whole, so that a
/// truncated or corrupt file is caught here rather than in a later
/// variant; a bigger one is measured by its header, as `identify` does.
const MAX_DECODED_BYTES: u64 = 48 * 1024 * 1024;

/// The image's width and height as it is shown (an EXIF orientation that
/// turns it by a quarter swaps them, as Rails' analyzers do), or `None`
/// for an image in a format this doesn't decode. A file that isn't the
/// image its content type says, can't be decoded, or is too big is a
/// permanent error: the blob stays unanalyzed. A file missing from
/// the service is retried: an upload may not have finished.
fn dimensions(blob: &Blob) -> Result<Option<(u32, u32)>, JobError> {
    let bad = |reason: String| JobError::Permanent(format!("blob {} ({}): {reason}", blob.id, blob.key));
    let Some(bytes) = blobs::read_optional(blob.service(), &blob.key)? else {
        return Err(JobError::Retryable(format!(
            "the file of blob {} ({}) is not in its service",
            blob.id, blob.key
        )));
    };
    let reader =
        ImageReader::new(Cursor::new(&bytes[..])).with_guessed_format().map_err(|e| bad(e.to_string()))?;
    let declared = blob.content_type.as_deref().unwrap_or_default();
    let claimed = ImageFormat::from_mime_type(declared).or_else(|| alias(declared));
    match (reader.format(), claimed) {
        (Some(format), Some(claimed)) if format == claimed && DECODED.contains(&format) => {}
        (Some(format), Some(claimed)) if format == claimed => return Ok(None),
        (Some(format), _) => {
            return Err(bad(format!(
                "its content type is {declared} but its bytes are {}",
                format.to_mime_type()
            )));
        }
        (None, Some(claimed)) if DECODED.contains(&claimed) => {
            return Err(bad(format!("its content type is {declared} but its bytes are no such image")));
        }
        // SVG, HEIC and the like: not a format this decodes.
        (None, _) => return Ok(None),
    }
    // JPEG decoders show a cut-off file with its missing part grey; Rails'
    // analyzer would too. Such an upload failed, and isn't taken for whole.
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_whole(&bytes) {
        return Err(bad("a damaged image: the JPEG ends before its end marker".into()));
    }
    let mut decoder = reader.into_decoder().map_err(|err| match err {
        // The decoder's own allocation limit, from the header alone.
        ImageError::Limits(err) => bad(format!("more pixels than an image may have ({err})")),
        err => bad(format!("not a readable image: {err}")),
    })?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(bad(format!(
            "{width}×{height} pixels, more pixels than an image may have ({MAX_SIDE} a side, {} megapixels)",
            MAX_PIXELS >> 20
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    if decoder.total_bytes() <= MAX_DECODED_BYTES {
        let mut pixels = vec![0; decoder.total_bytes() as usize];
        decoder.read_image(&mut pixels).map_err(|e| bad(format!("a damaged image: {e}")))?;
    }
    let turned = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    Ok(Some(if turned { (height, width) } else { (width, height) }))
}

/// The formats this plugin decodes; an image in another (SVG, HEIC, AVIF)
/// is analyzed without dimensions, as Rails' analyzer leaves one its
/// image library can't read.
const DECODED: [ImageFormat; 6] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Gif,
    ImageFormat::WebP,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

/// Content types browsers and Marcel give some formats by other names.
fn alias(declared: &str) -> Option<ImageFormat> {
    match declared {
        "image/jpg" | "image/pjpeg" => Some(ImageFormat::Jpeg),
        "image/x-ms-bmp" => Some(ImageFormat::Bmp),
        "image/x-png" => Some(ImageFormat::Png),
        _ => None,
    }
}

/// Whether a JPEG has its end marker (`FF D9`) after its last scan's start
/// (`FF DA`): a thumbnail in its EXIF data has both before the main scan,
/// and inside a scan `FF` is always followed by `00` or a restart marker.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}
