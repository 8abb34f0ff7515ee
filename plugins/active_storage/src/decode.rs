//! Reading an uploaded image safely: its bytes must be the format its
//! content type says, whole, and within the limits an image may have,
//! before any pixel is decoded. Shared by the analyzer and the variants.
//!
//! An image is untrusted input. Besides the sandbox's memory cap and
//! deadline, a file that lies about its format, is damaged, or claims more
//! pixels than an image may have fails its job for good.

use crate::blob::Blob;
use image::metadata::Orientation;
use image::{ImageDecoder, ImageError, ImageFormat, ImageReader};
use jobrunner_plugin_sdk::{JobError, blobs};
use std::io::Cursor;

/// The most pixels per side and in all an image may have: those of
/// Debian's ImageMagick policy (16KP, 128MP), which Rails' analyzer runs
/// under there.
const MAX_SIDE: u32 = 16_384;
const MAX_PIXELS: u64 = 128 * 1024 * 1024;

/// The most bytes an image's pixels may take to be decoded whole, inside
/// the sandbox's memory (64 MiB by default) with the file beside them.
pub const MAX_DECODED_BYTES: u64 = 48 * 1024 * 1024;

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

/// A blob's file, checked to be an image in a format this decodes.
pub struct Source {
    bytes: Vec<u8>,
    pub format: ImageFormat,
}

/// A permanent error naming the blob and what is wrong with its file.
pub fn bad(blob: &Blob, reason: impl std::fmt::Display) -> JobError {
    JobError::Permanent(format!("blob {} ({}): {reason}", blob.id, blob.key))
}

impl Source {
    /// The blob's file, or `None` for an image in a format this doesn't
    /// decode. A file that isn't the image its content type says is a
    /// permanent error; a file missing from the service is retried (an
    /// upload may not have finished).
    pub fn read(blob: &Blob) -> Result<Option<Source>, JobError> {
        let Some(bytes) = blobs::read_optional(blob.service(), &blob.key)? else {
            return Err(JobError::Retryable(format!(
                "the file of blob {} ({}) is not in its service",
                blob.id, blob.key
            )));
        };
        let guessed = ImageReader::new(Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| bad(blob, e))?
            .format();
        let declared = blob.content_type.as_deref().unwrap_or_default();
        let claimed = ImageFormat::from_mime_type(declared).or_else(|| alias(declared));
        match (guessed, claimed) {
            (Some(format), Some(claimed)) if format == claimed && DECODED.contains(&format) => {
                Ok(Some(Source { bytes, format }))
            }
            (Some(format), Some(claimed)) if format == claimed => Ok(None),
            (Some(format), _) => Err(bad(
                blob,
                format!("its content type is {declared} but its bytes are {}", format.to_mime_type()),
            )),
            (None, Some(claimed)) if DECODED.contains(&claimed) => {
                Err(bad(blob, format!("its content type is {declared} but its bytes are no such image")))
            }
            // SVG, HEIC and the like: not a format this decodes.
            (None, _) => Ok(None),
        }
    }

    /// A decoder for the image, its header read and checked, and the EXIF
    /// orientation it is shown with.
    pub fn decoder(&self, blob: &Blob) -> Result<(impl ImageDecoder + '_, Orientation), JobError> {
        // JPEG decoders show a cut-off file with its missing part grey;
        // Rails' analyzer would too. Such an upload failed, and isn't taken
        // for whole.
        if self.format == ImageFormat::Jpeg && !jpeg_is_whole(&self.bytes) {
            return Err(bad(blob, "a damaged image: the JPEG ends before its end marker"));
        }
        let reader = ImageReader::with_format(Cursor::new(&self.bytes[..]), self.format);
        let mut decoder = reader.into_decoder().map_err(|err| match err {
            // The decoder's own allocation limit, from the header alone.
            ImageError::Limits(err) => bad(blob, format!("more pixels than an image may have ({err})")),
            err => bad(blob, format!("not a readable image: {err}")),
        })?;
        let (width, height) = decoder.dimensions();
        if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
            return Err(bad(
                blob,
                format!(
                    "{width}×{height} pixels, more pixels than an image may have ({MAX_SIDE} a side, {} megapixels)",
                    MAX_PIXELS >> 20
                ),
            ));
        }
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        Ok((decoder, orientation))
    }
}

/// Whether an orientation turns the image by a quarter, swapping its
/// width and height as shown.
pub fn turns(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

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
