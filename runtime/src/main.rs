//! The `runner` binary: everything it does is in [`jobrunner::app`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    jobrunner::app::main().await
}
