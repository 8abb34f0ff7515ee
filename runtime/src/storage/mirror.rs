//! Mirroring, as Rails' `MirrorService#mirror` does it for
//! `ActiveStorage::MirrorJob`: a file uploaded straight to a Mirror
//! service's primary (a browser's direct upload) is copied to each service
//! it mirrors to that lacks it, once its bytes match the blob's checksum.

use super::store::Storage;
use super::{BlobError, Service};
use base64::Engine;
use md5::{Digest, Md5};

impl Storage {
    /// Copies `key` from the primary of the Mirror service `name` to each
    /// of its mirrors that lacks it, and returns how many that was; a
    /// service that isn't a Mirror has nothing to copy. Bytes that don't
    /// match `checksum` (the blob's MD5, in Base64) are copied nowhere and
    /// worth a retry, as Rails retries its `IntegrityError`.
    pub async fn mirror(&self, name: &str, key: &str, checksum: &str, cap: u64) -> Result<usize, BlobError> {
        let Service::Mirror { primary, mirrors } = self.service(name)? else { return Ok(0) };
        let mut lacking = Vec::new();
        for target in mirrors {
            let backend = self.backend(target)?;
            match backend.size(key).await {
                Ok(_) => {}
                Err(BlobError::NotFound(_)) => lacking.push(backend),
                Err(err) => return Err(err),
            }
        }
        if lacking.is_empty() {
            return Ok(0);
        }
        let bytes = self.backend(primary)?.read(key, 0, None, cap).await?;
        let found = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes));
        if found != checksum {
            return Err(BlobError::Unavailable {
                key: key.to_string(),
                message: format!(
                    "its file in {primary} doesn't match the blob's checksum (MD5 {found}, not {checksum}); \
                     not mirrored"
                ),
            });
        }
        for backend in &lacking {
            backend.write(key, &bytes).await?;
        }
        Ok(lacking.len())
    }
}
