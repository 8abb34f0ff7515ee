//! The `runner` binary: everything it does is in [`jobrunner::app`].

use std::process::ExitCode;

/// mimalloc, except in the child that compiles a plugin: see
/// [`jobrunner::allocator`].
#[global_allocator]
static ALLOCATOR: jobrunner::allocator::Allocator = jobrunner::allocator::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    jobrunner::app::main().await
}
