//! What the host gives one plugin instance: its store data.
//!
//! A [`HostState`] lives exactly as long as one instance: one job, one
//! `describe` call, or the jobs of an instance a plugin's policy lets it
//! reuse (see [`super::warm`]), each begun with [`HostState::begin_job`].
//! It holds an empty WASI context (no files, no environment, no sockets:
//! Rust's standard library imports WASI, so it must be present),
//! the memory cap, the [`Capabilities`] behind `send-mail` and `log` with the
//! plugin's policy, and the names that tag the plugin's log lines. A policy
//! violation is remembered, so the job fails permanently whatever the
//! plugin makes of the error.

pub use super::cap::{MemoryCap, MemoryExceeded};
use super::http_host::Hooks;
use super::pace::Pace;
use super::stderr::TailPipe;
use crate::mail::{Attachment, Delivery, Mailer, Progress, SendError, Stage};
use crate::metrics::Metrics;
use crate::outbound::Report;
use crate::policy::Guard;
use crate::records::Records;
use crate::storage::Storage;
use crate::wit::jobrunner::plugin::{logging, mail, types};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpHooks};

/// How much of a guest's stderr is kept to explain a trap (a Rust panic
/// prints its message there before trapping).
const STDERR_CAPACITY: usize = 8 * 1024;

/// The longest log message a guest can write; longer ones are cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// Names that tag everything an instance logs.
#[derive(Clone, Debug, Default)]
pub struct LogTags {
    /// The plugin's name (or its file while it is being loaded).
    pub plugin: Arc<str>,
    /// The job class being performed; empty during `describe`.
    pub class: String,
    /// The job's id; empty during `describe`.
    pub jid: String,
    /// The Redis shard the job came from, where its sent mail is noted.
    pub shard: usize,
}

/// What the host hands a plugin's instances.
#[derive(Clone)]
pub struct Capabilities {
    /// Delivers what the guest passes to `send-mail`.
    pub mailer: Arc<Mailer>,
    /// The plugin's policy, with the rate buckets its instances share.
    pub guard: Arc<Guard>,
    /// Counts mail sent and failed.
    pub metrics: Arc<Metrics>,
    /// The app's database, read-only.
    pub records: Arc<Records>,
    /// The app's stored files, for `blobs`.
    pub storage: Arc<Storage>,
}

/// The store data of one plugin instance.
pub struct HostState {
    /// WASI with nothing granted.
    wasi: WasiCtx,
    /// WASI's resource handles.
    table: ResourceTable,
    /// `wasi:http`'s context.
    http: WasiHttpCtx,
    /// The job's outgoing requests, under the plugin's policy.
    hooks: Hooks,
    /// The guest's stderr, kept to explain traps.
    stderr: TailPipe,
    /// Enforces the memory cap.
    pub(super) limiter: MemoryCap,
    /// `send-mail`, `records` and the policy.
    pub(super) caps: Capabilities,
    /// Tags for the guest's log lines.
    pub(super) tags: LogTags,
    /// Until when a missing record may be one whose transaction hasn't
    /// committed yet; `None` when that can't be.
    pub(super) commit_race_until: Option<Instant>,
    /// The first record the guest looked for and didn't find, as Rails
    /// would say it.
    pub(super) missing_record: Option<String>,
    /// The first policy rule the guest broke, if any.
    pub(super) violation: Option<String>,
    /// Log lines dropped by the log rate limit.
    pub(super) dropped_logs: u64,
    /// How many `send-mail` calls this instance has made; numbers each call
    /// so a rerun of the job can tell which mail it already sent.
    pub(super) mail_calls: u32,
    /// When the call into the guest must be over. Host calls stop waiting
    /// then: the epoch check only runs while guest code does.
    pub(super) deadline: Instant,
    /// Whether a host call gave up at the deadline; the call then fails as
    /// timed out whatever the guest makes of the error it got.
    pub(super) ran_out: bool,
    /// Fires when the job is cancelled; guest code stops at the next epoch
    /// tick, a host call at once.
    pub(super) cancel: CancellationToken,
    /// Whether a host call gave up because the job was cancelled; the call
    /// then ends as cancelled whatever the guest makes of its error.
    pub(super) cancelled: bool,
    /// The running job's pacing, from the job's own start; `None` while a
    /// reused instance waits for its next job, so idle instances don't
    /// count as running calls.
    pub(super) pace: Option<Pace>,
    /// The run of an iterable job this is, when the plugin iterates.
    pub(super) iteration: Option<Arc<crate::iteration::Iteration>>,
    /// Where this job's appends to each (service, key) in pieces ended.
    pub(super) appended: std::collections::HashMap<(String, String), u64>,
}

impl HostState {
    /// The state of a fresh instance, its requests reporting to `report`.
    pub fn new(
        caps: Capabilities,
        memory_bytes: usize,
        tags: LogTags,
        (deadline, report): (Instant, Arc<Report>),
    ) -> HostState {
        let stderr = TailPipe::new(STDERR_CAPACITY);
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let hooks = Hooks::new(&caps, &tags, deadline, report);
        HostState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            stderr,
            limiter: MemoryCap::new(memory_bytes),
            caps,
            tags,
            violation: None,
            dropped_logs: 0,
            mail_calls: 0,
            commit_race_until: None,
            missing_record: None,
            deadline,
            ran_out: false,
            cancel: CancellationToken::new(),
            cancelled: false,
            pace: Some(Pace::new()),
            iteration: None,
            appended: Default::default(),
        }
    }

    /// Makes the state of a reused instance ready for its next job: what
    /// belongs to one job starts over, as in a fresh instance; WASI, the
    /// memory cap and the capabilities stay with the instance.
    /// `commit_race_until` is as in [`HostState::with_commit_race_until`].
    pub fn begin_job(
        &mut self,
        tags: LogTags,
        (deadline, commit_race_until): (Instant, Option<Instant>),
        (cancel, report): (CancellationToken, Arc<Report>),
    ) {
        self.stderr.clear();
        self.hooks.begin_job(&tags, deadline, report);
        self.tags = tags;
        self.commit_race_until = commit_race_until;
        self.missing_record = None;
        self.violation = None;
        self.dropped_logs = 0;
        self.mail_calls = 0;
        self.deadline = deadline;
        self.ran_out = false;
        self.cancel = cancel;
        self.cancelled = false;
        self.pace = Some(Pace::new());
        self.iteration = None;
        self.appended.clear();
    }

    /// Stops the call when `cancel` fires.
    pub fn with_cancel(self, cancel: CancellationToken) -> HostState {
        HostState { cancel, ..self }
    }

    /// What the job's requests came to.
    pub fn report(&self) -> &Report {
        &self.hooks.0.report
    }

    /// What `wasi:http` works on: its context, the resource table (shared
    /// with WASI) and the job's requests.
    pub(super) fn http_parts(&mut self) -> (&mut WasiHttpCtx, &mut ResourceTable, &mut dyn WasiHttpHooks) {
        (&mut self.http, &mut self.table, &mut self.hooks)
    }

    /// Lets a missing record be looked for again until `until`.
    pub fn with_commit_race_until(mut self, until: Option<Instant>) -> HostState {
        self.commit_race_until = until;
        self
    }

    /// The last line of a Rust panic message the guest printed, if any.
    pub fn panic_message(&self) -> Option<String> {
        let text = self.stderr.contents();
        let start = text.rfind("panicked at")?;
        let message = text[start..].lines().take(2).collect::<Vec<_>>().join(": ");
        Some(message.trim().to_string())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl mail::Host for HostState {
    async fn send_mail(&mut self, message: mail::Email) -> Result<String, mail::MailError> {
        self.send_with(message, Vec::new()).await
    }

    async fn send_mail_with_attachments(
        &mut self,
        mut message: mail::Email,
        attachments: Vec<mail::Attachment>,
    ) -> Result<String, mail::MailError> {
        let (attachments, links) = self.attachments(attachments).await?;
        super::attach::add_links(&mut message, &links);
        self.send_with(message, attachments).await
    }
}

impl HostState {
    /// Sends `message` with `attachments` as the job's next mail call.
    async fn send_with(
        &mut self,
        message: mail::Email,
        attachments: Vec<Attachment>,
    ) -> Result<String, mail::MailError> {
        let seq = self.mail_calls;
        self.mail_calls += 1;
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let cancel = self.cancel.clone();
        let progress = Progress::default();
        let message = Arc::new(message);
        let delivered = tokio::select! {
            result = tokio::time::timeout_at(deadline, self.deliver((&message, attachments), seq, &progress)) => result.ok(),
            _ = cancel.cancelled() => None,
        };
        if let Some(result) = delivered {
            return result;
        }
        let tags = &self.tags;
        let stage = self.caps.mailer.cut_off((tags.shard, &tags.jid, seq), &progress).await;
        let (why, kind) = match cancel.is_cancelled() {
            true => ("was cancelled", "cancelled"),
            false => ("ran out of time", "timeout"),
        };
        match stage {
            // The server may have it: it counts as sent and is never sent again.
            Stage::HandedOver => {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid, to = ?message.to,
                "the job {why} while its mail was being sent; a rerun won't send it again")
            }
            // Its end never went out, so no server has it: a rerun sends it.
            Stage::Claimed | Stage::Unclaimed => {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                to = ?message.to, "the job {why} before its mail was handed over; not sent, a rerun sends it")
            }
        }
        self.caps.metrics.mail_failed(&tags.plugin, kind);
        match cancel.is_cancelled() {
            true => self.cancelled = true,
            false => self.ran_out = true,
        }
        Err(mail::MailError::Transient(format!("the job {why} while sending")))
    }

    /// Checks `message` against the policy, keeps to the mail rate and
    /// sends it as call `seq` of the job.
    async fn deliver(
        &mut self,
        (message, attachments): (&Arc<mail::Email>, Vec<Attachment>),
        seq: u32,
        progress: &Progress,
    ) -> Result<String, mail::MailError> {
        let tags = &self.tags;
        let attached = attachments.iter().map(|a| a.bytes.len()).sum();
        match self.caps.guard.check_mail_with(message, attached, seq) {
            // Keeping to the plugin's mail rate; the job's time limit still
            // runs, and a turn it cuts off goes to the next mail.
            Ok(turn) => turn.wait().await,
            Err(rule) => {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid, rule = %rule, "mail refused by policy");
                self.violation.get_or_insert_with(|| rule.clone());
                self.caps.metrics.mail_failed(&tags.plugin, "policy");
                return Err(mail::MailError::Rejected(format!("policy: {rule}")));
            }
        }
        match self
            .caps
            .mailer
            .send_for_job((message, attachments), (tags.shard, &tags.jid, seq), progress)
            .await
        {
            Ok(Delivery::Sent(id)) => {
                tracing::info!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                    to = ?message.to, subject = %crate::untrusted::escape(&message.subject), message_id = %id, "mail sent");
                self.caps.metrics.mail_sent(&tags.plugin);
                Ok(id)
            }
            Ok(Delivery::Remembered(id)) => {
                tracing::info!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                    to = ?message.to, message_id = %id, "mail already sent by an earlier run; not sent again");
                Ok(id)
            }
            Ok(Delivery::Interrupted(id)) => {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid, to = ?message.to,
                    message_id = %id, "an earlier run ran out of time while sending this mail; counted as sent, not sent again");
                Ok(id)
            }
            Err(err) => {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                    to = ?message.to, error = ?err, "mail not sent");
                let kind = match err {
                    SendError::InvalidInput(_) => "invalid",
                    SendError::Rejected(_) => "rejected",
                    SendError::Transient(_) => "transient",
                };
                self.caps.metrics.mail_failed(&tags.plugin, kind);
                Err(err.into())
            }
        }
    }
}

/// Mail's failures as the contract names them, at the host boundary.
impl From<SendError> for mail::MailError {
    fn from(err: SendError) -> mail::MailError {
        match err {
            SendError::InvalidInput(why) => mail::MailError::InvalidInput(why),
            SendError::Rejected(why) => mail::MailError::Rejected(why),
            SendError::Transient(why) => mail::MailError::Transient(why),
        }
    }
}

impl logging::Host for HostState {
    fn enabled(&mut self, level: logging::Level) -> bool {
        use logging::Level;
        match level {
            Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    fn log(&mut self, level: logging::Level, mut message: String) {
        use logging::Level;
        if !self.caps.guard.allow_log() {
            self.dropped_logs += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let cut = (0..=MAX_LOG_LINE).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
            message.truncate(cut);
            message.push_str("… (cut)");
        }
        let message = crate::untrusted::escape(&message);
        let LogTags { plugin, class, jid, .. } = &self.tags;
        match level {
            Level::Trace => tracing::trace!(target: "plugin", %plugin, %class, %jid, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", %plugin, %class, %jid, "{message}"),
            Level::Info => tracing::info!(target: "plugin", %plugin, %class, %jid, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", %plugin, %class, %jid, "{message}"),
            Level::Error => tracing::error!(target: "plugin", %plugin, %class, %jid, "{message}"),
        }
    }
}
