//! The command line: `runner [options]` runs jobs; `runner enqueue` pushes one.

use crate::author::Lang;
use crate::engine::CodeGen;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Runs Sidekiq jobs from Redis as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "runner", version, about, long_about = None, args_conflicts_with_subcommands = true, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How log lines are written to stderr: human-readable, or one JSON
    /// object per line with every field (for log shippers).
    #[arg(long, global = true, value_enum, env = "JOBRUNNER_LOG_FORMAT", default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The `--log-format` choices.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pushes a job onto a queue (or into the schedule with --in / --at), as
    /// Sidekiq's client would, and prints its jid.
    Enqueue(EnqueueArgs),
    /// Cancels a job by jid: taken out of its queue, the schedule or the
    /// retry set, or stopped where it runs (within milliseconds); never
    /// run, retried or sent to the dead set. Prints where it was.
    Cancel {
        /// The job's jid.
        jid: String,
        #[command(flatten)]
        redis: RedisArgs,
    },
    /// Loads a plugin as the runner would and prints what it declares (name,
    /// version, classes, contract version) or exactly why it is refused.
    Check {
        /// The component, e.g. plugins/order_created.wasm.
        file: PathBuf,
        #[command(flatten)]
        compile: CompileArgs,
    },
    /// Performs one job with a plugin, without Redis or a mail server, and
    /// prints the mail it would send. Exits 0 when the job is done, 1 when it
    /// would be retried, 2 when it failed for good, 3 when the plugin or the
    /// command is unusable.
    Try(TryArgs),
    /// Times a job in fresh instances of a plugin against a native handler
    /// (for the benchmark).
    #[command(hide = true)]
    MeasureSandbox {
        file: PathBuf,
        #[arg(long, default_value = "NoopJob")]
        class: String,
        /// The job's arguments, as JSON.
        #[arg(long, default_value = "[]")]
        args: String,
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
        /// A policy file, e.g. one with `reuse` for the plugin.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// A code cache folder: the first load and a cached one are timed.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// The compiler.
        #[arg(long, value_enum, default_value_t = CodeGen::Cranelift)]
        compiler: CodeGen,
    },
    /// Compiles a component read on stdin for an engine with these
    /// settings and writes the code on stdout (the runner's own child).
    #[command(hide = true)]
    CompilePlugin {
        #[arg(long)]
        concurrency: usize,
        #[arg(long)]
        memory_bytes: usize,
        #[arg(long, value_enum)]
        compiler: CodeGen,
    },
    /// Creates a new plugin, <DIR>/<NAME>, in Rust, JavaScript or Python, that builds as is.
    NewPlugin {
        /// The plugin's name, e.g. hello_mail (it handles HelloMailJob).
        name: String,
        /// Where to create it.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// The language to write it in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The plugin SDK crate, for a Rust plugin. [default: <DIR>/sdk]
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct TryArgs {
    /// The component, e.g. plugins/order_created.wasm.
    pub file: PathBuf,
    /// The job class to perform.
    #[arg(long)]
    pub class: String,
    /// The job's arguments as a JSON array.
    #[arg(long, default_value = "[]")]
    pub args: String,
    /// The sender of mail whose plugin names none.
    #[arg(long, default_value = "jobrunner <jobrunner@localhost>")]
    pub mail_from: String,
    /// A policy file, as for the runner.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The app's database, for plugins that read records, as for the runner.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Wall-clock time the job may run, in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Linear memory the job may use, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory: u32,
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// The bounds on compiling one plugin; shared by every command that loads one.
#[derive(Args, Debug, Clone)]
pub struct CompileArgs {
    /// Seconds compiling one plugin may take; a plugin that takes longer is refused.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = duration)]
    pub compile_timeout: Duration,
    /// Memory compiling one plugin may use, in MiB; a plugin that needs more is refused.
    #[arg(long, default_value_t = 1024, value_name = "MIB", value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub compile_memory: u32,
    /// The compiler: cranelift (the fastest code) or winch (compiles about 4
    /// times faster, slower code; for big guests such as interpreters that
    /// must load fast).
    #[arg(long, value_enum, default_value_t = CodeGen::Cranelift)]
    pub compiler: CodeGen,
}

impl CompileArgs {
    /// The bounds as the compiler takes them.
    pub fn limits(&self) -> crate::plugin::CompileLimits {
        crate::plugin::CompileLimits {
            budget: self.compile_timeout,
            memory_bytes: u64::from(self.compile_memory) * 1024 * 1024,
            codegen: self.compiler,
        }
    }
}

/// Where Redis is; shared by every command.
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// Redis URL: redis://[user:password@]host:port/db, or rediss://... for
    /// TLS (rediss://...#insecure skips the certificate check). Give it
    /// once per shard to serve several Redis servers, as Sidekiq's
    /// `Sidekiq::Client.via` shards jobs over them.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", hide_env_values = true)]
    pub redis: Vec<String>,
    /// A PEM CA certificate to check a rediss:// server against, instead of
    /// the system's roots.
    #[arg(long, env = "REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,
    /// A PEM client certificate for a rediss:// server that asks for one.
    #[arg(long, env = "REDIS_CERT", value_name = "FILE", requires = "redis_key")]
    pub redis_cert: Option<PathBuf>,
    /// The PEM key of --redis-cert.
    #[arg(long, env = "REDIS_KEY", value_name = "FILE", requires = "redis_cert")]
    pub redis_key: Option<PathBuf>,
}

impl RedisArgs {
    /// Where each Redis shard is and how to trust it.
    pub fn endpoints(&self) -> Vec<crate::queue::Endpoint> {
        self.redis
            .iter()
            .map(|url| crate::queue::Endpoint {
                url: url.clone(),
                ca_file: self.redis_ca.clone(),
                cert_file: self.redis_cert.clone(),
                key_file: self.redis_key.clone(),
            })
            .collect()
    }

    /// The shard a job for `queue` goes to: `shard` when given (it must
    /// exist), else one picked by a hash of the queue's name, so all of a
    /// queue's jobs share a shard.
    pub fn endpoint_for(&self, queue: &str, shard: Option<usize>) -> anyhow::Result<crate::queue::Endpoint> {
        let mut endpoints = self.endpoints();
        let count = endpoints.len();
        let index = match shard {
            Some(index) if index < count => index,
            Some(index) => anyhow::bail!("--shard {index}: there are {count} shards (0 to {})", count - 1),
            None => crate::queue::keys::shard_of(queue, count),
        };
        Ok(endpoints.swap_remove(index))
    }
}

#[derive(Args, Debug)]
pub struct EnqueueArgs {
    /// The job class, e.g. OrderCreateJob.
    pub class: String,
    /// The job's arguments as a JSON array, e.g. '[42, "buyer@example.com"]'.
    pub args: String,
    /// The queue to push to.
    #[arg(short, long, default_value = "default")]
    pub queue: String,
    /// Run the job after this delay instead of now, e.g. 90s, 5m, 2h 30m, 1day.
    #[arg(long = "in", value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run the job at this time instead of now: RFC 3339 (2026-11-25T18:00:00Z)
    /// or epoch seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<f64>,
    /// Discard the job unrun if it hasn't started this long after it is
    /// due, e.g. 1h (Sidekiq Pro's expires_in).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub expires_in: Option<Duration>,
    /// Push nothing (exit status 2) while a job of the same class, queue
    /// and arguments is queued, scheduled, retrying or running; the job
    /// carries the same rule for other pushes, for at most this long, e.g.
    /// 10m (Sidekiq Enterprise's unique_for).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub unique_for: Option<Duration>,
    /// The Redis shard to push to, by its place among the --redis URLs
    /// (from 0); without it, the queue's name picks the shard.
    #[arg(long, value_name = "N")]
    pub shard: Option<usize>,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// An instant as epoch seconds, from RFC 3339 or a number of epoch seconds.
fn parse_time(text: &str) -> Result<f64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(secs);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{e}; expected RFC 3339 like 2026-11-25T18:00:00Z, or epoch seconds"))?;
    let since =
        time.duration_since(std::time::UNIX_EPOCH).map_err(|_| "the time is before 1970".to_string())?;
    Ok(since.as_secs_f64())
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Sidekiq's config file (concurrency, queues, timeout, the
    /// environment's section, and runner settings under `jobrunner:`);
    /// flags win over it. [default: config/sidekiq.yml when it exists]
    #[arg(short = 'C', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The environment whose section of the config file applies.
    /// [default: $APP_ENV, $RAILS_ENV, $RACK_ENV or development]
    #[arg(short = 'e', long, value_name = "ENV")]
    pub environment: Option<String>,
    /// Directory of plugin components (*.wasm); every file is loaded at start.
    #[arg(long, default_value = "plugins")]
    pub plugins: PathBuf,
    /// Watch the plugins directory and load, replace or unregister plugins as
    /// their files change. On by default; `--watch false` loads them once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub watch: bool,
    /// Directory that keeps compiled plugins, so a restart or a re-dropped
    /// file skips compilation. [default: $XDG_CACHE_HOME/jobrunner or ~/.cache/jobrunner]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Don't keep compiled plugins on disk.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// A queue to serve, as NAME or NAME,WEIGHT; repeat for several. Without
    /// weights queues are served in the order given; with weights a queue is
    /// tried first in proportion to its weight. [default: default, mailers]
    #[arg(short = 'q', long = "queue", value_name = "NAME[,WEIGHT]")]
    pub queues: Vec<String>,
    /// The most jobs run at once.
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// The most jobs fetched beyond the free slots while the queues hold a
    /// backlog, so one round trip brings many jobs; fewer when jobs are
    /// slower (no more than the slots run in 2 ms). 0 fetches for free
    /// slots only.
    #[arg(long, default_value_t = 100, value_name = "JOBS", value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub fetch_ahead: u16,
    /// Wall-clock time one job may run, in seconds (or 90s, 5m, ...); a
    /// longer job fails with "timed out".
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = duration)]
    pub timeout: Duration,
    /// How long one run of an iterable job (a plugin that imports
    /// `iteration`) goes on before it is told to stop at its next
    /// checkpoint and goes back to its queue to resume, in seconds (or 5m,
    /// ...). Must be shorter than --timeout; by default three quarters of it.
    #[arg(long, value_name = "SECONDS", value_parser = duration)]
    pub slice: Option<Duration>,
    /// Linear memory one job may use, in MiB; more fails the job with "memory limit exceeded".
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory: u32,
    /// SMTP server for send-mail: smtp://user:pass@host:port (STARTTLS when
    /// offered; ?tls=required to insist) or smtps://... (implicit TLS).
    /// Without it, mail is written to --outbox.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp: Option<String>,
    /// A PEM file of the CA certificates that --smtp's server certificate is
    /// checked against, instead of Mozilla's roots (for TLS and STARTTLS).
    #[arg(long, env = "SMTP_CA", value_name = "FILE")]
    pub smtp_ca: Option<PathBuf>,
    /// The app's database, which plugins read through `records` (read-only):
    /// sqlite://PATH, postgres://user:pass@host/db or mysql://user:pass@host/db.
    /// Without it, record reads fail and their jobs are retried.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The app's config/storage.yml, whose services plugins reach through
    /// `blobs` (Disk services are served).
    #[arg(long, env = "STORAGE_CONFIG", value_name = "FILE")]
    pub storage_config: Option<PathBuf>,
    /// The storage service a plugin gets when it names none: the app's
    /// `config.active_storage.service` (e.g. local).
    #[arg(long, env = "STORAGE_SERVICE", value_name = "NAME")]
    pub storage_service: Option<String>,
    /// Redis replicas that must hold a mail's entry in the sent-mail ledger
    /// before the mail is sent and after the server accepted it (Redis
    /// WAIT), so that a Sentinel failover can't lose the entry and send the
    /// mail again. While fewer replicas answer, mail waits (its job is
    /// retried). 0 doesn't wait; behind Sentinel, 1.
    #[arg(long, default_value_t = 0, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(0..=16))]
    pub mail_replicas: u32,
    /// Directory that receives one .eml file per message when no --smtp is set.
    #[arg(long, default_value = "outbox")]
    pub outbox: PathBuf,
    /// A TOML file of limits on what plugins may do with send-mail and log
    /// (senders, recipient domains, sizes, rates), by default and per
    /// plugin. Without it, safe defaults apply (see docs/security.md).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The sender of mail whose plugin names none.
    #[arg(long, default_value = "jobrunner <jobrunner@localhost>")]
    pub mail_from: String,
    /// Seconds between heartbeats (and between checks for dead runners).
    #[arg(long, default_value = "2", value_name = "SECONDS", value_parser = duration)]
    pub heartbeat: Duration,
    /// Seconds without a heartbeat after which a runner counts as dead and
    /// its in-progress jobs are put back in their queues by a live runner.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = duration)]
    pub process_timeout: Duration,
    /// Seconds within which a due scheduled job or retry is moved to its
    /// queue: the runners take turns checking the schedule and retry sets,
    /// at least once per interval across all of them.
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = duration)]
    pub poll_interval: Duration,
    /// Seconds running jobs get to finish after SIGTERM or SIGINT before
    /// they are put back in their queues (0: at once).
    #[arg(short = 't', long, default_value = "25", value_name = "SECONDS", value_parser = duration_or_zero)]
    pub shutdown_timeout: Duration,
    /// The largest job payload accepted, in bytes; a larger one goes to the
    /// dead set unread.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_payload: usize,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// The largest plugin file loaded, in MiB; a larger one is refused unread.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_plugin_size: u32,
    /// The most jobs kept in the dead set; the oldest are dropped first.
    #[arg(long, default_value_t = 10_000, value_name = "JOBS")]
    pub dead_max_jobs: u32,
    /// Days a job is kept in the dead set.
    #[arg(long, default_value = "180", value_name = "DAYS", value_parser = days)]
    pub dead_timeout: Duration,
    /// Periodic jobs, as JSON: name → {cron or every, class, queue, args,
    /// description, enabled}, as sidekiq-scheduler's `:schedule:` in the
    /// config file (where they are usually declared).
    #[arg(long, value_name = "JSON")]
    pub periodic: Option<String>,
    /// Where the web dashboard and /metrics listen. An address other than
    /// loopback needs --http-auth or --http-token.
    #[arg(long, env = "JOBRUNNER_HTTP", default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub http: std::net::SocketAddr,
    /// Don't serve the dashboard and /metrics.
    #[arg(long)]
    pub no_http: bool,
    /// USER:PASSWORD that the dashboard asks for (HTTP basic auth).
    #[arg(long, env = "JOBRUNNER_HTTP_AUTH", value_name = "USER:PASSWORD", hide_env_values = true)]
    pub http_auth: Option<String>,
    /// A bearer token the dashboard and /metrics accept
    /// (`Authorization: Bearer TOKEN`), for scrapers and scripts.
    #[arg(long, env = "JOBRUNNER_HTTP_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub http_token: Option<String>,
}

impl RunArgs {
    /// The code cache directory, unless caching is off.
    pub fn code_cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("jobrunner"))
    }
}

/// The longest duration a flag accepts: ten years, far beyond any use,
/// and far from where time arithmetic would overflow.
const MAX_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// A duration flag's value: a positive number of seconds, at most ten years.
pub fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
        anyhow::bail!(
            "{flag} must be a positive number of seconds up to {MAX_SECONDS} (ten years), not {value}"
        );
    }
    Ok(Duration::from_secs_f64(value))
}

/// A duration flag as clap reads it: seconds (2.5) or with units (90s,
/// 5m, 1h 30m); positive and at most ten years.
fn duration(text: &str) -> Result<Duration, String> {
    let value = match text.trim().parse::<f64>() {
        Ok(seconds) => seconds,
        Err(_) => humantime::parse_duration(text.trim())
            .map_err(|e| format!("{e}; expected seconds (2.5) or a duration (90s, 5m)"))?
            .as_secs_f64(),
    };
    if !(value.is_finite() && value > 0.0 && value <= MAX_SECONDS) {
        return Err("expected a positive number of seconds, up to ten years".to_string());
    }
    Ok(Duration::from_secs_f64(value))
}

/// Like [`duration`], but zero is allowed.
fn duration_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => duration(text),
    }
}

/// A number of days, positive and at most ten years.
fn days(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(days) if days.is_finite() && days > 0.0 && days * 86_400.0 <= MAX_SECONDS => {
            Ok(Duration::from_secs_f64(days * 86_400.0))
        }
        _ => Err("expected a positive number of days, up to ten years".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_carry_units() {
        assert_eq!(duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["0", "-1", "NaN", "inf", "soon", "11years"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(days("1"), Ok(Duration::from_secs(86_400)));
        assert!(days("0").is_err() && days("5000").is_err());
    }
}
