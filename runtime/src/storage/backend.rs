//! Where a call lands: one Disk service or one S3 bucket, each doing the
//! the same things to a blob's file.

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

    /// The files directly under `folder/`, as (name, size).
    pub async fn list(&self, folder: &str) -> Result<Vec<(String, u64)>, BlobError> {
        match self {
            Backend::Disk(disk) => disk.list(folder).await,
            Backend::S3(bucket) => bucket.list(folder).await,
        }
    }

    /// Writes the files of `parts`, in order, as the file of `key`, whole
    /// or not at all; returns its size.
    pub async fn assemble(&self, key: &str, parts: &[String]) -> Result<u64, BlobError> {
        match self {
            Backend::Disk(disk) => disk.assemble(key, parts).await,
            Backend::S3(bucket) => bucket.assemble(key, parts).await,
        }
    }

    /// A URL that fetches the file of `key` for `ttl`, when the service
    /// can sign one (S3); `None` for Disk.
    pub async fn link(&self, key: &str, ttl: std::time::Duration) -> Result<Option<String>, BlobError> {
        match self {
            Backend::Disk(_) => Ok(None),
            Backend::S3(bucket) => bucket.link(key, ttl).await.map(Some),
        }
    }
}
