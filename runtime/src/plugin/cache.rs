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
//! only after it has been read whole into memory and its own SHA-256 (stored
//! in its first 32 bytes) matches: what is deserialized is exactly what was
//! checked, whatever happens to the file afterwards. A missing, stale or
//! corrupt entry means compiling again and rewriting it, never a failure.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
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
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CodeCache { dir: dir.map(Path::to_path_buf), engine_key: format!("{:016x}", hasher.finish()) })
    }

    /// The component for `wasm` (whose SHA-256 is `sha256`), from the cache
    /// when possible. Blocking: call it off the async runtime.
    pub fn component(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> Result<(Component, CodeSource)> {
        let entry = self.dir.as_ref().map(|dir| dir.join(format!("{sha256}-{}.cwasm", self.engine_key)));
        if let Some(entry) = &entry {
            match read_entry(engine, entry) {
                Ok(Some(component)) => return Ok((component, CodeSource::Cache)),
                Ok(None) => {}
                Err(err) => tracing::warn!(entry = %entry.display(), error = %format!("{err:#}"),
                    "ignoring a bad code cache entry; compiling again"),
            }
        }
        let component = Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .context("not a valid WebAssembly component")?;
        if let Some(entry) = &entry
            && let Err(err) = write_entry(&component, entry)
        {
            tracing::warn!(entry = %entry.display(), error = %format!("{err:#}"), "could not write the code cache");
        }
        Ok((component, CodeSource::Compiled))
    }
}

/// The cached component at `path`; `None` if there is no entry.
fn read_entry(engine: &Engine, path: &Path) -> Result<Option<Component>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).context("reading it"),
    };
    anyhow::ensure!(bytes.len() > 32, "it is truncated");
    let (digest, code) = bytes.split_at(32);
    anyhow::ensure!(Sha256::digest(code).as_slice() == digest, "its checksum doesn't match");
    // SAFETY: `code` was produced by `Component::serialize` for an engine with
    // this compatibility hash (the file name says so and the checksum proves
    // the bytes are intact), and it sits in memory nobody else can change.
    let component = unsafe { Component::deserialize(engine, code) }?;
    Ok(Some(component))
}

/// Writes `component` to `path` atomically: a temp file, then a rename.
fn write_entry(component: &Component, path: &Path) -> Result<()> {
    let code = component.serialize()?;
    let dir = path.parent().context("the entry has no directory")?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&Sha256::digest(&code))?;
    temp.write_all(&code)?;
    temp.as_file().sync_all()?;
    temp.persist(path)?;
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
        let sha = crate::digest::sha256_hex(&wasm);
        assert_eq!(cache.component(&engine, &sha, &wasm).unwrap().1, CodeSource::Compiled);
        assert_eq!(cache.component(&engine, &sha, &wasm).unwrap().1, CodeSource::Cache);

        let entry = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, bytes).unwrap();
        assert_eq!(cache.component(&engine, &sha, &wasm).unwrap().1, CodeSource::Compiled);
        assert_eq!(cache.component(&engine, &sha, &wasm).unwrap().1, CodeSource::Cache);
    }

    /// The smallest valid component: the preamble of the binary format.
    fn wat_component() -> Vec<u8> {
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }
}
