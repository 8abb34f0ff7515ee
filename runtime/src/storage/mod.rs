//! Stored files, as Active Storage keeps them: the services an app's
//! `config/storage.yml` names, and reading, writing and deleting a blob's
//! file by its key.
//!
//! Plugins reach blobs only through the host, under their policy; this
//! module is what the host reads from and writes to. A key is checked
//! before it becomes a path or an object name, so a key from a job's
//! arguments or a database row can't reach outside its service.

mod backend;
pub mod config;
pub mod disk;
mod mirror;
pub mod pieces;
mod s3;
pub mod store;

pub use backend::Backend;
pub use config::{S3Config, Service, Services};
pub use disk::DiskService;
pub use store::Storage;

/// Why a blob couldn't be read, written or deleted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// The key is not one a service can hold (empty, absolute, `..`).
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// No file has that key.
    #[error("no blob with key {0:?} in the service")]
    NotFound(String),
    /// The file, or the range asked for, is larger than the cap.
    #[error("blob {key:?} is {size} bytes, over the cap of {cap}")]
    TooLarge { key: String, size: u64, cap: u64 },
    /// The service named is not one the app has, or the runner serves.
    #[error("{0}")]
    Service(String),
    /// An append at an offset that isn't the length written so far (or a
    /// checkpointed length before it).
    #[error(
        "blob {key:?} in pieces has {length} bytes; an append at {offset} would leave a gap or split a piece"
    )]
    Offset { key: String, offset: u64, length: u64 },
    /// The service failed (a disk error, an unreachable object store).
    #[error("blob {key:?}: {message}")]
    Unavailable { key: String, message: String },
}

/// The part of a file of `size` bytes that a read from `offset` of at most
/// `length` bytes (to the end when `None`) gets, as (start, length);
/// refused when that is more than `cap`.
pub fn span(
    key: &str,
    size: u64,
    offset: u64,
    length: Option<u64>,
    cap: u64,
) -> Result<(u64, u64), BlobError> {
    let start = offset.min(size);
    let wanted = length.map_or(size - start, |length| length.min(size - start));
    if wanted > cap {
        return Err(BlobError::TooLarge { key: key.to_string(), size: wanted, cap });
    }
    Ok((start, wanted))
}

/// Checks that `key` names a file inside a service: not empty, not
/// absolute, no `.` or `..` segment, no empty segment, no NUL or
/// backslash. Rails' own keys (28 base-36 characters, or
/// `variants/<key>/<digest>` for variants without records) all pass.
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let invalid = |reason| Err(BlobError::InvalidKey { key: key.to_string(), reason });
    if key.is_empty() {
        return invalid("it is empty");
    }
    if key.len() > 1024 {
        return invalid("it is longer than 1024 bytes");
    }
    if key.contains(['\0', '\\']) || key.chars().any(char::is_control) {
        return invalid("it contains a control character or a backslash");
    }
    if key.starts_with('/') {
        return invalid("it is absolute");
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return invalid("it has an empty, `.` or `..` segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_leave_the_service_are_refused() {
        for key in ["xtapjjcjiudrlk3tmwyjgpuobabd", "variants/xtapjjcjiudrlk3tmwyjgpuobabd/5f1a9c", "a"] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
        for key in ["", "/etc/passwd", "../x", "ab/../../x", "a//b", "a/./b", "a\\b", "a\0b", "a\nb", "a/"] {
            assert!(matches!(check_key(key), Err(BlobError::InvalidKey { .. })), "{key:?}");
        }
    }
}
