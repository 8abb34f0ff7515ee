//! Which stored files a plugin may touch through `blobs`.
//!
//! ```toml
//! [plugins.active_storage.blobs]
//! services = ["local", "minio"]   # storage.yml's names; empty: every service
//! read = true                     # the default
//! write = true                    # new files, e.g. a variant
//! delete = true                   # e.g. what ActiveStorage::PurgeJob does
//! max_bytes = 52428800            # the most one call reads or writes
//! ```
//!
//! Without a policy file a plugin may read the files of every service and
//! write or delete none. With one, a plugin touches files only where its
//! section (or `[default]`) grants them: uploads are the riskiest input a
//! web app takes, and a file deleted can't be had back.

use serde::Deserialize;

/// What one plugin may do with stored files.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BlobGrant {
    /// The services (by their `storage.yml` names) granted; empty grants all.
    pub services: Vec<String>,
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    /// The most bytes one call may read or write.
    pub max_bytes: u64,
}

impl Default for BlobGrant {
    fn default() -> Self {
        BlobGrant {
            services: Vec::new(),
            read: true,
            write: false,
            delete: false,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

/// One plugin's grant; `None` (a policy file that grants nothing) allows
/// nothing.
pub type BlobGrants = Option<BlobGrant>;

/// What a call does to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobAccess {
    Read,
    Write,
    Delete,
}

impl BlobAccess {
    fn verb(self) -> &'static str {
        match self {
            BlobAccess::Read => "read",
            BlobAccess::Write => "write",
            BlobAccess::Delete => "delete",
        }
    }
}

/// Why `plugin` may not do `access` in `service`, for the plugin and the log.
pub fn check(grants: &BlobGrants, plugin: &str, service: &str, access: BlobAccess) -> Result<(), String> {
    let verb = access.verb();
    let Some(grant) = grants else {
        return Err(format!("plugin {plugin} may not {verb} stored files: the policy grants it no blobs"));
    };
    if !grant.services.is_empty() && !grant.services.iter().any(|s| s == service) {
        return Err(format!(
            "plugin {plugin} may not use storage service {service}: the policy grants it {:?}",
            grant.services
        ));
    }
    let allowed = match access {
        BlobAccess::Read => grant.read,
        BlobAccess::Write => grant.write,
        BlobAccess::Delete => grant.delete,
    };
    if !allowed {
        return Err(format!(
            "plugin {plugin} may not {verb} stored files in {service}: the policy doesn't grant {verb} = true"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_the_default_and_writing_needs_a_grant() {
        let open = Some(BlobGrant::default());
        assert_eq!(check(&open, "p", "local", BlobAccess::Read), Ok(()));
        let err = check(&open, "p", "local", BlobAccess::Write).unwrap_err();
        assert!(err.contains("plugin p") && err.contains("write = true"), "{err}");
        assert!(check(&open, "p", "local", BlobAccess::Delete).is_err());
        let err = check(&None, "p", "local", BlobAccess::Read).unwrap_err();
        assert!(err.contains("grants it no blobs"), "{err}");
    }

    #[test]
    fn a_grant_names_its_services() {
        let grant = Some(BlobGrant { services: vec!["local".into()], write: true, ..BlobGrant::default() });
        assert_eq!(check(&grant, "p", "local", BlobAccess::Write), Ok(()));
        let err = check(&grant, "p", "minio", BlobAccess::Read).unwrap_err();
        assert!(err.contains("service minio"), "{err}");
    }
}
