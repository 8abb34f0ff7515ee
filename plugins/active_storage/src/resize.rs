//! The pixels of a variant: ImageProcessing's resizing, with the sizes
//! ImageMagick's geometry gives (`-thumbnail 100x100>` for
//! `resize_to_limit`, `100x100` for `resize_to_fit`, `100x100^` then a
//! centred `-extent` for `resize_to_fill`), on an image turned upright
//! first as its EXIF orientation says (ImageProcessing's `auto_orient`).

use crate::decode::{MAX_DECODED_BYTES, turns};
use crate::variation::Resize;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView};

/// `image` (as decoded, before its orientation) after `steps`, upright.
pub fn apply(
    mut image: DynamicImage,
    orientation: Orientation,
    steps: &[Resize],
) -> Result<DynamicImage, String> {
    let mut oriented = false;
    for step in steps {
        let (width, height) = image.dimensions();
        let shown = if !oriented && turns(orientation) { (height, width) } else { (width, height) };
        let Some((scaled, crop)) = target(*step, shown) else { continue };
        if u64::from(scaled.0) * u64::from(scaled.1) * 4 > MAX_DECODED_BYTES {
            return Err(format!(
                "{}: {}×{} pixels are more than a variant may have",
                step.operation, scaled.0, scaled.1
            ));
        }
        // Resizing before turning the image keeps one big buffer, not two.
        let (w, h) = if !oriented && turns(orientation) { (scaled.1, scaled.0) } else { scaled };
        image = scale(image, (w, h));
        if !oriented {
            image.apply_orientation(orientation);
            oriented = true;
        }
        if let Some((x, y, w, h)) = crop {
            image = image.crop_imm(x, y, w, h);
        }
    }
    if !oriented {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

/// Resizes to exactly `size`: a fast box average when shrinking by half
/// or more, Lanczos otherwise.
fn scale(image: DynamicImage, (width, height): (u32, u32)) -> DynamicImage {
    if (width, height) == image.dimensions() {
        return image;
    }
    if width * 2 <= image.width() && height * 2 <= image.height() {
        image.thumbnail_exact(width, height)
    } else {
        image.resize_exact(width, height, FilterType::Lanczos3)
    }
}

/// A crop: left, top, width, height.
pub type Crop = (u32, u32, u32, u32);

/// The size `step` scales an image shown at `size` to, and for
/// `resize_to_fill` the centred crop after it; `None` when the step leaves
/// the image as it is (`resize_to_limit` of an image already within).
pub fn target(step: Resize, (width, height): (u32, u32)) -> Option<((u32, u32), Option<Crop>)> {
    let factor = |side: Option<u32>, of: u32| side.map(|s| f64::from(s) / f64::from(of));
    let (fx, fy) = (factor(step.width, width), factor(step.height, height));
    let sized = |f: f64| {
        let side = |of: u32| ((f * f64::from(of) + 0.5).floor() as u32).max(1);
        (side(width), side(height))
    };
    match step.operation {
        "resize_to_fill" => {
            let (w, h) = (step.width?, step.height?);
            let (sw, sh) = sized(fx?.max(fy?));
            let (sw, sh) = (sw.max(w), sh.max(h));
            Some(((sw, sh), Some(((sw - w) / 2, (sh - h) / 2, w, h))))
        }
        operation => {
            let within = step.width.is_none_or(|w| width <= w) && step.height.is_none_or(|h| height <= h);
            if operation == "resize_to_limit" && within {
                return None;
            }
            let f = match (fx, fy) {
                (Some(x), Some(y)) => x.min(y),
                (Some(f), None) | (None, Some(f)) => f,
                (None, None) => return None,
            };
            Some((sized(f), None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(operation: &'static str, width: Option<u32>, height: Option<u32>) -> Resize {
        Resize { operation, width, height }
    }

    // The sizes ImageMagick's `convert -thumbnail` gives the same images.
    #[test]
    fn sizes_as_imagemagick_gives_them() {
        let limit = step("resize_to_limit", Some(100), Some(100));
        assert_eq!(target(limit, (300, 200)), Some(((100, 67), None)));
        assert_eq!(target(limit, (80, 60)), None);
        let fit = step("resize_to_fit", Some(100), Some(100));
        assert_eq!(target(fit, (80, 60)), Some(((100, 75), None)));
        assert_eq!(target(step("resize_to_fit", Some(50), None), (300, 200)), Some(((50, 33), None)));
        let fill = step("resize_to_fill", Some(64), Some(64));
        assert_eq!(target(fill, (300, 200)), Some(((96, 64), Some((16, 0, 64, 64)))));
    }

    #[test]
    fn turned_images_are_resized_as_shown() {
        // 300×200 stored, shown 200×300 (EXIF orientation 6).
        let image = DynamicImage::new_rgb8(300, 200);
        let limited = apply(image, Orientation::Rotate90, &[step("resize_to_limit", Some(100), Some(100))]);
        assert_eq!(limited.unwrap().dimensions(), (67, 100));
        let image = DynamicImage::new_rgb8(300, 200);
        let filled = apply(image, Orientation::Rotate90, &[step("resize_to_fill", Some(50), Some(40))]);
        assert_eq!(filled.unwrap().dimensions(), (50, 40));
    }
}
