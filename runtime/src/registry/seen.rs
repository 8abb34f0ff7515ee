//! What each plugin file looked like when it was last loaded or refused, so
//! a file is read and compiled again only when it changed. Without this,
//! every event about a file (the runner's own reads among them, on some
//! systems) would load it again: a refused file refused over and over, a
//! plugin whose `describe` hangs run at every timeout.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file's identity and size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path` now, if it can be read.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        Some(Stamp { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime_ns })
    }
}

/// The last attempt at a file: its stamp, and its SHA-256 if it was read.
#[derive(Clone, Debug)]
struct Attempt {
    stamp: Option<Stamp>,
    sha256: Option<String>,
}

/// The last attempt at each file.
#[derive(Default)]
pub struct Seen(Mutex<HashMap<PathBuf, Attempt>>);

impl Seen {
    /// Whether `path` still has the stamp of its last attempt.
    pub fn unchanged(&self, path: &Path, stamp: Option<Stamp>) -> bool {
        stamp.is_some() && self.0.lock().expect("seen lock").get(path).is_some_and(|a| a.stamp == stamp)
    }

    /// Whether `path`'s last attempt read exactly these bytes.
    pub fn same_content(&self, path: &Path, sha256: &str) -> bool {
        self.0.lock().expect("seen lock").get(path).is_some_and(|a| a.sha256.as_deref() == Some(sha256))
    }

    /// Remembers an attempt at `path`.
    pub fn record(&self, path: &Path, stamp: Option<Stamp>, sha256: Option<String>) {
        self.0.lock().expect("seen lock").insert(path.to_path_buf(), Attempt { stamp, sha256 });
    }

    /// Forgets `path`, which is gone.
    pub fn forget(&self, path: &Path) {
        self.0.lock().expect("seen lock").remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_unchanged_until_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"one").unwrap();
        let seen = Seen::default();
        assert!(!seen.unchanged(&path, Stamp::of(&path)));
        seen.record(&path, Stamp::of(&path), Some("sha-one".into()));
        assert!(seen.unchanged(&path, Stamp::of(&path)));
        assert!(seen.same_content(&path, "sha-one"));
        std::fs::write(&path, b"two!").unwrap();
        assert!(!seen.unchanged(&path, Stamp::of(&path)));
        seen.forget(&path);
        assert!(!seen.same_content(&path, "sha-one"));
    }
}
