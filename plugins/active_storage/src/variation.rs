//! A variant's transformations as `ActiveStorage::Variation` holds them:
//! what `TransformJob` was given, with the blob's default format put first
//! (`Blob#variant` does `default_to(format: ...)`), its digest, and the
//! resizing it asks for.
//!
//! The digest is how the app finds the variant: `Base64(SHA1(Marshal.dump(
//! transformations)))`, computed here from the same Ruby values. The
//! arguments reach the plugin with ActiveJob's markers stripped, so a
//! Symbol (`format: :webp`) and a String (`format: "webp"`) look alike; an
//! existing variant record under either digest counts, and a new one is
//! made under the Symbol's, the way Rails' guides write a format.

use crate::blob::Blob;
use crate::marshal::{self, Ruby};
use base64::Engine;
use jobrunner_plugin_sdk::JobError;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// The resizing operations performed, as ImageProcessing names them.
pub const OPERATIONS: [&str; 3] = ["resize_to_limit", "resize_to_fit", "resize_to_fill"];

/// Rails' `ActiveStorage.web_image_content_types` by default: a variant of
/// one of these keeps its format, any other becomes a PNG.
const WEB_IMAGES: [&str; 3] = ["image/png", "image/jpeg", "image/gif"];

/// One resizing step: the operation and its width and height, either of
/// which may be left open (`[100, nil]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resize {
    pub operation: &'static str,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// What the variant is.
#[derive(Debug)]
pub struct Variation {
    /// The resizing steps, in order.
    pub steps: Vec<Resize>,
    /// The output's extension as Rails writes it into the filename.
    pub format: String,
    /// JPEG quality from `saver: { quality: }`.
    pub quality: Option<u8>,
    /// The digest to create a variant record under, then any other the app
    /// may have used for the same transformations.
    pub digests: Vec<String>,
}

impl Variation {
    /// The variation `TransformJob` asks of `blob`.
    pub fn new(blob: &Blob, transformations: &Map<String, Value>) -> Result<Variation, JobError> {
        let bad = |reason: String| JobError::Permanent(format!("a variant of blob {}: {reason}", blob.id));
        let mut steps = Vec::new();
        let mut quality = None;
        for (name, argument) in transformations {
            match name.as_str() {
                "format" => {}
                "saver" => quality = saver_quality(argument).map_err(bad)?,
                name => steps.push(resize(name, argument).map_err(bad)?),
            }
        }
        let explicit = transformations.get("format");
        let format = match explicit {
            Some(Value::String(format)) => format.clone(),
            Some(other) => return Err(bad(format!("format {other} is not a format's name"))),
            None => default_format(blob).unwrap_or_else(|| "png".into()),
        };
        if content_type(&format).is_none() {
            return Err(bad(format!("Invalid variant format ({format:?})")));
        }
        let mut digests = Vec::new();
        for format_as_symbol in [true, false] {
            let default = match default_format(blob) {
                Some(extension) => Ruby::Str(extension),
                None => Ruby::Sym("png".into()),
            };
            let mut pairs = vec![(Ruby::Sym("format".into()), default)];
            for (name, value) in transformations {
                let value = match (name.as_str(), value) {
                    ("format", Value::String(f)) if format_as_symbol => Ruby::Sym(f.clone()),
                    _ => ruby(value).map_err(bad)?,
                };
                match pairs.iter_mut().find(|(key, _)| *key == Ruby::Sym(name.clone())) {
                    Some(pair) => pair.1 = value,
                    None => pairs.push((Ruby::Sym(name.clone()), value)),
                }
            }
            let digest = digest(&Ruby::Hash(pairs));
            if !digests.contains(&digest) {
                digests.push(digest);
            }
        }
        Ok(Variation { steps, format: format.to_ascii_lowercase(), quality, digests })
    }

    /// The variant's content type, from its format.
    pub fn content_type(&self) -> &'static str {
        content_type(&self.format).unwrap_or("image/png")
    }
}

/// `Base64(SHA1(Marshal.dump(value)))`, as `Variation#digest`.
pub fn digest(value: &Ruby) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(marshal::dump(value)))
}

/// `Blob#default_variant_format` for a web image: its filename's extension
/// when that names its content type, else the content type's extension
/// (MiniMime's, as Rails 6.1 to 7.1 look it up); `None` (a PNG, written as
/// the Symbol `:png`) for any other image.
fn default_format(blob: &Blob) -> Option<String> {
    let declared = blob.content_type.as_deref().unwrap_or_default();
    if !WEB_IMAGES.contains(&declared) {
        return None;
    }
    let extension = extension(&blob.filename);
    if !extension.is_empty() && content_type(extension) == Some(declared) {
        return Some(extension.to_string());
    }
    match declared {
        "image/jpeg" => Some("jpeg".into()),
        other => other.strip_prefix("image/").map(str::to_string),
    }
}

/// What Ruby's `File.extname` gives without its dot: `JPG` of `a.JPG`,
/// nothing for `.profile` or `a.`.
pub fn extension(filename: &str) -> &str {
    let name = filename.rsplit('/').next().unwrap_or(filename);
    match name.trim_start_matches('.').rfind('.') {
        Some(_) => name.rsplit_once('.').map_or("", |(_, ext)| ext),
        None => "",
    }
}

/// The content type of an image format's extension, as MiniMime finds it.
pub fn content_type(extension: &str) -> Option<&'static str> {
    Some(match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        _ => return None,
    })
}

/// A resizing step from its name and ImageProcessing's arguments.
fn resize(name: &str, argument: &Value) -> Result<Resize, String> {
    let Some(operation) = OPERATIONS.iter().find(|op| **op == name) else {
        return Err(format!(
            "the transformation {name} is not one this plugin performs ({}, format, saver: {{ quality: }})",
            OPERATIONS.join(", ")
        ));
    };
    let side = |value: Option<&Value>| -> Result<Option<u32>, String> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n @ 1..=16_384) => Ok(Some(n as u32)),
                _ => Err(format!("{name}: {n} is not a size from 1 to 16384")),
            },
            Some(other) => Err(format!("{name}: {other} is not a size")),
        }
    };
    match argument.as_array().map(Vec::as_slice) {
        Some([width, height]) => {
            let step = Resize { operation, width: side(Some(width))?, height: side(Some(height))? };
            match (step.width, step.height, *operation) {
                (None, None, _) => Err(format!("{name}: neither a width nor a height")),
                (None, _, "resize_to_fill") | (_, None, "resize_to_fill") => {
                    Err(format!("{name}: needs a width and a height"))
                }
                _ => Ok(step),
            }
        }
        Some([_, _, options]) => Err(format!("{name}: options {options} are not supported")),
        _ => Err(format!("{name}: {argument} is not [width, height]")),
    }
}

/// The JPEG quality `saver` asks for; other savers' settings are refused,
/// except `strip` (a variant written here carries no metadata anyway).
fn saver_quality(argument: &Value) -> Result<Option<u8>, String> {
    let Value::Object(options) = argument else { return Err(format!("saver: {argument} is not options")) };
    let mut quality = None;
    for (name, value) in options {
        match (name.as_str(), value.as_u64()) {
            ("quality", Some(q @ 1..=100)) => quality = Some(q as u8),
            ("strip", _) => {}
            _ => return Err(format!("saver: {name} = {value} is not supported")),
        }
    }
    Ok(quality)
}

/// A JSON value as the Ruby value ActiveJob deserializes it to, keys as
/// Symbols (`Variation` deep-symbolizes them).
fn ruby(value: &Value) -> Result<Ruby, String> {
    Ok(match value {
        Value::Null => Ruby::Nil,
        Value::Bool(b) => Ruby::Bool(*b),
        Value::Number(n) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Ruby::Int(n),
            None => return Err(format!("the number {n} is not an integer of up to 32 bits")),
        },
        Value::String(s) => Ruby::Str(s.clone()),
        Value::Array(items) => Ruby::Array(items.iter().map(ruby).collect::<Result<_, _>>()?),
        Value::Object(map) => Ruby::Hash(
            map.iter().map(|(k, v)| Ok((Ruby::Sym(k.clone()), ruby(v)?))).collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blob(filename: &str, content_type: &str) -> Blob {
        serde_json::from_value(
            json!({"id": 1, "key": "k", "filename": filename, "content_type": content_type}),
        )
        .unwrap()
    }

    fn variation(blob: &Blob, transformations: Value) -> Result<Variation, JobError> {
        Variation::new(blob, transformations.as_object().unwrap())
    }

    // The digests Ruby computes for the same transformations, with the
    // blob's default format first as `Blob#variant` puts it.
    #[test]
    fn digests_as_rails_computes_them() {
        let jpeg = blob("photo.jpg", "image/jpeg");
        let limit = variation(&jpeg, json!({"resize_to_limit": [100, 100]})).unwrap();
        assert_eq!(limit.digests[0], "58nLvjR5lLpeOdoWw8+s844W40I=");
        assert_eq!(limit.format, "jpg");
        let webp = variation(&jpeg, json!({"resize_to_fill": [64, 64], "format": "webp"})).unwrap();
        assert_eq!(webp.digests, ["K31bBAS481WwWRYff2PfIHfrS6k=", "TMWZLg5BIX7rqMPrOAdIrdPE7ws="]);
        assert_eq!(webp.content_type(), "image/webp");
        let tiff = variation(&blob("scan.tiff", "image/tiff"), json!({"resize_to_fit": [50, null]})).unwrap();
        assert_eq!((tiff.format.as_str(), tiff.digests[0].as_str()), ("png", "IvNsROZBLJ/hruL5G6yOWEgmV44="));
    }

    #[test]
    fn unsupported_transformations_are_named() {
        let jpeg = blob("photo.jpg", "image/jpeg");
        let err = format!("{:?}", variation(&jpeg, json!({"rotate": 90})).unwrap_err());
        assert!(err.contains("rotate") && err.contains("resize_to_limit"), "{err}");
        assert!(variation(&jpeg, json!({"resize_to_fill": [100, null]})).is_err());
        assert!(variation(&jpeg, json!({"resize_to_limit": [100, 100], "format": "exe"})).is_err());
        assert!(variation(&jpeg, json!({"resize_to_limit": [100, 100.5]})).is_err());
    }

    #[test]
    fn extensions_as_ruby_finds_them() {
        assert_eq!(extension("a.JPG"), "JPG");
        assert_eq!(extension("archive.tar.gz"), "gz");
        assert_eq!(extension(".profile"), "");
        assert_eq!(extension("noext"), "");
    }
}
