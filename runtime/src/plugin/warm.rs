//! Instances kept for reuse, for a plugin whose policy says `reuse = N`.
//!
//! By default every job gets a fresh instance, so nothing one job leaves in
//! the guest's memory reaches another. A trusted plugin can opt in to reuse
//! in the policy file: an instance then performs up to N jobs, one at a
//! time, and all but the first skip instantiation and the memory reset.
//! That is the whole of a big guest's per-job overhead (an interpreter
//! re-links thousands of functions on every instantiation), and also the
//! isolation between its jobs: a job sees globals, caches and heap that
//! the jobs before it left.
//!
//! An instance whose job trapped, timed out, went past the memory cap or
//! was cancelled is dropped, never reused: it may have stopped half-way
//! through anything. At most one idle instance per job slot is kept.

use super::host::HostState;
use crate::wit;
use std::sync::Mutex;
use wasmtime::Store;

/// One instance between jobs, with its store.
pub struct Warm {
    /// The instance's store, whose state [`HostState::begin_job`] readies
    /// for the next job.
    pub store: Store<HostState>,
    /// The instance.
    pub instance: wit::JobPlugin,
    /// The jobs it has performed.
    pub served: u32,
}

/// The idle instances of one plugin.
pub struct Pool {
    /// How many jobs one instance may perform (the policy's `reuse`).
    jobs_per_instance: u32,
    /// Instances waiting for a job, the last returned first (its pages are
    /// the likeliest to be in the CPU's caches).
    idle: Mutex<Vec<Warm>>,
}

impl Pool {
    /// A pool for instances that perform up to `jobs_per_instance` jobs.
    pub fn new(jobs_per_instance: u32) -> Pool {
        Pool { jobs_per_instance, idle: Mutex::new(Vec::new()) }
    }

    /// An idle instance, if there is one.
    pub fn take(&self) -> Option<Warm> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps an instance that has just performed a job normally, unless it
    /// has served its count. `previous` is what it had served before this
    /// job (none for a new instance).
    pub fn put_back(&self, mut store: Store<HostState>, instance: wit::JobPlugin, previous: Option<u32>) {
        let served = previous.unwrap_or(0) + 1;
        // Idle, it is no running call: the pacing of the others ignores it.
        store.data_mut().pace = None;
        if served < self.jobs_per_instance {
            let warm = Warm { store, instance, served };
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(warm);
        }
    }
}
