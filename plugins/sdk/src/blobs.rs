//! Reading and writing stored files (Active Storage's blobs) through the
//! host's `blobs` capability.
//!
//! ```ignore
//! let bytes = blobs::read("", &blob.key)?;          // the default service
//! blobs::write("local", "variants/abc/def", &png, "image/png")?;
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

/// The whole file of `key` in `service` ("" for the default service).
pub fn read(service: &str, key: &str) -> Result<Vec<u8>, JobError> {
    Ok(host::read(service, key)?)
}

/// Like [`read`], with `None` for a file that isn't there.
pub fn read_optional(service: &str, key: &str) -> Result<Option<Vec<u8>>, JobError> {
    match host::read(service, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Up to `length` bytes of the file of `key` from `offset` (a header, to
/// tell an image's format and size without reading it all).
pub fn read_range(service: &str, key: &str, offset: u64, length: u64) -> Result<Vec<u8>, JobError> {
    Ok(host::read_range(service, key, offset, length)?)
}

/// The size of the file of `key`, in bytes.
pub fn size(service: &str, key: &str) -> Result<u64, JobError> {
    Ok(host::size(service, key)?)
}

/// Like [`size`], with `None` for a file that isn't there.
pub fn size_optional(service: &str, key: &str) -> Result<Option<u64>, JobError> {
    match host::size(service, key) {
        Ok(size) => Ok(Some(size)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Stores `bytes` as the file of `key`, whole or not at all.
pub fn write(service: &str, key: &str, bytes: &[u8], content_type: &str) -> Result<(), JobError> {
    Ok(host::write(service, key, bytes, content_type)?)
}

/// Deletes the file of `key`; one already gone is no error.
pub fn delete(service: &str, key: &str) -> Result<(), JobError> {
    Ok(host::delete(service, key)?)
}

/// Deletes every file under `prefix/` (a blob's variants: `variants/<key>/`).
pub fn delete_prefixed(service: &str, prefix: &str) -> Result<(), JobError> {
    Ok(host::delete_prefixed(service, prefix)?)
}

/// Copies the file of `key` from the Mirror service `service`'s primary to
/// each of its mirrors that lacks it, once its bytes match `checksum` (the
/// blob's MD5 in Base64), as Rails' `MirrorService#mirror`: how many it
/// copied to, or `None` when the primary has no such file. A mismatch is
/// retryable, as Rails retries it:
///
/// ```ignore
/// blobs::mirror("", &key, &checksum)?; // "": the default service
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
/// ```ignore
/// let mut out = blobs::Appender::at("", "exports/orders.csv", cursor.length);
/// out.append(b"1,ann@example.com,7.50\n")?;
/// iteration::checkpoint(&Cursor { length: out.length(), .. })?;
/// let size = out.finish("text/csv")?;
/// ```
pub struct Appender {
    service: String,
    key: String,
    length: u64,
}

impl Appender {
    /// An appender to `key` of `service` that has written `length` bytes
    /// (0 for a new file).
    pub fn at(service: &str, key: &str, length: u64) -> Appender {
        Appender { service: service.to_string(), key: key.to_string(), length }
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), JobError> {
        self.length = host::append(&self.service, &self.key, self.length, bytes)?;
        Ok(())
    }

    /// The bytes written so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Makes the file whole and readable; returns its size.
    pub fn finish(self, content_type: &str) -> Result<u64, JobError> {
        Ok(host::finish(&self.service, &self.key, content_type)?)
    }
}
