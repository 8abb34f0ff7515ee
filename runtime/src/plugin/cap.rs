//! The memory cap of one instance: all its linear memories together, not
//! each one. A component may hold several memories (one per core module);
//! capping each would let one with 36 memories use 36 times the cap. The
//! engine also refuses components with more memories or tables than
//! [`crate::engine`] allows, so none can empty the shared pool.

use std::fmt;
use wasmtime::ResourceLimiter;

use crate::engine::MAX_TABLE_ELEMENTS;

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
