//! The memory cap of one instance: all its linear memories together, not
//! each one. A component may hold several memories (one per core module);
//! capping each would let one with 36 memories use 36 times the cap. The
//! engine also refuses components with more memories or tables than
//! [`crate::engine`] allows, so none can empty the shared pool.

use crate::engine::{MAX_MEMORIES_PER_COMPONENT, MAX_TABLES_PER_COMPONENT};
use anyhow::{Result, bail};
use std::fmt;
use wasmtime::ResourceLimiter;
use wasmtime::component::Component;

/// The most table elements an instance may grow a table to; the pooling
/// allocator reserves this many per table slot and enforces it too.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The size of a WebAssembly page, in bytes.
const PAGE: u64 = 64 * 1024;

/// Refuses, at load, a component no instance of which could run within the
/// limits: more memories or tables than one instance may have, or a memory
/// or table that starts out larger than allowed.
pub fn check_component(component: &Component, memory_bytes: usize) -> Result<()> {
    // `None`: it instantiates core modules it imports, which the host never
    // provides, so linking it fails with its own reason.
    let Some(needs) = component.resources_required() else { return Ok(()) };
    if needs.num_memories > MAX_MEMORIES_PER_COMPONENT {
        bail!(
            "it has {} linear memories; an instance may have at most {MAX_MEMORIES_PER_COMPONENT}",
            needs.num_memories
        );
    }
    if needs.num_tables > MAX_TABLES_PER_COMPONENT {
        bail!("it has {} tables; an instance may have at most {MAX_TABLES_PER_COMPONENT}", needs.num_tables);
    }
    let initial = needs.max_initial_memory_size.unwrap_or(0).saturating_mul(PAGE);
    if initial > memory_bytes as u64 {
        bail!(
            "a memory of it starts at {} MiB, more than the {} MiB an instance may use (--memory)",
            initial / (1024 * 1024),
            memory_bytes / (1024 * 1024)
        );
    }
    if let Some(elements) = needs.max_initial_table_size.filter(|&n| n > MAX_TABLE_ELEMENTS as u64) {
        bail!("a table of it starts with {elements} elements; at most {MAX_TABLE_ELEMENTS} are allowed");
    }
    Ok(())
}

/// Refuses memory growth past the cap. Failing the growth with an error
/// (rather than letting `memory.grow` return -1) ends the job at once with a
/// message that says what happened, instead of an allocator abort.
pub struct MemoryCap {
    /// Bytes one instance may use across its memories.
    limit: usize,
    /// Bytes its memories hold now, together.
    used: usize,
}

impl MemoryCap {
    pub fn new(limit: usize) -> MemoryCap {
        MemoryCap { limit, used: 0 }
    }
}

/// The error a job fails with when it outgrows its memory cap.
#[derive(Debug)]
pub struct MemoryExceeded(pub usize);

impl fmt::Display for MemoryExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory limit of {} MiB exceeded", self.0 / (1024 * 1024))
    }
}

impl std::error::Error for MemoryExceeded {}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for each memory's creation (from 0) and each growth.
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            return Err(wasmtime::Error::new(MemoryExceeded(self.limit)));
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_cap_is_on_all_memories_together() {
        let mut cap = MemoryCap::new(64 * MIB);
        assert!(cap.memory_growing(0, 40 * MIB, None).unwrap());
        // A second memory may take only what the first left.
        assert!(cap.memory_growing(0, 20 * MIB, None).unwrap());
        let err = cap.memory_growing(0, 10 * MIB, None).unwrap_err();
        assert!(err.to_string().contains("64 MiB"), "{err}");
        // Growing one memory counts only its growth.
        assert!(cap.memory_growing(20 * MIB, 24 * MIB, None).unwrap());
        assert!(cap.memory_growing(24 * MIB, 25 * MIB, None).is_err());
    }
}
