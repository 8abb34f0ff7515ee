//! The on-disk cache of compiled plugins.
//!
//! Compiling a component takes tens to hundreds of milliseconds of CPU;
//! loading its compiled form takes well under one. An entry is keyed by the
//! SHA-256 of the `.wasm` bytes and the engine's compatibility hash (the
//! wasmtime version and every setting that affects code), so a restart, or the
//! same file dropped in again, skips compilation, while a new engine never
//! loads code compiled for another.
//!
//! Loading compiled code runs it without validation, so an entry is trusted
//! only after its own checksum (XXH3-128, in its last 16 bytes) matches,
//! read through the open file that is then mapped into memory. Mapping
//! rather than copying spares a load writing out 40 to 50 MB of fresh
//! memory twice, and lets wasmtime map an interpreter's initial heap from
//! the file instead of copying it. The runner never writes an entry in
//! place (a temp file, then a rename), so the file mapped is the file
//! checked; a cache on a `noexec` mount, which can't be mapped executable,
//! is read into memory and checked again there. A missing, stale or
//! corrupt entry means compiling again and rewriting it, never a failure.
//!
//! The checksum catches a torn write or a damaged disk, nothing more, which
//! is why it needn't be cryptographic: an interpreter's entry is 40 to 50
//! MB, which SHA-256 took about 36 ms to hash on every load.
//! It proves an entry intact, not harmless: whoever can write the
//! cache can run native code in the runner. So the directory and every
//! entry must belong to the runner's user and be writable by nobody else;
//! a directory that isn't is not used (compiling every plugin instead), an
//! entry that isn't is compiled again, and the log says why.

use anyhow::{Context, Result};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled plugins are kept.
pub struct CodeCache {
    /// The cache directory; `None` disables caching.
    dir: Option<PathBuf>,
    /// The engine's compatibility hash, as hex.
    engine_key: String,
}

/// Where a loaded component's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSource {
    /// Compiled now.
    Compiled,
    /// Read from the cache.
    Cache,
}

impl CodeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeSource::Compiled => "compiled",
            CodeSource::Cache => "cache",
        }
    }
}

impl CodeCache {
    /// A cache in `dir` (created, readable by this user only), or none.
    pub fn new(dir: Option<&Path>, engine: &Engine) -> Result<CodeCache> {
        if let Some(dir) = dir {
            create_private_dir(dir).with_context(|| format!("creating the code cache {}", dir.display()))?;
        }
        let dir = dir.filter(|dir| match std::fs::metadata(dir).map_err(anyhow::Error::from).and_then(|m| private(&m)) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(dir = %dir.display(), reason = %format!("{why:#}"),
                    "not using the code cache: compiled code there could be anyone's; compiling every plugin");
                false
            }
        });
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CodeCache { dir: dir.map(Path::to_path_buf), engine_key: format!("{:016x}", hasher.finish()) })
    }

    /// Whether compiled code is kept and loaded at all.
    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// The cached component for the `.wasm` file whose SHA-256 is
    /// `sha256`, if there is a usable entry. Blocking: call it off the
    /// async runtime.
    pub fn lookup(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let entry = self.entry(sha256)?;
        match read_entry(engine, &entry) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(entry = %entry.display(), error = %format!("{err:#}"),
                    "ignoring a bad code cache entry; compiling again");
                None
            }
        }
    }

    /// Keeps `code`, compiled for this engine from the file whose SHA-256 is
    /// `sha256`. Blocking; a failure is logged, the next load compiles again.
    pub fn store(&self, sha256: &str, code: &[u8]) {
        let Some(entry) = self.entry(sha256) else { return };
        if let Err(err) = write_entry(code, &entry) {
            tracing::warn!(entry = %entry.display(), error = %format!("{err:#}"), "could not write the code cache");
        }
    }

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        let name = format!("{sha256}-{}.{ENTRY_FORMAT}.cwasm", self.engine_key);
        self.dir.as_ref().map(|dir| dir.join(name))
    }
}

/// Names the layout of an entry (the code, then its checksum), so entries
/// written in another layout are misses, compiled again, rather than
/// failed checks.
const ENTRY_FORMAT: &str = "x3t";

/// Bytes of the checksum at the end of an entry.
const CHECKSUM_LEN: usize = 16;

/// How much of an entry is read at a time to check it.
const CHECK_CHUNK: usize = 1 << 20;

/// The checksum an entry of `code` ends with.
fn checksum(code: &[u8]) -> [u8; CHECKSUM_LEN] {
    xxhash_rust::xxh3::xxh3_128(code).to_le_bytes()
}

/// The cached component at `path`; `None` if there is no entry.
fn read_entry(engine: &Engine, path: &Path) -> Result<Option<Component>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).context("opening it"),
    };
    // The file as opened, not the path: it can't be swapped after the check.
    let meta = file.metadata().context("reading its owner")?;
    anyhow::ensure!(meta.is_file(), "it is not a regular file");
    private(&meta)?;
    let code_len = usize::try_from(meta.len())?.checked_sub(CHECKSUM_LEN).filter(|&n| n > 0);
    let code_len = code_len.context("it is truncated")?;
    check(&file, code_len)?;
    let mapped = file.try_clone().context("reopening it")?;
    // SAFETY: the file holds what `Component::serialize` produced for an
    // engine with this compatibility hash (its name says so, and the checksum
    // just read through this same open file proves the bytes intact). Only
    // the runner's user can write it, and the runner never writes an entry
    // in place (see `write_entry`), so the mapping sees the bytes checked.
    match unsafe { Component::deserialize_open_file(engine, mapped) } {
        Ok(component) => Ok(Some(component)),
        Err(err) => {
            // A cache on a `noexec` mount can't be mapped executable.
            tracing::info!(entry = %path.display(), error = %format!("{err:#}"),
                "could not map the code cache entry (is its mount noexec?); reading it into memory instead");
            read_whole(engine, file, code_len).map(Some)
        }
    }
}

/// Reads the first `code_len` bytes of `file` and checks them against the
/// checksum after them.
fn check(file: &File, code_len: usize) -> Result<()> {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut chunk = vec![0; CHECK_CHUNK.min(code_len)];
    let mut at = 0;
    while at < code_len {
        let part = &mut chunk[..CHECK_CHUNK.min(code_len - at)];
        file.read_exact_at(part, at as u64).context("reading it")?;
        hasher.update(part);
        at += part.len();
    }
    let mut stored = [0; CHECKSUM_LEN];
    file.read_exact_at(&mut stored, code_len as u64).context("reading its checksum")?;
    anyhow::ensure!(hasher.digest128().to_le_bytes() == stored, "its checksum doesn't match");
    Ok(())
}

/// Loads the entry from a copy in memory, checked again there: what is
/// deserialized is exactly what was checked, whatever happens to the file.
fn read_whole(engine: &Engine, mut file: File, code_len: usize) -> Result<Component> {
    let mut bytes = Vec::with_capacity(code_len + CHECKSUM_LEN);
    std::io::Read::read_to_end(&mut file, &mut bytes).context("reading it")?;
    anyhow::ensure!(bytes.len() == code_len + CHECKSUM_LEN, "it changed while being read");
    let (code, stored) = bytes.split_at(code_len);
    anyhow::ensure!(checksum(code) == stored, "its checksum doesn't match");
    // SAFETY: as in `read_entry`, and the bytes are in memory nobody else
    // can change.
    Ok(unsafe { Component::deserialize(engine, code) }?)
}

/// Writes `code` to `path` atomically: a temp file, then a rename. An
/// entry is never written in place, so a mapped one never changes.
fn write_entry(code: &[u8], path: &Path) -> Result<()> {
    let dir = path.parent().context("the entry has no directory")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(code)?;
    temp.write_all(&checksum(code))?;
    temp.as_file().sync_all()?;
    temp.persist(path)?;
    Ok(())
}

/// Refuses a file or directory that isn't this user's alone to write.
fn private(meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    anyhow::ensure!(meta.uid() == me, "it belongs to uid {}, not to the runner's uid {me}", meta.uid());
    anyhow::ensure!(
        meta.mode() & 0o022 == 0,
        "its group or others may write it (mode {:o})",
        meta.mode() & 0o777
    );
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_load_comes_from_the_cache_and_corruption_recompiles() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(Some(dir.path()), &engine).unwrap();
        let wasm = wat_component();
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Compiled);
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Cache);

        let entry = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&entry, bytes).unwrap();
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Compiled);
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Cache);
    }

    #[test]
    fn caches_and_entries_others_can_write_are_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let engine = Engine::default();
        let open = tempfile::tempdir().unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!CodeCache::new(Some(open.path()), &engine).unwrap().is_enabled());

        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(Some(dir.path()), &engine).unwrap();
        assert!(cache.is_enabled());
        let wasm = wat_component();
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Compiled);
        let entry = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Compiled, "writable by others");
        assert_eq!(load(&cache, &engine, &wasm), CodeSource::Cache, "rewritten as ours");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&entry, Some(65534), None).unwrap();
            assert_eq!(load(&cache, &engine, &wasm), CodeSource::Compiled, "someone else's");
        }
    }

    /// Where the code came from, compiling it in-process on a miss.
    fn load(cache: &CodeCache, engine: &Engine, wasm: &[u8]) -> CodeSource {
        let sha = crate::digest::sha256_hex(wasm);
        if cache.lookup(engine, &sha).is_some() {
            return CodeSource::Cache;
        }
        cache.store(&sha, &engine.precompile_component(wasm).unwrap());
        CodeSource::Compiled
    }

    /// The smallest valid component: the preamble of the binary format.
    fn wat_component() -> Vec<u8> {
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }
}
