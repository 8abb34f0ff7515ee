//! The `runner` binary: everything it does is in [`jobrunner::app`].

use std::process::ExitCode;

/// mimalloc instead of the system allocator: every job allocates and frees
/// its payload, its acknowledgement and its sandbox's bookkeeping across
/// threads, and glibc's malloc spent about a sixth of a no-op job's CPU on
/// that (consolidating, unlinking chunks, arena locks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    jobrunner::app::main().await
}
