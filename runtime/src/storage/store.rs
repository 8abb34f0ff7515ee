//! The stored files the runner serves plugins: the app's services, which
//! one is the default, and each call routed to the service it names. A
//! Mirror service reads from its primary and writes and deletes on every
//! service it mirrors to, as Rails' `MirrorService` does.

use super::{BlobError, DiskService, Service, Services};
use anyhow::{Result, bail};

/// The app's storage services and its default one.
#[derive(Debug, Default)]
pub struct Storage {
    services: Services,
    default: Option<String>,
}

impl Storage {
    /// `default` must be one of `services`; without it, calls must name
    /// their service.
    pub fn new(services: Services, default: Option<String>) -> Result<Storage> {
        if let Some(name) = &default {
            services.get(name)?;
        }
        Ok(Storage { services, default })
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

    /// The Disk service that reads of `name` go to.
    pub fn reader(&self, name: &str) -> Result<&DiskService, BlobError> {
        match self.service(name)? {
            Service::Mirror { primary, .. } => self.disk(primary),
            _ => self.disk(name),
        }
    }

    /// The Disk services that writes and deletes of `name` go to.
    pub fn writers(&self, name: &str) -> Result<Vec<&DiskService>, BlobError> {
        match self.service(name)? {
            Service::Mirror { primary, mirrors } => {
                std::iter::once(primary).chain(mirrors).map(|target| self.disk(target)).collect()
            }
            _ => Ok(vec![self.disk(name)?]),
        }
    }

    fn service(&self, name: &str) -> Result<&Service, BlobError> {
        if !self.is_configured() {
            return Err(BlobError::Service(
                "the runner has no storage services (--storage-config config/storage.yml)".to_string(),
            ));
        }
        self.services.get(name).map_err(|err| BlobError::Service(err.to_string()))
    }

    fn disk(&self, name: &str) -> Result<&DiskService, BlobError> {
        match self.service(name)? {
            Service::Disk(disk) => Ok(disk),
            Service::S3(_) => Err(unserved(name, "S3")),
            Service::Mirror { .. } => Err(unserved(name, "a mirror of mirrors")),
            Service::Unsupported { kind } => Err(unserved(name, kind)),
        }
    }
}

fn unserved(name: &str, kind: &str) -> BlobError {
    BlobError::Service(format!(
        "storage service {name} is {kind}, which this runner doesn't serve (it serves Disk)"
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
                   s3:\n  service: S3\n  bucket: x\n";
        let services = Services::parse(yml, Path::new("/app"), &|_| None).unwrap();
        Storage::new(services, Some("local".into())).unwrap()
    }

    #[test]
    fn calls_go_to_the_service_they_name_or_the_default() {
        let storage = storage();
        assert_eq!(storage.name_of("").unwrap(), "local");
        assert_eq!(storage.reader("local").unwrap().root(), Path::new("/app/a"));
        assert_eq!(storage.reader("both").unwrap().root(), Path::new("/app/a"));
        let roots: Vec<_> = storage.writers("both").unwrap().iter().map(|d| d.root().to_path_buf()).collect();
        assert_eq!(roots, [Path::new("/app/a"), Path::new("/app/b")]);
        let err = storage.reader("s3").unwrap_err().to_string();
        assert!(err.contains("s3 is S3"), "{err}");
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
