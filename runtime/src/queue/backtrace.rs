//! The `error_backtrace` Sidekiq keeps on a failed job, read and written.
//!
//! Sidekiq 6.4 stored a JSON array of lines (or compressed them); from 7.0
//! only the compressed form is read: Base64 of zlib-deflated JSON. Up to
//! 7.2.0 the Base64 has a line break every 60 characters, from 7.2.1 none
//! (`pack("m0")`). The runner reads every form for the dashboard and
//! writes the one every version reads: strict Base64, as 7.2.1+ does.

use base64::Engine;
use serde_json::Value;
use std::io::Read;

/// The most backtrace text inflated: a hostile entry can't balloon.
const MAX_TEXT: u64 = 256 * 1024;

/// The lines of a job's `error_backtrace`, whichever Sidekiq wrote it;
/// `None` when it is none of the forms.
pub fn lines(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(lines) => Some(lines.iter().map(line).collect()),
        Value::String(encoded) => {
            let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let deflated = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
            let mut text = Vec::new();
            flate2::read::ZlibDecoder::new(&deflated[..]).take(MAX_TEXT).read_to_end(&mut text).ok()?;
            match serde_json::from_slice(&text).ok()? {
                Value::Array(lines) => Some(lines.iter().map(line).collect()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `lines` as Sidekiq 7.2.1+ writes `error_backtrace`: strict Base64 of
/// zlib-deflated JSON.
pub fn compress(lines: &[String]) -> String {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let json = serde_json::to_vec(lines).expect("strings always serialize");
    encoder.write_all(&json).expect("writing to memory can't fail");
    let deflated = encoder.finish().expect("writing to memory can't fail");
    base64::engine::general_purpose::STANDARD.encode(deflated)
}

fn line(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::ZlibEncoder};
    use serde_json::json;
    use std::io::Write;

    fn compressed(lines: &Value) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(lines.to_string().as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_every_sidekiq_form() {
        let trace =
            json!(["app/jobs/order_job.rb:12:in `perform'", "sidekiq/processor.rb:196:in `execute_job'"]);
        let expected: Vec<String> = serde_json::from_value(trace.clone()).unwrap();
        let strict = base64::engine::general_purpose::STANDARD.encode(compressed(&trace));
        // Ruby's encode64: a line break every 60 characters.
        let wrapped: String =
            strict.as_bytes().chunks(60).map(|c| format!("{}\n", std::str::from_utf8(c).unwrap())).collect();
        assert!(wrapped.contains('\n'));
        for form in [trace.clone(), json!(strict), json!(wrapped)] {
            assert_eq!(lines(&form).as_ref(), Some(&expected), "{form}");
        }
        assert_eq!(lines(&json!("not base64 !")), None);
    }

    #[test]
    fn writes_what_it_reads() {
        let trace = vec!["wasm backtrace:".to_string(), "    0: 0x1a2b - misbehave!perform".to_string()];
        let written = compress(&trace);
        assert!(!written.contains('\n'), "strict Base64");
        assert_eq!(lines(&json!(written)), Some(trace));
    }
}
