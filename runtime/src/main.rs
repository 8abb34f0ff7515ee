//! The `runner` binary: parses the command line and hands over to the library.

use anyhow::Result;
use clap::Parser;
use jobrunner::cli::{Cli, Command};
use jobrunner::{client, queue::Queue, runner};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Enqueue(args)) => {
            let queue = Queue::connect(&args.redis.redis).await?;
            let at = args.at.or_else(|| args.delay.map(|d| jobrunner::clock::now() + d.as_secs_f64()));
            let jid = client::enqueue(&queue, &args.class, &args.args, &args.queue, at).await?;
            // The jid is the command's output, for scripts to capture.
            println!("{jid}");
            Ok(())
        }
        None => runner::run(cli.run).await,
    }
}
