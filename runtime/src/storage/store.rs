//! The stored files the runner serves plugins: the app's services, which
//! one is the default, and each call routed to the service it names. A
//! Mirror service reads from its primary and writes and deletes on every
//! service it mirrors to, as Rails' `MirrorService` does.

use super::backend::Backend;
use super::s3::S3Service;
use super::{BlobError, Service, Services};
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// The app's storage services and its default one.
#[derive(Debug, Default)]
pub struct Storage {
    services: Services,
    /// A client per S3 service, by name.
    buckets: BTreeMap<String, S3Service>,
    default: Option<String>,
}

impl Storage {
    /// `default` must be one of `services`; without it, calls must name
    /// their service.
    pub fn new(services: Services, default: Option<String>) -> Result<Storage> {
        if let Some(name) = &default {
            services.get(name)?;
        }
        let mut buckets = BTreeMap::new();
        for name in services.names() {
            if let Service::S3(config) = services.get(name)? {
                buckets.insert(name.to_string(), S3Service::new(name, config)?);
            }
        }
        Ok(Storage { services, buckets, default })
    }

    /// Whether any service is configured.
    pub fn is_configured(&self) -> bool {
        self.services.names().next().is_some()
    }

    /// The service's own name: `name`, or the default one for "".
    pub fn name_of<'a>(&'a self, name: &'a str) -> Result<&'a str, BlobError> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.default.as_deref().ok_or_else(|| {
            BlobError::Service("no storage service named and no default one (--storage-service)".to_string())
        })
    }

    /// The service that reads of `name` go to.
    pub fn reader(&self, name: &str) -> Result<Backend<'_>, BlobError> {
        match self.service(name)? {
            Service::Mirror { primary, .. } => self.backend(primary),
            _ => self.backend(name),
        }
    }

    /// The services that writes and deletes of `name` go to.
    pub fn writers(&self, name: &str) -> Result<Vec<Backend<'_>>, BlobError> {
        match self.service(name)? {
            Service::Mirror { primary, mirrors } => {
                std::iter::once(primary).chain(mirrors).map(|target| self.backend(target)).collect()
            }
            _ => Ok(vec![self.backend(name)?]),
        }
    }

    pub(super) fn service(&self, name: &str) -> Result<&Service, BlobError> {
        if !self.is_configured() {
            return Err(BlobError::Service(
                "the runner has no storage services (--storage-config config/storage.yml)".to_string(),
            ));
        }
        self.services.get(name).map_err(|err| BlobError::Service(err.to_string()))
    }

    pub(super) fn backend(&self, name: &str) -> Result<Backend<'_>, BlobError> {
        match self.service(name)? {
            Service::Disk(disk) => Ok(Backend::Disk(disk)),
            Service::S3(_) => Ok(Backend::S3(&self.buckets[name])),
            Service::Mirror { .. } => Err(unserved(name, "a mirror of mirrors")),
            Service::Unsupported { kind } => Err(unserved(name, kind)),
        }
    }
}

fn unserved(name: &str, kind: &str) -> BlobError {
    BlobError::Service(format!(
        "storage service {name} is {kind}, which this runner doesn't serve (it serves Disk, S3 and Mirror)"
    ))
}

/// Loads `--storage-config`, if given.
pub fn load(config: Option<&std::path::Path>, default: Option<String>) -> Result<Storage> {
    let Some(path) = config else {
        if let Some(name) = default {
            bail!("--storage-service {name} needs --storage-config, the app's config/storage.yml");
        }
        return Ok(Storage::default());
    };
    let services = Services::load(path, &|name| std::env::var(name).ok())?;
    Storage::new(services, default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn storage() -> Storage {
        let yml = "local:\n  service: Disk\n  root: a\nbackup:\n  service: Disk\n  root: b\n\
                   both:\n  service: Mirror\n  primary: local\n  mirrors: [backup]\n\
                   s3:\n  service: S3\n  bucket: x\n  region: us-east-1\n";
        let services = Services::parse(yml, Path::new("/app"), &|_| None).unwrap();
        Storage::new(services, Some("local".into())).unwrap()
    }

    #[test]
    fn calls_go_to_the_service_they_name_or_the_default() {
        let storage = storage();
        assert_eq!(storage.name_of("").unwrap(), "local");
        let root = |backend: Backend<'_>| match backend {
            Backend::Disk(disk) => disk.root().to_path_buf(),
            Backend::S3(_) => panic!("not a Disk service"),
        };
        assert_eq!(root(storage.reader("local").unwrap()), Path::new("/app/a"));
        assert_eq!(root(storage.reader("both").unwrap()), Path::new("/app/a"));
        let roots: Vec<_> = storage.writers("both").unwrap().into_iter().map(root).collect();
        assert_eq!(roots, [Path::new("/app/a"), Path::new("/app/b")]);
        assert!(matches!(storage.reader("s3").unwrap(), Backend::S3(_)));
        assert!(storage.reader("nope").unwrap_err().to_string().contains("\"nope\""));
        assert!(Storage::default().reader("local").unwrap_err().to_string().contains("--storage-config"));
    }

    #[test]
    fn the_default_must_exist() {
        let services =
            Services::parse("local:\n  service: Disk\n  root: a\n", Path::new("/app"), &|_| None).unwrap();
        assert!(Storage::new(services, Some("amazon".into())).is_err());
        assert!(load(None, Some("local".into())).is_err());
    }
}
