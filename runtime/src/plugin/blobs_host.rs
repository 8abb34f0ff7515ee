//! `blobs` as the guest sees it: the host side of the WIT interface. Each
//! call is checked against the plugin's policy (service, read / write /
//! delete, size cap) before it reaches [`crate::storage`]; a call the policy
//! denies also fails the job for good, as a broken mail rule does.

use super::host::HostState;
use crate::policy::{BlobAccess, blobs};
use crate::storage::{BlobError, DiskService, Storage};
use crate::untrusted::shown;
use crate::wit::jobrunner::plugin::blobs::{self as wit_blobs, BlobError as WitError};
use std::sync::Arc;

/// The most of a key or service name a log line shows.
const SHOWN: usize = 200;

impl From<BlobError> for WitError {
    fn from(err: BlobError) -> WitError {
        let message = err.to_string();
        match err {
            BlobError::NotFound(_) => WitError::NotFound(message),
            BlobError::InvalidKey { .. } | BlobError::TooLarge { .. } | BlobError::Service(_) => {
                WitError::InvalidInput(message)
            }
            BlobError::Unavailable { .. } => WitError::Unavailable(message),
        }
    }
}

impl HostState {
    /// The service `service` names, checked for `access` under the policy,
    /// and the cap on one call's bytes.
    fn blob_call(
        &mut self,
        service: &str,
        access: BlobAccess,
    ) -> Result<(Arc<Storage>, String, u64), WitError> {
        let storage = self.caps.storage.clone();
        let name = storage.name_of(service)?.to_string();
        let grants = self.caps.guard.blob_grants();
        if let Err(rule) = blobs::check(grants, &self.tags.plugin, &name, access) {
            tracing::warn!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
                service = %shown(&name, SHOWN), rule = %crate::untrusted::escape(&rule), "blob call denied by the policy");
            self.violation.get_or_insert_with(|| rule.clone());
            return Err(WitError::Denied(rule));
        }
        let cap = grants.as_ref().map_or(0, |grant| grant.max_bytes);
        Ok((storage, name, cap))
    }

    fn blob_failed(&self, op: &str, key: &str, err: &BlobError) {
        tracing::warn!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
            key = %shown(key, SHOWN), error = %crate::untrusted::escape(&err.to_string()), "blob {op} failed");
    }

    async fn read_some(
        &mut self,
        service: &str,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Vec<u8>, WitError> {
        let (storage, name, cap) = self.blob_call(service, BlobAccess::Read)?;
        let result = match storage.reader(&name) {
            Ok(disk) => disk.read(key, offset, length, cap).await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            self.blob_failed("read", key, &err);
            err.into()
        })
    }

    /// Runs `op` on every service a write or delete of `service` goes to.
    async fn change<F, Fut>(
        &mut self,
        service: &str,
        access: BlobAccess,
        key: &str,
        op: F,
    ) -> Result<(), WitError>
    where
        F: Fn(DiskService) -> Fut,
        Fut: Future<Output = Result<(), BlobError>>,
    {
        let (storage, name, _) = self.blob_call(service, access)?;
        let result = async {
            for disk in storage.writers(&name)? {
                op(disk.clone()).await?;
            }
            Ok(())
        }
        .await;
        result.map_err(|err: BlobError| {
            self.blob_failed(if access == BlobAccess::Write { "write" } else { "delete" }, key, &err);
            err.into()
        })
    }
}

impl wit_blobs::Host for HostState {
    async fn read(&mut self, service: String, key: String) -> Result<Vec<u8>, WitError> {
        self.read_some(&service, &key, 0, None).await
    }

    async fn read_range(
        &mut self,
        service: String,
        key: String,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, WitError> {
        self.read_some(&service, &key, offset, Some(length)).await
    }

    async fn size(&mut self, service: String, key: String) -> Result<u64, WitError> {
        let (storage, name, _) = self.blob_call(&service, BlobAccess::Read)?;
        let result = match storage.reader(&name) {
            Ok(disk) => disk.size(&key).await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            self.blob_failed("size", &key, &err);
            err.into()
        })
    }

    async fn write(
        &mut self,
        service: String,
        key: String,
        bytes: Vec<u8>,
        _content_type: String,
    ) -> Result<(), WitError> {
        let cap = self.blob_call(&service, BlobAccess::Write)?.2;
        if bytes.len() as u64 > cap {
            let err = BlobError::TooLarge { key: key.clone(), size: bytes.len() as u64, cap };
            self.blob_failed("write", &key, &err);
            return Err(err.into());
        }
        let bytes = Arc::new(bytes);
        let target = key.clone();
        self.change(&service, BlobAccess::Write, &key, move |disk| {
            let (bytes, key) = (bytes.clone(), target.clone());
            async move { disk.write(&key, &bytes).await }
        })
        .await
    }

    async fn delete(&mut self, service: String, key: String) -> Result<(), WitError> {
        let target = key.clone();
        self.change(&service, BlobAccess::Delete, &key, move |disk| {
            let key = target.clone();
            async move { disk.delete(&key).await }
        })
        .await
    }

    async fn delete_prefixed(&mut self, service: String, prefix: String) -> Result<(), WitError> {
        let target = prefix.clone();
        self.change(&service, BlobAccess::Delete, &prefix, move |disk| {
            let prefix = target.clone();
            async move { disk.delete_folder(&prefix).await }
        })
        .await
    }
}
