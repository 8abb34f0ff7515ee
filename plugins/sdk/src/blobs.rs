//! Reading and writing stored files (Active Storage's blobs) through the
//! host's `blobs` capability.
//!
//! ```no_run
//! use jobrunner_plugin_sdk::blobs;
//!
//! # let png = Vec::new();
//! let bytes = blobs::read("", "xtapjjcjiudrlk3tmwyjgpuobabd")?; // "": the default service
//! blobs::write("local", "variants/xtap/5f1e", &png, "image/png")?;
//! # Ok::<(), jobrunner_plugin_sdk::JobError>(())
//! ```
//!
//! A file too big to hold in memory is written in pieces with an
//! [`Appender`], which an iterable job resumes at its checkpointed length.
//!
//! Errors map onto job errors as the runner treats them: a call the policy
//! denies, a bad key or service, a file over the cap or one that isn't
//! there are permanent; a failing service is retryable. [`read_optional`]
//! and [`size_optional`] make a missing file `None` instead.

use crate::JobError;
use crate::bindings::jobrunner::plugin::blobs as host;
pub use host::BlobError;

impl From<BlobError> for JobError {
    fn from(err: BlobError) -> JobError {
        match err {
            BlobError::Denied(reason) | BlobError::InvalidInput(reason) | BlobError::NotFound(reason) => {
                JobError::Permanent(format!("blobs: {reason}"))
            }
            BlobError::Unavailable(reason) => JobError::Retryable(format!("blobs: {reason}")),
        }
    }
}

/// The whole file of `key` in `service` ("" for the default service),
/// at most the policy's `max_bytes`.
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// let bytes = blobs::read("", "xtapjjcjiudrlk3tmwyjgpuobabd")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn read(service: &str, key: &str) -> Result<Vec<u8>, JobError> {
    Ok(host::read(service, key)?)
}

/// Like [`read`], with `None` for a file that isn't there.
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// if blobs::read_optional("", "xtapjjcjiudrlk3tmwyjgpuobabd")?.is_none() {
///     return Ok(()); // purged before the job ran: nothing to do
/// }
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn read_optional(service: &str, key: &str) -> Result<Option<Vec<u8>>, JobError> {
    match host::read(service, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Up to `length` bytes of the file of `key` from `offset` (a header, to
/// tell an image's format and size without reading it all).
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// let header = blobs::read_range("", "xtapjjcjiudrlk3tmwyjgpuobabd", 0, 64 * 1024)?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn read_range(service: &str, key: &str, offset: u64, length: u64) -> Result<Vec<u8>, JobError> {
    Ok(host::read_range(service, key, offset, length)?)
}

/// The size of the file of `key`, in bytes.
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// let bytes = blobs::size("", "xtapjjcjiudrlk3tmwyjgpuobabd")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn size(service: &str, key: &str) -> Result<u64, JobError> {
    Ok(host::size(service, key)?)
}

/// Like [`size`], with `None` for a file that isn't there.
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// let size = blobs::size_optional("", "xtapjjcjiudrlk3tmwyjgpuobabd")?.unwrap_or(0);
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn size_optional(service: &str, key: &str) -> Result<Option<u64>, JobError> {
    match host::size(service, key) {
        Ok(size) => Ok(Some(size)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Stores `bytes` as the file of `key`, whole or not at all (needs
/// `write = true` in the plugin's `blobs` policy).
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// blobs::write("", "reports/2026-11.txt", b"42 orders\n", "text/plain")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn write(service: &str, key: &str, bytes: &[u8], content_type: &str) -> Result<(), JobError> {
    Ok(host::write(service, key, bytes, content_type)?)
}

/// Deletes the file of `key`; one already gone is no error (needs
/// `delete = true`).
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// blobs::delete("", "xtapjjcjiudrlk3tmwyjgpuobabd")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn delete(service: &str, key: &str) -> Result<(), JobError> {
    Ok(host::delete(service, key)?)
}

/// Deletes every file under `prefix/` (a blob's variants: `variants/<key>/`).
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// blobs::delete_prefixed("", "variants/xtapjjcjiudrlk3tmwyjgpuobabd")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn delete_prefixed(service: &str, prefix: &str) -> Result<(), JobError> {
    Ok(host::delete_prefixed(service, prefix)?)
}

/// Copies the file of `key` from the Mirror service `service`'s primary to
/// each of its mirrors that lacks it, once its bytes match `checksum` (the
/// blob's MD5 in Base64), as Rails' `MirrorService#mirror`: how many it
/// copied to, or `None` when the primary has no such file. A mismatch is
/// retryable, as Rails retries it:
///
/// ```no_run
/// use jobrunner_plugin_sdk::blobs;
///
/// let copies = blobs::mirror("", "xtapjjcjiudrlk3tmwyjgpuobabd", "1B2M2Y8AsgTpgAmY7PhCfg==")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn mirror(service: &str, key: &str, checksum: &str) -> Result<Option<u32>, JobError> {
    match host::mirror(service, key, checksum) {
        Ok(copies) => Ok(Some(copies)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Writes a file in pieces, each appended where the last ended, and makes
/// it whole at [`Appender::finish`]. An iterable job keeps
/// [`Appender::length`] in its cursor and resumes with [`Appender::at`]:
/// whatever a killed run appended after that checkpoint is dropped, so
/// every byte is written once.
///
/// ```no_run
/// use jobrunner_plugin_sdk::{blobs, iteration};
///
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Cursor { after: u64, length: u64 }
///
/// let cursor: Cursor = iteration::resume_from()?.unwrap_or_default();
/// let mut out = blobs::Appender::at("", "exports/orders.csv", cursor.length);
/// out.append(b"1,ann@example.com,7.50\n")?;
/// iteration::checkpoint(&Cursor { after: 1, length: out.length() })?;
/// let size = out.finish("text/csv")?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub struct Appender {
    service: String,
    key: String,
    length: u64,
}

impl Appender {
    /// An appender to `key` of `service` that has written `length` bytes
    /// (0 for a new file). See [`Appender`] for an example.
    pub fn at(service: &str, key: &str, length: u64) -> Appender {
        Appender { service: service.to_string(), key: key.to_string(), length }
    }

    /// Appends `bytes`. See [`Appender`] for an example.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), JobError> {
        self.length = host::append(&self.service, &self.key, self.length, bytes)?;
        Ok(())
    }

    /// The bytes written so far: what the job's cursor keeps. See
    /// [`Appender`] for an example.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Makes the file whole and readable; returns its size. Finishing a
    /// file already finished (a job run again after a crash) returns its
    /// size again. See [`Appender`] for an example.
    pub fn finish(self, content_type: &str) -> Result<u64, JobError> {
        Ok(host::finish(&self.service, &self.key, content_type)?)
    }
}
