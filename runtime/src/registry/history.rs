//! The registry's recent changes, for the dashboard's Plugins page: each
//! load, replacement, refusal (with its reason) and removal, newest first.
//! Only the last [`KEEP`] are kept; the log has them all.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many changes are remembered.
const KEEP: usize = 200;

/// One change to the plugin set.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// When it happened, in epoch seconds.
    pub at: f64,
    /// The file's name in the plugins directory.
    pub file: String,
    /// What happened: `loaded`, `replaced`, `refused` or `removed`.
    pub kind: &'static str,
    /// The plugin's name and version, when known.
    pub plugin: Option<String>,
    /// The file's SHA-256, when it loaded.
    pub sha256: Option<String>,
    /// Why it was refused, or what it replaced.
    pub detail: String,
}

/// The recent changes.
#[derive(Default)]
pub struct History {
    changes: Mutex<VecDeque<Change>>,
}

impl History {
    pub fn record(&self, change: Change) {
        let mut changes = self.changes.lock().expect("history lock");
        if changes.len() == KEEP {
            changes.pop_back();
        }
        changes.push_front(change);
    }

    /// The remembered changes, newest first.
    pub fn recent(&self) -> Vec<Change> {
        self.changes.lock().expect("history lock").iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest() {
        let history = History::default();
        for i in 0..KEEP + 5 {
            history.record(Change {
                at: i as f64,
                file: "a.wasm".into(),
                kind: "loaded",
                plugin: None,
                sha256: None,
                detail: String::new(),
            });
        }
        let recent = history.recent();
        assert_eq!(recent.len(), KEEP);
        assert_eq!(recent[0].at, (KEEP + 4) as f64);
    }
}
