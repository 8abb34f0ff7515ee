//! The registry: which plugin performs which job class, right now.
//!
//! The current [`PluginSet`] sits behind an [`ArcSwap`]: a job looks its
//! class up without locking and keeps the `Arc<Plugin>` it got for as long
//! as it runs, so replacing a plugin never disturbs a job already running.
//! Files are read, compiled and described independently of each other (a
//! lock per path keeps two loads of one file in order); only deciding and
//! swapping in the new set is serialized, so a slow compile holds up
//! nobody else's change.

mod history;
pub mod owners;
mod seen;
mod set;
mod startup;
pub mod watch;

pub use history::Change;
pub use set::{PluginSet, PluginStatus};

use crate::plugin::{Loader, Plugin};
use arc_swap::ArcSwap;
use history::History;
use owners::Owners;
use seen::{Seen, Stamp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The plugins a runner serves.
pub struct Registry {
    /// The directory plugins are loaded from.
    dir: PathBuf,
    /// The plugin set jobs see.
    current: ArcSwap<PluginSet>,
    /// Serializes changes, so two loads can't each swap in a set missing
    /// the other's plugin.
    changing: Mutex<()>,
    /// One lock per file, held while it is loaded or removed.
    paths: std::sync::Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    /// Whether start-up loading is still going on; also signalled at
    /// every plugin served, for jobs waiting for their class meanwhile.
    starting: tokio::sync::watch::Sender<bool>,
    /// Compiles and checks plugin files.
    loader: Loader,
    /// Recent loads, refusals and removals.
    history: History,
    /// What each file looked like when last loaded or refused.
    seen: Seen,
    /// Who gets a class several files claim.
    owners: Owners,
}

impl Registry {
    pub fn new(dir: &Path, loader: Loader, owners: Owners) -> Registry {
        Registry {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(PluginSet::default()),
            changing: Mutex::new(()),
            paths: std::sync::Mutex::new(HashMap::new()),
            starting: tokio::sync::watch::Sender::new(true),
            loader,
            history: History::default(),
            seen: Seen::default(),
            owners,
        }
    }

    /// The directory plugins are loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The plugin that performs `class`, if any.
    pub fn lookup(&self, class: &str) -> Option<Arc<Plugin>> {
        self.current.load().plugin_for(class)
    }

    /// Recent loads, refusals and removals, newest first.
    pub fn history(&self) -> Vec<Change> {
        self.history.recent()
    }

    /// The current set, for status reporting.
    pub fn snapshot(&self) -> Arc<PluginSet> {
        self.current.load_full()
    }

    /// Loads (or reloads) `path`. On failure the file is refused with one
    /// log line and whatever served before keeps serving. A file that
    /// hasn't changed since it was last loaded or refused is left as it is.
    pub async fn load_file(&self, path: &Path) {
        let _path = self.path_lock(path).await;
        let Some(plugin) = self.prepare(path).await else { return };
        let _changing = self.changing.lock().await;
        let current = self.current.load();
        match current.check_classes(&plugin).and_then(|_| self.owners.check_pins(&plugin.meta)) {
            Ok(()) => self.register(path, plugin).await,
            Err(err) => self.refuse(path, format!("{err:#}")),
        }
    }

    /// The lock that keeps loads and removals of `path` in order.
    async fn path_lock(&self, path: &Path) -> OwnedMutexGuard<()> {
        let lock = self.paths.lock().expect("path locks").entry(path.to_path_buf()).or_default().clone();
        lock.lock_owned().await
    }

    /// Reads, compiles and describes `path`, unless it is unchanged or the
    /// version already serving; refuses it when that fails.
    async fn prepare(&self, path: &Path) -> Option<Plugin> {
        let stamp = Stamp::of(path);
        if self.seen.unchanged(path, stamp) {
            return None;
        }
        let (file, max) = (path.to_path_buf(), self.loader.max_plugin_size);
        let bytes = match tokio::task::spawn_blocking(move || crate::plugin::file::read(&file, max)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(err)) => {
                self.seen.record(path, stamp, None);
                self.refuse(path, format!("{err:#}"));
                return None;
            }
            Err(err) => {
                self.refuse(path, format!("reading it failed: {err}"));
                return None;
            }
        };
        let sha256 = crate::digest::sha256_hex(&bytes);
        let same = self.seen.same_content(path, &sha256);
        self.seen.record(path, stamp, Some(sha256.clone()));
        if same {
            return None;
        }
        if self.current.load().file_hash(path) == Some(sha256.as_str()) {
            // The serving version is back (say, after a bad copy was refused).
            self.current.rcu(|set| set.without_error(path));
            return None;
        }
        match self.loader.load(path, bytes, sha256).await {
            Ok(plugin) => Some(plugin),
            Err(err) => {
                self.refuse(path, format!("{err:#}"));
                None
            }
        }
    }

    /// Serves `plugin`, loaded from `path`, from now on.
    async fn register(&self, path: &Path, plugin: Plugin) {
        let plugin = Arc::new(plugin);
        let m = &plugin.meta;
        let replaced = self.current.load().file_hash(path).unwrap_or("none").to_string();
        tracing::info!(plugin = %m.name, version = %m.version, file = %shown_path(path), sha256 = %m.sha256,
            classes = ?m.classes, code = %m.code_source.as_str(), compile_ms = m.compile_time.as_millis() as u64,
            compiler = %self.loader.compiler.codegen().as_str(),
            replaced = %replaced, "plugin loaded");
        self.loader.metrics.plugin_loaded(&m.name);
        let kind = if replaced == "none" { "loaded" } else { "replaced" };
        let detail = if replaced == "none" { String::new() } else { format!("replaced sha256 {replaced}") };
        let label = Some(format!("{} {}", m.name, m.version));
        self.history.record(change(path, kind, label, Some(m.sha256.clone()), detail));
        self.owners.remember(m).await;
        self.current.store(Arc::new(self.current.load().with_plugin(plugin)));
        self.starting.send_modify(|_| {});
    }

    /// Brings the registry in line with `path` as it is on disk now: loads
    /// it if it is a plugin file, unregisters it if it is gone.
    pub async fn sync_file(&self, path: &Path) {
        if is_plugin_file(path) {
            self.load_file(path).await;
        } else if !path.exists() {
            self.remove_file(path).await;
        }
    }

    /// Unregisters the plugin loaded from `path`, if any.
    pub async fn remove_file(&self, path: &Path) {
        let _path = self.path_lock(path).await;
        let _changing = self.changing.lock().await;
        self.seen.forget(path);
        let current = self.current.load();
        if let Some(plugin) = current.by_file(path) {
            tracing::info!(plugin = %plugin.meta.name, file = %shown_path(path), classes = ?plugin.meta.classes,
                "plugin removed");
            let name = Some(format!("{} {}", plugin.meta.name, plugin.meta.version));
            self.history.record(change(path, "removed", name, None, "the file is gone".into()));
        }
        self.current.store(Arc::new(current.without_file(path)));
    }

    fn refuse(&self, path: &Path, reason: String) {
        tracing::error!(file = %shown_path(path), reason = %crate::untrusted::escape(&reason), "plugin refused");
        let file = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        self.loader.metrics.plugin_refused(&file);
        self.history.record(change(path, "refused", None, None, reason.clone()));
        self.current.rcu(|set| set.with_error(path, &reason));
    }
}

/// A history entry for `path`, now.
fn change(
    path: &Path,
    kind: &'static str,
    plugin: Option<String>,
    sha256: Option<String>,
    detail: String,
) -> Change {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Change { at: crate::clock::now(), file, kind, plugin, sha256, detail }
}

/// Whether `path` looks like a plugin: a `*.wasm` entry that isn't hidden
/// (editors and copy tools write temporary files as `.name.wasm.xyz`) or a
/// directory. One that can't be read (a dangling link, no permission) still
/// counts, so that it is refused with the reason rather than ignored.
pub fn is_plugin_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    let exists = path.symlink_metadata().is_ok();
    !hidden && path.extension().is_some_and(|ext| ext == "wasm") && exists && !path.is_dir()
}

/// A plugin file's path for the log: file names may hold any character.
fn shown_path(path: &Path) -> String {
    crate::untrusted::escape(&path.display().to_string()).into_owned()
}
