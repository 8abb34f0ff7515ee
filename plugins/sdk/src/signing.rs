//! Signing with the operator's keys, which stay in the host: the plugin
//! names a key from its policy's `signing_keys` and gets the MAC.
//!
//! [`webhook_signature`] signs as the Standard Webhooks spec says, so a
//! receiver's ordinary verification library accepts the delivery.
//!
//! ```no_run
//! use jobrunner_plugin_sdk::signing;
//!
//! # fn main() -> Result<(), jobrunner_plugin_sdk::JobError> {
//! let body = br#"{"type":"order.paid"}"#;
//! let signature = signing::webhook_signature("endpoints", "msg_42", 1_700_000_000, body)?;
//! assert!(signature.starts_with("v1,"));
//! # Ok(())
//! # }
//! ```

use crate::JobError;
use crate::bindings::jobrunner::plugin::signing::{self as host, SigningError};
use base64::Engine as _;

/// The HMAC-SHA256 of `message` under the key called `key` (32 bytes).
/// A key the policy doesn't name fails the job permanently.
pub fn hmac_sha256(key: &str, message: &[u8]) -> Result<Vec<u8>, JobError> {
    host::hmac_sha256(key, message).map_err(|SigningError::UnknownKey(name)| {
        JobError::Permanent(format!("signing: the policy names no key `{name}` (signing_keys)"))
    })
}

/// The `webhook-signature` value for a delivery with id `msg_id`, sent at
/// `timestamp` (epoch seconds), of `body`: `v1,` and the Base64 of the
/// HMAC-SHA256 of `msg_id.timestamp.body`, as Standard Webhooks signs.
/// Send it with `webhook-id: msg_id` and `webhook-timestamp: timestamp`.
pub fn webhook_signature(key: &str, msg_id: &str, timestamp: u64, body: &[u8]) -> Result<String, JobError> {
    let mac = hmac_sha256(key, &signed_content(msg_id, timestamp, body))?;
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac)))
}

/// What Standard Webhooks signs: `msg_id.timestamp.body`.
///
/// ```
/// let content = jobrunner_plugin_sdk::signing::signed_content("msg_1", 1614265330, b"{}");
/// assert_eq!(content, b"msg_1.1614265330.{}");
/// ```
pub fn signed_content(msg_id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}
