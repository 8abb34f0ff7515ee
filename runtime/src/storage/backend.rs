//! Where a call lands: one Disk service or one S3 bucket, each doing the
//! same five things to a blob's file.

use super::{BlobError, DiskService, s3::S3Service};

/// A service that holds files itself (a Mirror only routes to these).
#[derive(Clone, Copy, Debug)]
pub enum Backend<'a> {
    Disk(&'a DiskService),
    S3(&'a S3Service),
}

impl Backend<'_> {
    /// The bytes of `key` from `offset`, at most `length` of them (to the
    /// end when `None`); refused when more than `cap` would come back.
    pub async fn read(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
        cap: u64,
    ) -> Result<Vec<u8>, BlobError> {
        match self {
            Backend::Disk(disk) => disk.read(key, offset, length, cap).await,
            Backend::S3(bucket) => bucket.read(key, offset, length, cap).await,
        }
    }

    /// The size of the file of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        match self {
            Backend::Disk(disk) => disk.size(key).await,
            Backend::S3(bucket) => bucket.size(key).await,
        }
    }

    /// Stores `bytes` as the file of `key`, whole or not at all.
    pub async fn write(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        match self {
            Backend::Disk(disk) => disk.write(key, bytes).await,
            Backend::S3(bucket) => bucket.write(key, bytes).await,
        }
    }

    /// Deletes the file of `key`; one already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self {
            Backend::Disk(disk) => disk.delete(key).await,
            Backend::S3(bucket) => bucket.delete(key).await,
        }
    }

    /// Deletes every file under `prefix/`.
    pub async fn delete_folder(&self, prefix: &str) -> Result<(), BlobError> {
        match self {
            Backend::Disk(disk) => disk.delete_folder(prefix).await,
            Backend::S3(bucket) => bucket.delete_folder(prefix).await,
        }
    }
}
