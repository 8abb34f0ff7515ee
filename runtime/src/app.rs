//! The `runner` command: parses the command line and hands over to the
//! module for each subcommand. The binary's `main` is only this module's
//! [`main`], so a test build can wrap the same program with a fault hook.

use crate::cli::{self, Cli, Command, LogFormat, TryArgs};
use crate::plugin::Limits;
use crate::{author, client, queue::Queue, runner};
use anyhow::Result;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The whole `runner` command, from its arguments to its exit code, its
/// last log lines written.
pub async fn main() -> ExitCode {
    let code = command().await;
    crate::logs::flush();
    code
}

async fn command() -> ExitCode {
    let (cli, config_file) = match crate::config::apply(std::env::args_os().collect()) {
        Ok(applied) => (applied.cli, applied.file),
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::CompilePlugin { concurrency, memory_bytes, compiler }) = cli.command {
        let engine =
            crate::engine::EngineLimits { concurrency, memory_bytes, warm_instances: 0, codegen: compiler };
        return match crate::plugin::compile::compile_stdin(engine) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{err:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(cli.log_format);
    if let Some((file, ignored)) = config_file {
        tracing::info!(file = %file.display(), "settings read from the config file");
        if !ignored.is_empty() {
            tracing::info!(file = %file.display(), settings = ?ignored, "Sidekiq settings the runner has no use for; ignored");
        }
    }
    match cli.command {
        Some(Command::Check { file, compile }) => return author::check(&file, compile.limits()).await,
        Some(Command::Try(args)) => return try_job(args).await,
        _ => {}
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<client::Duplicate>().is_some() => {
            eprintln!("{err}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default `info`), as text or JSON lines,
/// in batches (see [`crate::logs`]).
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt::layer().with_writer(crate::logs::stderr());
    let logs = match format {
        LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).boxed(),
    };
    tracing_subscriber::registry().with(log_filter()).with(logs).init();
}

/// `RUST_LOG`'s directives, `info` when unset. Directives by target and
/// level only (`info,jobrunner::mail=debug`, the usual case) make a
/// [`Targets`] filter, decided once per call site; only directives that
/// name spans or fields need an [`EnvFilter`], which looks every span up
/// in a shared map each time it is entered or left: with a span per job,
/// that and its locks cost about a twentieth of a no-op job's CPU.
fn log_filter() -> Box<dyn Layer<Registry> + Send + Sync> {
    let directives = std::env::var("RUST_LOG").ok().filter(|d| !d.trim().is_empty());
    let directives = directives.as_deref().unwrap_or("info");
    match targets(directives) {
        Some(targets) => targets.boxed(),
        None => EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info")).boxed(),
    }
}

/// `directives` as a [`Targets`] filter, unless they name a span (`[job]`)
/// or a field (`{jid=...}`), which `Targets` would take for a target.
fn targets(directives: &str) -> Option<Targets> {
    if directives.contains(['[', '{']) {
        return None;
    }
    directives.parse().ok()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn try_job(args: TryArgs) -> ExitCode {
    let timeout = match cli::seconds(args.timeout, "--timeout") {
        Ok(timeout) => timeout,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(author::exit::UNUSABLE);
        }
    };
    let limits = Limits { timeout, memory_bytes: args.memory as usize * 1024 * 1024 };
    author::try_job(author::Trial {
        file: &args.file,
        class: &args.class,
        args: &args.args,
        mail_from: &args.mail_from,
        policy: args.policy.as_deref(),
        database: args.database.as_deref(),
        limits,
        compile: args.compile.limits(),
    })
    .await
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Enqueue(args)) => {
            let queue = Queue::connect(&args.redis.endpoint_for(&args.queue, args.shard)?).await?;
            let at = args.at.or_else(|| args.delay.map(|d| crate::clock::now() + d.as_secs_f64()));
            let timing = client::Timing { at, expires_in: args.expires_in, unique_for: args.unique_for };
            let jid = client::enqueue(&queue, &args.class, &args.args, &args.queue, timing).await?;
            // The jid is the command's output, for scripts to capture.
            println!("{jid}");
            Ok(())
        }
        Some(Command::Cancel { jid, redis }) => {
            // The jid may be on any shard: cancelled on every one.
            let mut anywhere = false;
            for endpoint in redis.endpoints() {
                let queue = Queue::connect(&endpoint).await?;
                let found = queue.cancel(&jid).await?;
                for place in &found.removed_from {
                    println!("{jid}: taken out of {place}");
                }
                for identity in &found.running_on {
                    println!("{jid}: running on {identity}, which stops it");
                }
                anywhere |= !found.removed_from.is_empty() || !found.running_on.is_empty();
            }
            if !anywhere {
                println!("{jid}: not found waiting or running; should it start within a day, it won't run");
            }
            Ok(())
        }
        Some(Command::NewPlugin { name, dir, lang, sdk }) => {
            let sdk = sdk.unwrap_or_else(|| dir.join("sdk"));
            let root = author::new_plugin(&name, &dir, lang, &sdk)?;
            println!("created {}", root.display());
            println!("build it:  (cd {} && {})", root.display(), author::build_command(lang, &name));
            Ok(())
        }
        Some(Command::MeasureSandbox { file, class, args, iterations, policy, cache_dir, compiler }) => {
            let measure = author::Measure {
                file: &file,
                job: (&class, &args),
                iterations,
                policy: policy.as_deref(),
                cache_dir: cache_dir.as_deref(),
                codegen: compiler,
            };
            let measured = author::sandbox_overhead(measure).await?;
            if let Some((first, cached)) = measured.loads {
                println!("loads first_ms={} cached_ms={}", first.as_millis(), cached.as_millis());
            }
            for (what, t) in [("sandbox", measured.sandboxed), ("native", measured.native)] {
                println!("{what} p50_us={:.1} p99_us={:.1}", micros(t.p50), micros(t.p99));
            }
            Ok(())
        }
        Some(Command::Check { .. } | Command::Try(_) | Command::CompilePlugin { .. }) => {
            unreachable!("handled before")
        }
        None => runner::run(cli.run).await,
    }
}

#[cfg(test)]
mod tests {
    use super::targets;

    /// The cheap filter takes the usual `RUST_LOG`s; those naming spans or
    /// fields are left to `EnvFilter`.
    #[test]
    fn targets_take_level_and_target_directives_only() {
        for usual in ["info", "trace", "warn,jobrunner::mail=debug", "jobrunner=debug,hyper=off"] {
            assert!(targets(usual).is_some(), "{usual}");
        }
        for spans in ["[job]=debug", "jobrunner[job{jid=abc}]=trace"] {
            assert!(targets(spans).is_none(), "{spans}");
        }
    }
}
