//! jobrunner: runs Sidekiq jobs from Redis as sandboxed WebAssembly
//! components.
//!
//! Where a job goes, following the modules:
//!
//! - [`app`]: the `runner` command, from its arguments to its exit code.
//! - [`cli`]: the command line and its defaults.
//! - [`config`]: Sidekiq's `config/sidekiq.yml`, applied as flags.
//! - [`runner`]: wires everything together, once per Redis shard; the main
//!   loop and shutdown.
//! - [`feed`]: fetches ahead of the worker slots, within a bound.
//! - [`fetch`]: picks the queue (strict or weighted) and takes the next jobs.
//! - [`queue`]: Sidekiq's Redis layout and the Lua scripts behind reliable
//!   fetch, outcomes and recovery.
//! - [`job`]: Sidekiq's job JSON.
//! - [`activejob`]: ActiveJob unwrapped; `deliver_later` mails routed by
//!   `Mailer#action`.
//! - [`worker`]: performs one job and records how it ended.
//! - [`expiry`]: jobs that must start before a deadline, or not at all.
//! - [`unique`]: jobs whose duplicates are dropped while they are pending.
//! - [`cancel`]: cancelled jobs, stopped where they run or never started.
//! - [`iteration`]: long jobs run in slices, resuming from their cursor.
//! - [`retry`]: Sidekiq's retry policy and backoff.
//! - [`registry`]: which plugin serves which class; swapped atomically.
//! - [`plugin`]: compiling, linking and running one component under limits.
//! - [`wit`]: the contract's types, shared by the host and its plugins.
//! - [`policy`]: what each plugin may do with `send-mail`, `log`, `records`,
//!   `blobs`, outgoing HTTP and `signing`.
//! - [`records`]: the app's database rows, read-only, for plugins.
//! - [`storage`]: Active Storage's services (`storage.yml`) and blob files.
//! - [`engine`]: the wasmtime engine, pooling allocator and epoch ticker.
//! - [`mail`]: `send-mail`, over SMTP or into an outbox directory, sent
//!   once per job even when the job runs again.
//! - [`outbound`]: plugins' outgoing HTTP (`wasi:http`), where their policy
//!   grants it: allow-listed, never to a private address unless named.
//! - [`heartbeat`]: the process record, the Web UI's commands, and recovery
//!   of dead runners.
//! - [`busy`]: the jobs running now, as the heartbeat reports them.
//! - [`scheduler`]: moves due scheduled jobs and retries back to queues,
//!   the runners taking turns.
//! - [`periodic`]: cron jobs from the config file, each tick enqueued once.
//! - [`client`]: pushing jobs (`runner enqueue`).
//! - [`author`]: `runner check`, `runner try` and `runner new-plugin`.
//! - [`web`]: the dashboard, its JSON API and `/metrics`.
//! - [`metrics`]: this process's counters and histograms.
//! - [`faults`]: hooks a test build uses to inject panics; unset in `runner`.
//! - [`shutdown`]: quiet and graceful shutdown on signals.
//! - [`supervise`]: background loops restarted when they panic, never lost.
//! - [`logs`]: log lines to stderr in batches, warnings and errors at once.
//! - [`allocator`]: mimalloc, or the system's malloc where memory is capped.
//! - [`backoff`], [`clock`], [`digest`], [`secret`], [`untrusted`]: small shared pieces.

pub mod activejob;
pub mod allocator;
pub mod app;
pub mod author;
pub mod backoff;
pub mod busy;
pub mod cancel;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod digest;
pub mod engine;
pub mod expiry;
pub mod faults;
pub mod feed;
pub mod fetch;
pub mod heartbeat;
pub mod iteration;
pub mod job;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod outbound;
pub mod periodic;
pub mod plugin;
pub mod policy;
pub mod queue;
pub mod records;
pub mod registry;
pub mod retry;
pub mod runner;
pub mod scheduler;
pub mod secret;
pub mod shutdown;
pub mod storage;
pub mod supervise;
pub mod unique;
pub mod untrusted;
pub mod web;
pub mod wit;
pub mod worker;
