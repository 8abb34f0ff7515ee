//! One immutable snapshot of the loaded plugins: by class for routing jobs,
//! by file for reloading, plus the last refusal per file for status pages.

use crate::plugin::Plugin;
use anyhow::{Result, bail};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The plugins loaded at one moment.
#[derive(Clone, Default)]
pub struct PluginSet {
    /// Job class -> the plugin that performs it.
    by_class: HashMap<String, Arc<Plugin>>,
    /// File -> the plugin loaded from it.
    by_file: BTreeMap<PathBuf, Arc<Plugin>>,
    /// File -> why it was last refused, and when.
    errors: BTreeMap<PathBuf, (String, SystemTime)>,
}

/// What a status page shows of one plugin file; as JSON, the file is its
/// name and `loaded_at` epoch seconds.
#[derive(Clone, Debug, Serialize)]
pub struct PluginStatus {
    /// The file, in the plugins directory.
    #[serde(serialize_with = "file_name")]
    pub file: PathBuf,
    /// What the serving plugin calls itself; none while only refused.
    pub name: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub classes: Vec<String>,
    /// When the serving version was loaded.
    #[serde(serialize_with = "epoch_seconds")]
    pub loaded_at: Option<SystemTime>,
    /// Why the file's latest version was refused, while an older one serves.
    pub last_error: Option<String>,
}

impl PluginStatus {
    /// The file's name, as the page shows it.
    pub fn file_name(&self) -> String {
        self.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// When it was loaded, in epoch seconds.
    pub fn loaded_at_secs(&self) -> Option<f64> {
        self.loaded_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64())
    }
}

fn file_name<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
}

fn epoch_seconds<S: Serializer>(at: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    let secs = at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64());
    secs.serialize(serializer)
}

impl PluginSet {
    pub fn plugin_for(&self, class: &str) -> Option<Arc<Plugin>> {
        self.by_class.get(class).cloned()
    }

    pub fn by_file(&self, path: &Path) -> Option<&Arc<Plugin>> {
        self.by_file.get(path)
    }

    pub fn file_hash(&self, path: &Path) -> Option<&str> {
        self.by_file.get(path).map(|p| p.meta.sha256.as_str())
    }

    /// Refuses `plugin` if another file's plugin already serves one of its classes.
    pub fn check_classes(&self, plugin: &Plugin) -> Result<()> {
        for class in &plugin.meta.classes {
            if let Some(other) = self.by_class.get(class).filter(|o| o.meta.path != plugin.meta.path) {
                bail!(
                    "class {class} is already served by plugin {} ({})",
                    other.meta.name,
                    other.meta.path.display()
                );
            }
        }
        Ok(())
    }

    /// This set with `plugin` replacing whatever its file held before.
    pub fn with_plugin(&self, plugin: Arc<Plugin>) -> PluginSet {
        let mut next = self.without_file(&plugin.meta.path);
        next.errors.remove(&plugin.meta.path);
        for class in &plugin.meta.classes {
            next.by_class.insert(class.clone(), plugin.clone());
        }
        next.by_file.insert(plugin.meta.path.clone(), plugin);
        next
    }

    /// This set without the plugin loaded from `path`.
    pub fn without_file(&self, path: &Path) -> PluginSet {
        let mut next = self.clone();
        if let Some(old) = next.by_file.remove(path) {
            next.by_class.retain(|_, p| !Arc::ptr_eq(p, &old));
        }
        next.errors.remove(path);
        next
    }

    /// This set without a refusal recorded for `path`.
    pub fn without_error(&self, path: &Path) -> PluginSet {
        let mut next = self.clone();
        next.errors.remove(path);
        next
    }

    /// This set with `path`'s refusal recorded.
    pub fn with_error(&self, path: &Path, reason: &str) -> PluginSet {
        let mut next = self.clone();
        next.errors.insert(path.to_path_buf(), (reason.to_string(), SystemTime::now()));
        next
    }

    pub fn is_empty(&self) -> bool {
        self.by_file.is_empty()
    }

    /// One line per file, loaded or refused.
    pub fn status(&self) -> Vec<PluginStatus> {
        let mut files: Vec<&PathBuf> = self.by_file.keys().chain(self.errors.keys()).collect();
        files.sort();
        files.dedup();
        files
            .into_iter()
            .map(|file| {
                let plugin = self.by_file.get(file);
                PluginStatus {
                    file: file.clone(),
                    name: plugin.map(|p| p.meta.name.clone()),
                    version: plugin.map(|p| p.meta.version.clone()),
                    sha256: plugin.map(|p| p.meta.sha256.clone()),
                    classes: plugin.map(|p| p.meta.classes.clone()).unwrap_or_default(),
                    loaded_at: plugin.map(|p| p.meta.loaded_at),
                    last_error: self.errors.get(file).map(|(e, _)| e.clone()),
                }
            })
            .collect()
    }
}
