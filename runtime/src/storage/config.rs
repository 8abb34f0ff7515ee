//! Active Storage's `config/storage.yml`: each top-level entry is a named
//! service (`service: Disk`, `S3`, `Mirror`, ...) with its settings. The
//! file is rendered as Rails renders it, as far as the runner can without
//! Ruby (the ERB that `sidekiq.yml` may use, plus `Rails.root.join(...)`,
//! and nothing from commented-out lines, such as the credentials lookups
//! `rails new` writes), then parsed as YAML. A relative Disk root is taken
//! from the app's root, where Rails runs.

use super::DiskService;
use crate::config::{erb, yaml};
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The services of one `storage.yml`, by name.
#[derive(Debug, Clone, Default)]
pub struct Services {
    by_name: BTreeMap<String, Service>,
}

/// One service, as far as the runner serves it.
#[derive(Debug, Clone)]
pub enum Service {
    Disk(DiskService),
    S3(S3Config),
    /// Uploads go to every service; reads come from `primary`.
    Mirror {
        primary: String,
        mirrors: Vec<String>,
    },
    /// A service the runner doesn't serve (GCS, AzureStorage, ...).
    Unsupported {
        kind: String,
    },
}

/// An S3 or S3-compatible bucket. Credentials missing from the file come
/// from the environment (`AWS_ACCESS_KEY_ID`, ...) when used.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub force_path_style: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, whatever logs this.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "<set>"))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<set>"))
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

impl Services {
    /// Reads `path` (usually `<app>/config/storage.yml`).
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Services> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // Absolute, so that `Rails.root.join("storage")` and a relative
        // `root:` both land where Rails puts them, whatever our directory.
        let path = std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        Services::parse(&text, &rails_root_of(&path), env).with_context(|| format!("in {}", path.display()))
    }

    /// Parses the text of a `storage.yml` for the app at `rails_root`.
    pub fn parse(text: &str, rails_root: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Services> {
        let rendered = erb::render_in_app(text, env, Some(rails_root))?;
        let Value::Object(entries) = yaml::parse(&rendered)? else { bail!("not a mapping of service names") };
        let mut by_name = BTreeMap::new();
        for (name, settings) in entries {
            let Value::Object(settings) = settings else {
                bail!("service {name}: not a mapping of settings")
            };
            let service = service(&settings, rails_root).with_context(|| format!("service {name}"))?;
            by_name.insert(name, service);
        }
        let services = Services { by_name };
        services.check_mirrors()?;
        Ok(services)
    }

    /// The service called `name`.
    pub fn get(&self, name: &str) -> Result<&Service> {
        self.by_name.get(name).with_context(|| {
            let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            format!("no storage service called {name:?} (the services are {})", known.join(", "))
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    fn check_mirrors(&self) -> Result<()> {
        for (name, service) in &self.by_name {
            if let Service::Mirror { primary, mirrors } = service {
                for target in std::iter::once(primary).chain(mirrors) {
                    match self.by_name.get(target) {
                        None => bail!("service {name}: mirrors {target:?}, which the file doesn't define"),
                        Some(Service::Mirror { .. }) => {
                            bail!("service {name}: mirrors {target:?}, itself a mirror")
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// The app's root for a `storage.yml` at `path`: the folder holding its
/// `config/` folder.
fn rails_root_of(path: &Path) -> PathBuf {
    let folder = path.parent().unwrap_or(Path::new("."));
    match folder.file_name() {
        Some(name) if name == "config" => folder.parent().unwrap_or(Path::new(".")).to_path_buf(),
        _ => folder.to_path_buf(),
    }
}

fn service(settings: &Map<String, Value>, rails_root: &Path) -> Result<Service> {
    let kind = text(settings, "service")?.context("it has no `service:` (Disk, S3, Mirror, ...)")?;
    Ok(match kind.as_str() {
        "Disk" => {
            let root = text(settings, "root")?.context("a Disk service needs `root:`")?;
            Service::Disk(DiskService::new(rails_root.join(root)))
        }
        "S3" => Service::S3(S3Config {
            bucket: text(settings, "bucket")?.context("an S3 service needs `bucket:`")?,
            region: text(settings, "region")?,
            endpoint: text(settings, "endpoint")?,
            access_key_id: text(settings, "access_key_id")?,
            secret_access_key: text(settings, "secret_access_key")?,
            force_path_style: matches!(settings.get("force_path_style"), Some(Value::Bool(true))),
        }),
        "Mirror" => Service::Mirror {
            primary: text(settings, "primary")?.context("a Mirror service needs `primary:`")?,
            mirrors: match settings.get("mirrors") {
                Some(Value::Array(names)) => names
                    .iter()
                    .map(|n| n.as_str().map(str::to_string).context("`mirrors:` lists service names"))
                    .collect::<Result<_>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => bail!("`mirrors:` is not a list of service names"),
            },
        },
        _ => Service::Unsupported { kind },
    })
}

/// A setting's text; an empty one (an unset variable) counts as absent.
fn text(settings: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => bail!("`{key}:` is {other}, not text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_config_path_puts_files_where_rails_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/config")).unwrap();
        std::fs::write(
            dir.path().join("app/config/storage.yml"),
            "local:\n  service: Disk\n  root: <%= Rails.root.join(\"storage\") %>\nrel:\n  service: Disk\n  root: files\n",
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(dir.path(), &cwd).join("app/config/storage.yml");
        let services = Services::load(&relative, &|_| None).unwrap();
        let root = |name| match services.get(name).unwrap() {
            Service::Disk(disk) => disk.root().to_path_buf(),
            other => panic!("{other:?}"),
        };
        assert_eq!(root("local"), dir.path().join("app/storage"));
        assert_eq!(root("rel"), dir.path().join("app/files"));
    }

    /// `path` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let common = path.components().zip(base.components()).take_while(|(a, b)| a == b).count();
        let ups = base.components().skip(common).map(|_| std::path::Component::ParentDir);
        ups.chain(path.components().skip(common)).collect()
    }

    /// The file `rails new` writes (Rails 6.1), with MinIO and a mirror
    /// filled in as users do.
    const STORAGE_YML: &str = r#"test:
  service: Disk
  root: <%= Rails.root.join("tmp/storage") %>

local:
  service: Disk
  root: <%= Rails.root.join("storage") %>

# Use rails credentials:edit to set the AWS secrets (as aws:access_key_id|secret_access_key)
# amazon:
#   service: S3
#   access_key_id: <%= Rails.application.credentials.dig(:aws, :access_key_id) %>
#   secret_access_key: <%= Rails.application.credentials.dig(:aws, :secret_access_key) %>
#   region: us-east-1
#   bucket: your_own_bucket

minio:
  service: S3
  access_key_id: <%= ENV["S3_KEY"] %>
  secret_access_key: <%= ENV.fetch("S3_SECRET") %>
  region: us-east-1
  bucket: shop-<%= ENV.fetch("STAGE", "dev") %>
  endpoint: http://127.0.0.1:9000
  force_path_style: true

google:
  service: GCS
  bucket: x

mirror:
  service: Mirror
  primary: local
  mirrors: [ minio ]
"#;

    fn env(name: &str) -> Option<String> {
        (name == "S3_SECRET").then(|| "s3cr3t".to_string())
    }

    #[test]
    fn reads_the_services_a_rails_app_declares() {
        let services = Services::parse(STORAGE_YML, Path::new("/srv/shop"), &env).unwrap();
        let Service::Disk(local) = services.get("local").unwrap() else { panic!("local is Disk") };
        assert_eq!(local.root(), Path::new("/srv/shop/storage"));
        let Service::Disk(test) = services.get("test").unwrap() else { panic!("test is Disk") };
        assert_eq!(test.root(), Path::new("/srv/shop/tmp/storage"));
        let Service::S3(minio) = services.get("minio").unwrap() else { panic!("minio is S3") };
        assert_eq!(minio.bucket, "shop-dev");
        assert_eq!(minio.access_key_id, None, "an unset variable is no key");
        assert_eq!(minio.secret_access_key.as_deref(), Some("s3cr3t"));
        assert!(minio.force_path_style && minio.endpoint.as_deref() == Some("http://127.0.0.1:9000"));
        assert!(!format!("{minio:?}").contains("s3cr3t"), "Debug hides the secret");
        assert!(matches!(services.get("google").unwrap(), Service::Unsupported { kind } if kind == "GCS"));
        assert!(
            matches!(services.get("mirror").unwrap(), Service::Mirror { primary, .. } if primary == "local")
        );
        let err = services.get("amazon").unwrap_err().to_string();
        assert!(err.contains("\"amazon\"") && err.contains("local, minio"), "{err}");
    }

    #[test]
    fn a_relative_root_is_the_apps_and_mistakes_name_the_service() {
        let services =
            Services::parse("disk:\n  service: Disk\n  root: storage\n", Path::new("/app"), &env).unwrap();
        let Service::Disk(disk) = services.get("disk").unwrap() else { panic!() };
        assert_eq!(disk.root(), Path::new("/app/storage"));
        let err = Services::parse("disk:\n  service: Disk\n", Path::new("/app"), &env).unwrap_err();
        assert!(format!("{err:#}").contains("service disk: a Disk service needs `root:`"), "{err:#}");
        let err =
            Services::parse("m:\n  service: Mirror\n  primary: nope\n", Path::new("/app"), &env).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        assert_eq!(rails_root_of(Path::new("/srv/shop/config/storage.yml")), Path::new("/srv/shop"));
    }
}
