//! A plugin: one WebAssembly component that performs some job classes.
//!
//! [`Loader::load`] compiles a `.wasm` file (or takes its code from the
//! [`CodeCache`]), links it against what the host offers (an empty WASI and
//! the `jobrunner:plugin` imports), checks that it exports the `job-plugin`
//! world and asks it to `describe` itself.
//! [`Plugin::perform`] then runs one job in a fresh instance created from
//! the pre-linked [`InstancePre`](wasmtime::component::InstancePre), under
//! the job's time limit and memory cap; or, for a plugin whose policy opts
//! in to `reuse`, in an idle instance kept from an earlier job ([`warm`]).

mod attach;
mod blobs_host;
mod cache;
mod cap;
pub mod compile;
pub mod contract;
pub mod file;
mod host;
mod http_host;
mod info;
mod iteration_host;
mod pace;
mod records_host;
mod run;
mod stderr;
mod warm;

pub use cache::{CodeCache, CodeSource};
pub use compile::{CompileLimits, Compiler};
pub use host::{Capabilities, HostState, LogTags, MemoryExceeded};
pub use run::{CallError, Limits, Timeout};

use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::policy::{Guard, Policy};
use crate::records::Records;
use crate::wit;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::error::Context as _;

/// Builds the linker every plugin is instantiated with: WASI with nothing
/// granted, `wasi:http` under the plugin's policy, plus the
/// `jobrunner:plugin` imports.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("linking WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).context("linking wasi:http")?;
    wit::JobPlugin::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
        .context("linking the jobrunner:plugin imports")?;
    Ok(linker)
}

/// What a plugin said about itself, plus where it came from.
#[derive(Clone, Debug)]
pub struct PluginMeta {
    /// The name from `describe`.
    pub name: String,
    /// The version from `describe`.
    pub version: String,
    /// The job classes from `describe`.
    pub classes: Vec<String>,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// How long compiling (or loading from the cache) took.
    pub compile_time: Duration,
    /// Whether the code was compiled now or came from the cache.
    pub code_source: CodeSource,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// The `jobrunner:plugin` version it was built against, if it imports any of it.
    pub contract: Option<String>,
    /// `name version`, as the busy list shows it.
    pub label: Arc<str>,
    /// Whether it imports `iteration`: its jobs run as iterable jobs.
    pub iterates: bool,
}

/// A loaded plugin, ready to perform jobs.
pub struct Plugin {
    /// What it said about itself.
    pub meta: PluginMeta,
    /// The component, pre-linked and type-checked against the world.
    pre: wit::JobPluginPre<HostState>,
    /// Its mail and its policy.
    caps: Capabilities,
    /// Per-instance limits.
    limits: Limits,
    /// Idle instances, when the plugin's policy lets it reuse them.
    warm: Option<warm::Pool>,
}

/// Turns `.wasm` files into [`Plugin`]s.
pub struct Loader {
    /// Links every plugin against the host.
    pub linker: Linker<HostState>,
    /// Delivers the plugins' mail.
    pub mailer: Arc<Mailer>,
    /// What each plugin may do with its capabilities.
    pub policy: Arc<Policy>,
    /// Per-instance limits.
    pub limits: Limits,
    /// Compiled code kept across loads and restarts.
    pub cache: Arc<CodeCache>,
    /// Compiles what the cache doesn't have, within bounds.
    pub compiler: Arc<Compiler>,
    /// Where mail outcomes are counted.
    pub metrics: Arc<Metrics>,
    /// The app's database, for `records`.
    pub records: Arc<Records>,
    /// The app's stored files, for `blobs`.
    pub storage: Arc<crate::storage::Storage>,
    /// The largest plugin file read, in bytes.
    pub max_plugin_size: u64,
}

impl Loader {
    /// Compiles `bytes` (the contents of `path`, whose SHA-256 is `sha256`), checks it against the
    /// `job-plugin` world and asks it to describe itself (the engine refuses
    /// one needing more memories or tables than an instance may have). Compilation runs in a child process (see [`compile`]) and
    /// loading its code on a blocking thread, so the runtime keeps serving jobs.
    pub async fn load(&self, path: &Path, bytes: Vec<u8>, sha256: String) -> Result<Plugin> {
        let started = Instant::now();
        let (component, code_source) = self.component(&sha256, &bytes).await?;
        let compile_time = started.elapsed();
        contract::check(&component, self.linker.engine())?;
        let contract = contract::version_of(&component, self.linker.engine());
        let iterates = contract::imports(&component, self.linker.engine(), "iteration");
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .context("its imports don't match what the host offers")?;
        let pre = wit::JobPluginPre::new(instance_pre)
            .context("it doesn't export the jobrunner:plugin/job-plugin world")?;
        let file_name = path.display().to_string();
        let info = run::describe(&pre, self.capabilities(&file_name), self.limits, &file_name)
            .await
            .map_err(|err| anyhow::anyhow!("describe() failed: {err}"))?;
        info::check(&info)?;
        let meta = PluginMeta {
            label: Arc::from(format!("{} {}", info.name, info.version)),
            name: info.name,
            version: info.version,
            classes: info.classes,
            path: path.to_path_buf(),
            sha256,
            compile_time,
            code_source,
            loaded_at: SystemTime::now(),
            contract,
            iterates,
        };
        let caps = self.capabilities(&meta.name);
        let warm = self.warm_pool(&meta.name);
        Ok(Plugin { meta, pre, caps, limits: self.limits, warm })
    }

    /// The compiled component for `wasm`: from the cache, or compiled now.
    async fn component(&self, sha256: &str, wasm: &[u8]) -> Result<(Component, CodeSource)> {
        let (engine, cache, sha) = (self.linker.engine().clone(), self.cache.clone(), sha256.to_string());
        let cached = tokio::task::spawn_blocking(move || cache.lookup(&engine, &sha)).await?;
        if let Some(component) = cached {
            return Ok((component, CodeSource::Cache));
        }
        let code = self.compiler.compile(wasm).await?;
        let (engine, cache, sha) = (self.linker.engine().clone(), self.cache.clone(), sha256.to_string());
        let component = tokio::task::spawn_blocking(move || {
            // Mapped from its new cache entry, as every later load will be,
            // rather than copied into memory.
            cache.store(&sha, &code);
            if let Some(component) = cache.lookup(&engine, &sha) {
                return anyhow::Ok(component);
            }
            // SAFETY: `code` is what our own `compile-plugin` child made of
            // the file, for an engine built with the same settings; loading
            // it is what compiling in this process would have led to.
            let component = unsafe { Component::deserialize(&engine, &code) };
            anyhow::Ok(component.context("loading the compiled code")?)
        })
        .await??;
        Ok((component, CodeSource::Compiled))
    }

    /// Where plugin `name` keeps idle instances, if its policy lets it reuse them.
    fn warm_pool(&self, name: &str) -> Option<warm::Pool> {
        let reuse = self.policy.rules_for(name).reuse;
        if reuse <= 1 {
            return None;
        }
        tracing::info!(plugin = %name, reuse, "instances reused for up to {reuse} jobs each, as the policy says");
        Some(warm::Pool::new(reuse))
    }

    /// The mailer and a fresh guard with the policy for plugin `name`.
    fn capabilities(&self, name: &str) -> Capabilities {
        let rules = self.policy.rules_for(name).clone();
        let guard = Arc::new(Guard::new(rules, self.mailer.default_from()));
        Capabilities {
            mailer: self.mailer.clone(),
            guard,
            metrics: self.metrics.clone(),
            records: self.records.clone(),
            storage: self.storage.clone(),
        }
    }
}

/// `jobrunner:plugin@0.1.0`, or a note that the plugin imports nothing of ours.
pub fn contract_of(plugin: &Plugin) -> String {
    match &plugin.meta.contract {
        Some(version) => format!("{}@{version}", contract::PACKAGE),
        None => format!("{} (imports none of it)", contract::PACKAGE),
    }
}

impl Plugin {
    /// Performs `job` in a fresh instance.
    pub async fn perform(&self, job: &wit::Job) -> Result<Result<(), wit::JobError>, CallError> {
        let report = Arc::new(crate::outbound::Report::default());
        self.perform_unless_cancelled(job, 0, (CancellationToken::new(), report), None).await
    }

    /// Performs `job`, taken from Redis shard `shard`, in a fresh
    /// instance, stopping it when `cancel` fires; as a run of an iterable
    /// job when `iteration` is given. What its requests asked of its retry
    /// (`Retry-After`) goes into `report`.
    pub async fn perform_unless_cancelled(
        &self,
        job: &wit::Job,
        shard: usize,
        (cancel, report): (CancellationToken, Arc<crate::outbound::Report>),
        iteration: Option<Arc<crate::iteration::Iteration>>,
    ) -> Result<Result<(), wit::JobError>, CallError> {
        let tags = LogTags {
            plugin: Arc::from(self.meta.name.as_str()),
            class: job.class.clone(),
            jid: job.jid.clone(),
            shard,
        };
        let control = (cancel, iteration, self.warm.as_ref());
        run::perform(&self.pre, (self.caps.clone(), self.limits), tags, job, control, report).await
    }
}
