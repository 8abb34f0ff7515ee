//! `blobs` as the guest sees it: the host side of the WIT interface. Each
//! call is checked against the plugin's policy (service, read / write /
//! delete, size cap) before it reaches [`crate::storage`]; a call the policy
//! denies also fails the job for good, as a broken mail rule does.

use super::host::HostState;
use crate::policy::{BlobAccess, blobs};
use crate::storage::{BlobError, Storage, pieces};
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
            BlobError::InvalidKey { .. }
            | BlobError::TooLarge { .. }
            | BlobError::Service(_)
            | BlobError::Offset { .. } => WitError::InvalidInput(message),
            BlobError::Unavailable { .. } => WitError::Unavailable(message),
        }
    }
}

impl HostState {
    /// The service `service` names, checked for `access` under the policy,
    /// and the cap on one call's bytes.
    pub(super) fn blob_call(
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
            Ok(service) => service.read(key, offset, length, cap).await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            self.blob_failed("read", key, &err);
            err.into()
        })
    }

    /// Makes `change` to `key` on every service a write or delete of
    /// `service` goes to.
    async fn change(&mut self, service: &str, key: &str, change: Change<'_>) -> Result<(), WitError> {
        let (access, op) = match change {
            Change::Write(_) => (BlobAccess::Write, "write"),
            Change::Delete | Change::DeleteFolder => (BlobAccess::Delete, "delete"),
        };
        let (storage, name, cap) = self.blob_call(service, access)?;
        let result = async {
            if let Change::Write(bytes) = change
                && bytes.len() as u64 > cap
            {
                return Err(BlobError::TooLarge { key: key.to_string(), size: bytes.len() as u64, cap });
            }
            for service in storage.writers(&name)? {
                match change {
                    Change::Write(bytes) => service.write(key, bytes).await?,
                    Change::Delete => service.delete(key).await?,
                    Change::DeleteFolder => service.delete_folder(key).await?,
                }
            }
            Ok(())
        }
        .await;
        result.map_err(|err| {
            self.blob_failed(op, key, &err);
            err.into()
        })
    }
}

/// A step of a blob written in pieces.
#[derive(Clone, Copy)]
enum Pieces<'a> {
    /// These bytes at this offset.
    Append(u64, &'a [u8]),
    /// Made whole.
    Assemble,
    /// Its pieces deleted.
    Clear,
}

impl HostState {
    /// Takes `step` on `key`'s pieces on every service a write of
    /// `service` goes to; returns what the first (the primary) says.
    async fn in_pieces(&mut self, service: &str, key: &str, step: Pieces<'_>) -> Result<u64, WitError> {
        let (storage, name, cap) = self.blob_call(service, BlobAccess::Write)?;
        let result = async {
            let mut first = None;
            for service in storage.writers(&name)? {
                let done = match step {
                    Pieces::Append(_, bytes) if bytes.len() as u64 > cap => {
                        return Err(BlobError::TooLarge {
                            key: key.to_string(),
                            size: bytes.len() as u64,
                            cap,
                        });
                    }
                    Pieces::Append(offset, bytes) => {
                        let ours = self.appended.get(&(name.clone(), key.to_string())) == Some(&offset);
                        pieces::append(&service, key, (offset, ours), bytes).await?
                    }
                    Pieces::Assemble => pieces::assemble(&service, key).await?,
                    Pieces::Clear => pieces::clear(&service, key).await.map(|()| 0)?,
                };
                first.get_or_insert(done);
            }
            Ok(first.unwrap_or(0))
        }
        .await;
        let op = match step {
            Pieces::Append(..) => "append",
            Pieces::Assemble | Pieces::Clear => "finish",
        };
        // This run wrote up to there: its next append there needn't look.
        match (&result, step) {
            (Ok(end), Pieces::Append(..)) => self.appended.insert((name, key.to_string()), *end),
            _ => self.appended.remove(&(name, key.to_string())),
        };
        result.map_err(|err| {
            self.blob_failed(op, key, &err);
            err.into()
        })
    }
}

/// What a write or delete does to each service it goes to.
#[derive(Clone, Copy)]
enum Change<'a> {
    Write(&'a [u8]),
    Delete,
    /// Every file under the key, followed by `/`.
    DeleteFolder,
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
            Ok(service) => service.size(&key).await,
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
        self.change(&service, &key, Change::Write(&bytes)).await
    }

    async fn delete(&mut self, service: String, key: String) -> Result<(), WitError> {
        self.change(&service, &key, Change::Delete).await
    }

    async fn delete_prefixed(&mut self, service: String, prefix: String) -> Result<(), WitError> {
        self.change(&service, &prefix, Change::DeleteFolder).await
    }

    async fn append(
        &mut self,
        service: String,
        key: String,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<u64, WitError> {
        self.in_pieces(&service, &key, Pieces::Append(offset, &bytes)).await
    }

    async fn finish(&mut self, service: String, key: String, _content_type: String) -> Result<u64, WitError> {
        let size = self.in_pieces(&service, &key, Pieces::Assemble).await?;
        // The job's cursor, past its last piece, is saved before the pieces
        // go: a rerun then appends nothing and finds the file whole.
        if let Some(iteration) = &self.iteration
            && let Err(err) = iteration.save().await
        {
            return Err(WitError::Unavailable(format!(
                "saving the job's cursor before finishing blob {key:?}: {err:#}"
            )));
        }
        self.in_pieces(&service, &key, Pieces::Clear).await?;
        tracing::info!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
            key = %shown(&key, SHOWN), size, "blob written in pieces finished");
        Ok(size)
    }

    async fn mirror(&mut self, service: String, key: String, checksum: String) -> Result<u32, WitError> {
        let (storage, name, cap) = self.blob_call(&service, BlobAccess::Write)?;
        match storage.mirror(&name, &key, &checksum, cap).await {
            Ok(copies) => {
                tracing::debug!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
                    service = %shown(&name, SHOWN), key = %shown(&key, SHOWN), copies, "blob mirrored");
                Ok(copies as u32)
            }
            Err(err) => {
                self.blob_failed("mirror", &key, &err);
                Err(err.into())
            }
        }
    }
}
