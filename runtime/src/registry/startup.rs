//! Loading the plugins directory at start-up, each plugin independently.
//!
//! Every file is compiled and described at once (the compile pool bounds
//! how many really compile together), and a plugin serves its classes as
//! soon as it is ready, so one slow or hostile file never holds back the
//! jobs of the others. Who gets a class is still never decided by which
//! file is ready first: a plugin serves early only when each of its classes
//! is pinned to it by the policy or was last served by it (the usual
//! restart). Any other claim waits until every file has loaded, and is then
//! settled by [`Owners::settle`](super::owners::Owners::settle) against all
//! claims, those already serving included. Until then, a job whose class
//! nobody serves yet waits for start-up to finish instead of failing.

use super::{Registry, is_plugin_file};
use crate::plugin::{Plugin, PluginMeta};
use anyhow::{Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;

/// A plugin whose claims are settled once every file has loaded; the guard
/// keeps its file from being reloaded meanwhile.
type Deferred = (PathBuf, Plugin, OwnedMutexGuard<()>);

impl Registry {
    /// The plugin files in the directory now, by name.
    pub fn plugin_files(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading the plugins directory {}", self.dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| is_plugin_file(path))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Loads `files` (see the module's comment), then marks start-up done.
    pub async fn load_all(&self, files: Vec<PathBuf>) {
        let mut loading: FuturesUnordered<_> = files
            .into_iter()
            .map(|path| async move {
                let guard = self.path_lock(&path).await;
                let plugin = self.prepare(&path).await;
                (path, plugin, guard)
            })
            .collect();
        let (mut serving, mut deferred) = (Vec::new(), Vec::new());
        while let Some((path, plugin, guard)) = loading.next().await {
            let Some(plugin) = plugin else { continue };
            if let Err(err) = self.owners.check_pins(&plugin.meta) {
                self.refuse(&path, format!("{err:#}"));
            } else if self.owners.serves_early(&plugin.meta).await {
                let meta = plugin.meta.clone();
                if self.register_unless_served(&path, plugin).await {
                    serving.push((path, meta));
                }
            } else {
                deferred.push((path, plugin, guard));
            }
        }
        self.settle_deferred(serving, deferred).await;
        self.starting.send_replace(false);
        if self.snapshot().is_empty() {
            tracing::warn!(dir = %self.dir.display(), "no plugin loaded; jobs wait in the retry set until one is");
        }
    }

    /// Serves `plugin` unless another plugin serves one of its classes.
    async fn register_unless_served(&self, path: &std::path::Path, plugin: Plugin) -> bool {
        let _changing = self.changing.lock().await;
        match self.current.load().check_classes(&plugin) {
            Ok(()) => {
                self.register(path, plugin).await;
                true
            }
            Err(err) => {
                self.refuse(path, format!("{err:#}"));
                false
            }
        }
    }

    /// Settles the deferred claims against every claim, the serving first.
    async fn settle_deferred(&self, serving: Vec<(PathBuf, PluginMeta)>, deferred: Vec<Deferred>) {
        let mut claims = serving;
        claims.extend(deferred.iter().map(|(path, plugin, _)| (path.clone(), plugin.meta.clone())));
        let losers = self.owners.settle(&claims).await;
        for (path, plugin, _guard) in deferred {
            match losers.get(&path) {
                Some(reason) => self.refuse(&path, reason.clone()),
                None => {
                    self.register_unless_served(&path, plugin).await;
                }
            }
        }
    }

    /// The plugin for `class`; while start-up loading goes on and nobody
    /// serves it yet, waits until somebody does or start-up is done.
    pub async fn serving(&self, class: &str) -> Option<Arc<Plugin>> {
        // The hot path: a class that is served costs one lookup.
        if let Some(plugin) = self.lookup(class) {
            return Some(plugin);
        }
        let mut changes = self.starting.subscribe();
        loop {
            if let Some(plugin) = self.lookup(class) {
                return Some(plugin);
            }
            // Fails only if the registry is gone, and then nobody serves.
            if !*changes.borrow_and_update() || changes.changed().await.is_err() {
                return self.lookup(class);
            }
        }
    }
}
