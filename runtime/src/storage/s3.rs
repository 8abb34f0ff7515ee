//! An S3 or S3-compatible bucket as an Active Storage service, through the
//! `object_store` crate: objects named by the blob's key, as Rails'
//! `S3Service` names them.
//!
//! Settings come from the service's entry in `storage.yml`; credentials
//! the file leaves out (`rails new` reads them from Rails' credentials,
//! which the runner can't) come from the environment as the AWS SDKs take
//! them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...).
//! The secret never reaches a log or an error.

use super::{BlobError, S3Config, check_key};
use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use std::sync::Arc;

/// One bucket.
#[derive(Debug, Clone)]
pub struct S3Service {
    store: Arc<AmazonS3>,
    bucket: String,
}

impl S3Service {
    /// The client for `config`; nothing is sent until a call.
    pub fn new(name: &str, config: &S3Config) -> Result<S3Service> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint {
            // An S3-compatible server (MinIO, Ceph, a local one) is often plain HTTP.
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        builder = builder.with_virtual_hosted_style_request(!config.force_path_style);
        let store = builder
            .build()
            .with_context(|| format!("storage service {name}: S3 bucket {}", config.bucket))?;
        Ok(S3Service { store: Arc::new(store), bucket: config.bucket.clone() })
    }

    /// The bytes of `key` from `offset`, at most `length` of them; refused
    /// when more than `cap` would come back.
    pub async fn read(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
        cap: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let (start, wanted) = super::span(key, self.size(key).await?, offset, length, cap)?;
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let options =
            GetOptions { range: Some(GetRange::Bounded(start..start + wanted)), ..Default::default() };
        let object = self.store.get_opts(&path(key)?, options).await.map_err(|err| self.failed(key, err))?;
        Ok(object.bytes().await.map_err(|err| self.failed(key, err))?.to_vec())
    }

    /// The size of the object of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        let meta = self.store.head(&path(key)?).await.map_err(|err| self.failed(key, err))?;
        Ok(meta.size)
    }

    /// Stores `bytes` as the object of `key`; S3 shows an object whole or
    /// not at all.
    pub async fn write(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let payload = PutPayload::from(bytes.to_vec());
        self.store.put(&path(key)?, payload).await.map_err(|err| self.failed(key, err))?;
        Ok(())
    }

    /// The objects directly under `folder/`, as (name, size).
    pub async fn list(&self, folder: &str) -> Result<Vec<(String, u64)>, BlobError> {
        let prefix = path(folder)?;
        let listed: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|err| self.failed(folder, err))?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| Some((meta.location.filename()?.to_string(), meta.size)))
            .collect())
    }

    /// Writes the objects of `parts`, in order, as the object of `key`, in
    /// a multipart upload (S3 shows it once it is whole). Returns its size.
    pub async fn assemble(&self, key: &str, parts: &[String]) -> Result<u64, BlobError> {
        let upload = self.store.put_multipart(&path(key)?).await.map_err(|err| self.failed(key, err))?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0;
        for part in parts {
            let bytes = match self.store.get(&path(part)?).await {
                Ok(object) => object.bytes().await,
                Err(err) => Err(err),
            };
            match bytes {
                Ok(bytes) => {
                    size += bytes.len() as u64;
                    writer.put(bytes);
                }
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(self.failed(part, err));
                }
            }
        }
        writer.finish().await.map_err(|err| self.failed(key, err))?;
        Ok(size)
    }

    /// A presigned GET URL of the object of `key`, working for `ttl`.
    pub async fn link(&self, key: &str, ttl: std::time::Duration) -> Result<String, BlobError> {
        let url = self
            .store
            .signed_url(http::Method::GET, &path(key)?, ttl)
            .await
            .map_err(|err| self.failed(key, err))?;
        Ok(url.to_string())
    }

    /// Deletes the object of `key`; one already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&path(key)?).await {
            Err(err) if !matches!(err, object_store::Error::NotFound { .. }) => Err(self.failed(key, err)),
            _ => Ok(()),
        }
    }

    /// Deletes every object under `prefix/`, as Rails' `delete_prefixed`.
    pub async fn delete_folder(&self, prefix: &str) -> Result<(), BlobError> {
        let folder = path(prefix.strip_suffix('/').unwrap_or(prefix))?;
        let listed = self.store.list(Some(&folder)).map_ok(|meta| meta.location).boxed();
        self.store
            .delete_stream(listed)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|err| self.failed(prefix, err))?;
        Ok(())
    }

    /// A failure as a blob error; the store's message names the bucket and
    /// key, never the credentials.
    fn failed(&self, key: &str, err: object_store::Error) -> BlobError {
        match err {
            object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_string()),
            err => BlobError::Unavailable {
                key: key.to_string(),
                message: format!("S3 bucket {}: {err}", self.bucket),
            },
        }
    }
}

/// `key` as an object name, checked as every key is.
fn path(key: &str) -> Result<ObjectPath, BlobError> {
    check_key(key)?;
    ObjectPath::parse(key)
        .map_err(|_| BlobError::InvalidKey { key: key.to_string(), reason: "not an object name" })
}
