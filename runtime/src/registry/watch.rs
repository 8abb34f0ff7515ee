//! Reloading: watching the plugins directory and applying what changed.
//!
//! Every event that may change a file's content (created, written, closed
//! after writing, renamed into place, deleted) only marks its `*.wasm` path
//! as changed; opening and reading a file (the runner's own reads) are not
//! changes. Once a path has been quiet for [`SETTLE`], the
//! registry is brought in line with what is on disk then, so a file still
//! being written is read only after its writer is done, and hidden temp
//! files are never looked at. A file renamed into place (the atomic save:
//! write a temp file, rename it over the old one) is whole the moment it
//! appears, so it is loaded at once, without the wait. Files load side by side; the
//! registry keeps the loads of one file in order. Should the watcher report
//! an error (e.g. its event queue overflowed), every file is checked again.
//!
//! The settle map is ours rather than a debouncer crate's because both
//! miss a case it catches. `notify-debouncer-full` releases a new file's
//! creation a fixed time after it, however long the writer keeps writing:
//! with it, `a_new_file_written_slowly_loads_once_it_is_whole` (hot_swap.rs)
//! fails, the half-written file being read and refused first.
//! `notify-debouncer-mini` reports no event kinds, so the runner's own
//! opens and reads of a file would count as changes.

use super::{Registry, is_plugin_file};
use crate::shutdown::Shutdown;
use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a path must be quiet before it is (re)loaded.
const SETTLE: Duration = Duration::from_millis(300);
/// How often pending paths are checked for having settled.
const TICK: Duration = Duration::from_millis(100);

/// Starts watching the registry's directory until shutdown.
pub fn spawn(registry: Arc<Registry>, shutdown: Shutdown) -> Result<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .context("creating the plugins directory watcher")?;
    watcher
        .watch(registry.dir(), RecursiveMode::NonRecursive)
        .with_context(|| format!("watching the plugins directory {}", registry.dir().display()))?;
    // Not restarted after a panic: the watcher's events go to this task
    // alone. A panic is logged, and files dropped in wait for a restart.
    Ok(crate::supervise::once("the plugins directory watcher".into(), run(registry, watcher, rx, shutdown)))
}

async fn run(
    registry: Arc<Registry>,
    _watcher: RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    shutdown: Shutdown,
) {
    // Path -> when it last changed.
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) if changes_content(&event.kind) => {
                    // A rename is complete: due now rather than once quiet.
                    let at = match renamed(&event.kind) {
                        true => Instant::now().checked_sub(SETTLE).unwrap_or_else(Instant::now),
                        false => Instant::now(),
                    };
                    let paths = event.paths.into_iter().filter(|p| is_candidate(p));
                    pending.extend(paths.map(|p| (p, at)));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "the plugins directory watcher reported an error; rescanning");
                    pending.extend(registry.known_and_present().into_iter().map(|p| (p, Instant::now())));
                }
                None => return,
            },
            _ = ticker.tick() => {}
            _ = shutdown.wait() => return,
        }
        let settled: Vec<PathBuf> =
            pending.iter().filter(|(_, at)| at.elapsed() >= SETTLE).map(|(p, _)| p.clone()).collect();
        for path in settled {
            pending.remove(&path);
            // Each file on its own task: a slow compile holds up no other file.
            let (registry, what) = (registry.clone(), format!("loading plugin file {}", path.display()));
            drop(crate::supervise::once(what, async move { registry.sync_file(&path).await }));
        }
    }
}

/// Whether an event may mean new content: not an open, a read or a
/// change of permissions or times.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

/// Whether an event is a rename, whose target is whole as it appears.
fn renamed(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)))
}

/// A path that may be a plugin: `*.wasm`, not hidden. It may be gone already.
fn is_candidate(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
    !name.starts_with('.') && name.ends_with(".wasm")
}

impl Registry {
    /// Every plugin file on disk and every file the registry knows of.
    fn known_and_present(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.current.load().status().into_iter().map(|s| s.file).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir()) {
            paths.extend(entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_plugin_file(p)));
        }
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange};

    #[test]
    fn only_a_rename_into_place_skips_the_wait() {
        assert!(renamed(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(renamed(&EventKind::Modify(ModifyKind::Name(RenameMode::Both))));
        assert!(!renamed(&EventKind::Modify(ModifyKind::Name(RenameMode::From))));
        assert!(!renamed(&EventKind::Create(CreateKind::File)));
        assert!(!renamed(&EventKind::Modify(ModifyKind::Data(DataChange::Content))));
    }
}
