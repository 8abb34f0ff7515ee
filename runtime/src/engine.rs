//! The WebAssembly engine every plugin is compiled for and runs in.
//!
//! One [`wasmtime::Engine`] per process, configured for what a job runner
//! needs: the component model, a pooling allocator sized for the configured
//! concurrency (instantiating a job's fresh instance is then a few
//! microseconds of slot reuse instead of mmap calls), and epoch interruption,
//! driven by a ticker thread, so a guest that never returns can be stopped.

use anyhow::Result;
use std::time::Duration;
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running guest yields to the async runtime
/// and has its deadline checked once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Bytes of each memory and table slot kept resident between instances.
const KEEP_RESIDENT: usize = 2 << 20;

/// Address space reserved per linear memory: all a 32-bit memory can reach.
const MEMORY_RESERVATION: u64 = 1 << 32;

/// The most table elements an instance may grow a table to; the pooling
/// allocator reserves this many per table slot, and the memory cap
/// (`plugin::cap`) refuses growth beyond it.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The most linear memories one component may hold.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
/// The most tables one component may hold.
pub const MAX_TABLES_PER_COMPONENT: u32 = 16;

/// The compiler that turns plugins into machine code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CodeGen {
    /// Cranelift, the optimizing compiler: the fastest code, the slowest
    /// compile (an embedded interpreter takes 6 to 8 s on 2 cores).
    #[default]
    Cranelift,
    /// Winch, the baseline compiler: compiles about 4 times faster, and
    /// the code it makes is slower.
    Winch,
}

impl CodeGen {
    /// The name `--compiler` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeGen::Cranelift => "cranelift",
            CodeGen::Winch => "winch",
        }
    }
}

/// What the engine is sized for.
#[derive(Clone, Copy, Debug)]
pub struct EngineLimits {
    /// Jobs that may run at once.
    pub concurrency: usize,
    /// The most linear memory one job's instance may use, in bytes.
    pub memory_bytes: usize,
    /// Instances kept idle for reuse (see `plugin::warm`): each holds its
    /// slot between jobs, so the pool has this many more.
    pub warm_instances: usize,
    /// The compiler plugins are compiled with; code made by one doesn't
    /// load into an engine set up for the other.
    pub codegen: CodeGen,
}

/// Builds the engine and starts the thread that advances its epoch.
pub fn build(limits: EngineLimits) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.strategy(match limits.codegen {
        CodeGen::Cranelift => wasmtime::Strategy::Cranelift,
        CodeGen::Winch => wasmtime::Strategy::Winch,
    });
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(limits)));
    // Each memory gets the whole 32-bit space (plus the guard after it),
    // so the compiled code checks no bounds on its loads and stores: an
    // access past the end lands in pages that trap. Only address space is
    // reserved; `max_memory_size` still caps what a job may use. An
    // interpreter's guest runs about 15% faster for it (JavaScript).
    config.memory_reservation(MEMORY_RESERVATION.max(limits.memory_bytes as u64));
    config.memory_reservation_for_growth(0);
    // `scripts/profile` asks for a perf map (/tmp/perf-PID.map), so the
    // samples in compiled guest code are named by function.
    if std::env::var_os("JOBRUNNER_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).context("configuring the WebAssembly engine")?;
    spawn_epoch_ticker(&engine);
    Ok(engine)
}

fn pooling(limits: EngineLimits) -> PoolingAllocationConfig {
    // Jobs, plus room for plugins being loaded and described meanwhile,
    // plus instances kept for reuse.
    let instances = (limits.concurrency + 8 + limits.warm_instances) as u32;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances);
    // A Rust component is its own module plus a handful of adapter shims.
    pool.total_core_instances(instances * 16);
    pool.total_memories(instances * MAX_MEMORIES_PER_COMPONENT);
    pool.total_tables(instances * MAX_TABLES_PER_COMPONENT);
    pool.total_stacks(instances);
    // A component may not take more than its share of the slots, so one
    // with dozens of memories is refused instead of starving the others.
    pool.max_memories_per_component(MAX_MEMORIES_PER_COMPONENT);
    pool.max_tables_per_component(MAX_TABLES_PER_COMPONENT);
    pool.table_elements(MAX_TABLE_ELEMENTS);
    pool.max_memory_size(limits.memory_bytes);
    // Reset the pages a job touched by hand rather than handing them back
    // to the kernel: faulting them in again for the next job, and the TLB
    // shootdowns of giving them back, cost more than clearing them. Where
    // the kernel can say which pages were touched (PAGEMAP_SCAN, Linux 6.7)
    // only those are cleared; what is given back is given back in batches.
    pool.linear_memory_keep_resident(KEEP_RESIDENT);
    pool.table_keep_resident(KEEP_RESIDENT);
    pool.async_stack_keep_resident(KEEP_RESIDENT);
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.decommit_batch_size(limits.concurrency.max(1));
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the
/// process lives. A plain thread, so a busy async runtime can't delay it.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
