//! The capability policy: what each plugin may do with what the host gives
//! it, beyond the sandbox itself.
//!
//! [`Rules`] hold the limits on `send-mail` (senders, recipient domains,
//! recipients per message, message size, mails per job, mails per second)
//! and on `log` (lines per second). A [`Policy`] holds the defaults and the
//! overrides per plugin name, read from `--policy FILE` (TOML):
//!
//! ```toml
//! [default]
//! allowed_senders = ["orders@shop.example", "@shop.example"]
//! max_recipients = 20
//!
//! [plugins.order_created]
//! mail_per_second = 2000
//! reuse = 100          # opt-in: one instance performs up to 100 jobs
//! ```
//!
//! A [`Guard`] applies one plugin's rules while it runs, with the rate
//! buckets its instances share. [`records`] says which of the app's rows a
//! plugin may read or change, [`blobs`] which stored files it may read or
//! change.

pub mod blobs;
mod guard;
pub mod http;
mod rate;
pub mod records;

pub use blobs::{BlobAccess, BlobGrant, BlobGrants};
pub use guard::Guard;
pub use records::{Grant, Grants, ModelMapping, WriteGrants};

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The limits on one plugin's capabilities.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Sender addresses (`orders@shop.example`) or domains (`@shop.example`)
    /// a plugin may put in `from`. The runner's `--mail-from` is always
    /// allowed; with the default (empty) list it is the only sender.
    pub allowed_senders: Vec<String>,
    /// Domains every recipient must be in; empty allows any domain.
    pub allowed_recipient_domains: Vec<String>,
    /// The most recipients (to, cc and bcc together) of one message.
    pub max_recipients: usize,
    /// The largest message (subject, bodies and headers), in bytes.
    pub max_message_bytes: usize,
    /// The most extra headers of one message.
    pub max_headers: usize,
    /// The most bytes of extra headers (names and values) of one message.
    pub max_header_bytes: usize,
    /// The most `send-mail` calls one job may make.
    pub max_mails_per_job: u32,
    /// `send-mail` calls per second across all of the plugin's jobs; a call
    /// beyond it waits its turn (within the job's time limit).
    pub mail_per_second: u32,
    /// `log` lines per second across all of the plugin's jobs; the rest are
    /// dropped and counted.
    pub log_lines_per_second: u32,
    /// How many jobs one instance may perform, one after another. 1 (the
    /// default) gives every job a fresh instance; more is an opt-in for a
    /// trusted plugin, set in its own section only, since a job then sees
    /// whatever the jobs before it left in the instance's memory.
    pub reuse: u32,
    /// The models (and their columns) the plugin may read with `records`.
    /// Without a policy file every model is readable, sensitive columns
    /// excepted; with one, only what is granted here.
    pub records: Grants,
    /// What the plugin may do with stored files through `blobs`. Without a
    /// policy file, read every service; with one, only what is granted.
    pub blobs: BlobGrants,
    /// The columns of each model the plugin may change with
    /// `records.update` (`{ "ActiveStorage::Blob" = ["metadata"] }`).
    /// Nothing is writable unless a policy file grants it here.
    pub writes: WriteGrants,
    /// The models whose rows the plugin may delete with `records.delete`.
    pub deletes: Vec<String>,
    /// The columns of each model the plugin may set in a record it creates
    /// with `records.insert` (`{ "ActiveStorage::VariantRecord" =
    /// ["blob_id", "variation_digest"] }`); timestamps are set by the host.
    pub inserts: WriteGrants,
    /// Outgoing HTTP (`[plugins.NAME.http]`); none unless granted.
    pub http: Option<http::HttpGrant>,
    /// Keys the plugin may sign with through `signing`, by name; values
    /// are `${ENV}` references read when the policy is loaded.
    pub signing_keys: std::collections::BTreeMap<String, String>,
    /// `signing_keys`, resolved.
    #[serde(skip)]
    pub keys: std::collections::BTreeMap<String, http::Secret>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            allowed_senders: Vec::new(),
            allowed_recipient_domains: Vec::new(),
            max_recipients: 50,
            max_message_bytes: 10 * 1024 * 1024,
            max_headers: 50,
            max_header_bytes: 16 * 1024,
            max_mails_per_job: 100,
            mail_per_second: 5000,
            log_lines_per_second: 100,
            reuse: 1,
            records: None,
            blobs: Some(BlobGrant::default()),
            writes: WriteGrants::new(),
            deletes: Vec::new(),
            inserts: WriteGrants::new(),
            http: None,
            signing_keys: Default::default(),
            keys: Default::default(),
        }
    }
}

/// The policy file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Rules for every plugin.
    #[serde(default)]
    default: toml::Table,
    /// Changes to the defaults for plugins by name.
    #[serde(default)]
    plugins: HashMap<String, toml::Table>,
    /// Tables and primary keys of models that don't follow Rails' naming.
    #[serde(default)]
    models: HashMap<String, ModelMapping>,
    /// Job classes pinned to the plugin (by name) that must serve them.
    #[serde(default)]
    classes: HashMap<String, String>,
}

/// The defaults and the per-plugin rules.
#[derive(Debug, Default)]
pub struct Policy {
    /// Rules for plugins without their own section.
    default: Rules,
    /// Rules per plugin name: the defaults with the section's changes.
    plugins: HashMap<String, Rules>,
    /// Tables and primary keys of models that don't follow Rails' naming.
    models: HashMap<String, ModelMapping>,
    /// Job classes pinned to the plugin (by name) that must serve them.
    classes: HashMap<String, String>,
}

impl Policy {
    /// Reads a policy file; every mistake names the file and the setting.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the policy file {}", path.display()))?;
        Policy::parse(&text).with_context(|| format!("invalid policy file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Policy> {
        let file: PolicyFile = toml::from_str(text)?;
        for key in ["http", "signing_keys"] {
            anyhow::ensure!(
                !file.default.contains_key(key),
                "in [default]: {key} is granted to one plugin at a time, under [plugins.NAME]"
            );
        }
        anyhow::ensure!(
            !file.default.contains_key("reuse"),
            "in [default]: reuse is set for one plugin at a time, under [plugins.NAME]: \
             a reused instance keeps what one job leaves for the next"
        );
        let default = rules(file.default.clone()).context("in [default]")?;
        let mut plugins = HashMap::new();
        for (name, changes) in file.plugins {
            let mut table = file.default.clone();
            table.extend(changes);
            plugins.insert(name.clone(), rules(table).with_context(|| format!("in [plugins.{name}]"))?);
        }
        Ok(Policy { default, plugins, models: file.models, classes: file.classes })
    }

    /// The rules for the plugin called `name`.
    pub fn rules_for(&self, name: &str) -> &Rules {
        self.plugins.get(name).unwrap_or(&self.default)
    }

    /// The table and primary key settings of models named in the file.
    pub fn models(&self) -> &HashMap<String, ModelMapping> {
        &self.models
    }

    /// Job classes pinned to a plugin name (`[classes]`).
    pub fn class_pins(&self) -> &HashMap<String, String> {
        &self.classes
    }

    /// How many plugins may reuse instances, each holding up to one idle
    /// instance per job slot.
    pub fn reusing_plugins(&self) -> usize {
        self.plugins.values().filter(|rules| rules.reuse > 1).count()
    }

    /// Plugins named in the file, to warn about names no plugin has.
    pub fn named_plugins(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }
}

/// The rules of one section of a policy file. A file grants records and
/// blobs only where it says so.
fn rules(table: toml::Table) -> Result<Rules> {
    let grants_blobs = table.contains_key("blobs");
    let mut rules: Rules = table.try_into()?;
    rules.records.get_or_insert_with(Default::default);
    if !grants_blobs {
        rules.blobs = None;
    }
    if let Some(grant) = &rules.blobs {
        anyhow::ensure!(grant.max_bytes > 0, "blobs.max_bytes must be positive");
    }
    anyhow::ensure!(rules.mail_per_second > 0, "mail_per_second must be positive");
    anyhow::ensure!(rules.log_lines_per_second > 0, "log_lines_per_second must be positive");
    anyhow::ensure!(rules.reuse > 0, "reuse must be at least 1 (1 is a fresh instance per job)");
    if let Some(grant) = &mut rules.http {
        grant.compile()?;
    }
    rules.keys = http::signing_keys(&rules.signing_keys)?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_sections_change_the_defaults() {
        let policy =
            Policy::parse("[default]\nmax_recipients = 5\n[plugins.order_created]\nmail_per_second = 10\n")
                .unwrap();
        assert_eq!(policy.rules_for("other").max_recipients, 5);
        let order = policy.rules_for("order_created");
        assert_eq!((order.max_recipients, order.mail_per_second), (5, 10));
        assert_eq!(order.max_mails_per_job, Rules::default().max_mails_per_job);
    }

    #[test]
    fn mistakes_name_the_setting() {
        let err = format!("{:#}", Policy::parse("[default]\nmax_recipient = 5\n").unwrap_err());
        assert!(err.contains("max_recipient"), "{err}");
        let err = format!("{:#}", Policy::parse("[plugins.x]\nmail_per_second = 0\n").unwrap_err());
        assert!(err.contains("plugins.x") && err.contains("mail_per_second"), "{err}");
        assert!(Policy::parse("[defaults]\n").is_err());
        let err = format!("{:#}", Policy::parse("[default]\nrecords = { User = \"all\" }\n").unwrap_err());
        assert!(err.contains("records"), "{err}");
    }

    #[test]
    fn reuse_is_one_plugin_at_a_time_and_never_the_default() {
        let policy =
            Policy::parse("[plugins.digest]\nreuse = 100\n[plugins.other]\nmax_recipients = 5\n").unwrap();
        assert_eq!((policy.rules_for("digest").reuse, policy.rules_for("other").reuse), (100, 1));
        assert_eq!((Policy::default().rules_for("x").reuse, policy.reusing_plugins()), (1, 1));
        let err = format!("{:#}", Policy::parse("[default]\nreuse = 10\n").unwrap_err());
        assert!(err.contains("[default]") && err.contains("[plugins.NAME]"), "{err}");
        let err = format!("{:#}", Policy::parse("[plugins.x]\nreuse = 0\n").unwrap_err());
        assert!(err.contains("plugins.x") && err.contains("reuse must be at least 1"), "{err}");
    }

    #[test]
    fn a_policy_file_grants_records_only_where_it_says_so() {
        let policy = Policy::parse(
            "[plugins.shop]\nrecords = { User = [\"email\"], Order = \"*\" }\n[models.Person]\ntable = \"folks\"\n",
        )
        .unwrap();
        assert_eq!(policy.rules_for("other").records, Some(Default::default()));
        let shop = policy.rules_for("shop").records.as_ref().unwrap();
        assert_eq!(shop["User"], Grant::Columns(vec!["email".into()]));
        assert_eq!(policy.models()["Person"].table.as_deref(), Some("folks"));
        assert_eq!(Policy::default().rules_for("x").records, None);
    }

    #[test]
    fn a_policy_file_grants_blobs_only_where_it_says_so() {
        let policy = Policy::parse(
            "[plugins.storage.blobs]\nservices = [\"local\"]\nwrite = true\n[plugins.other]\nmax_recipients = 5\n",
        )
        .unwrap();
        let grant = policy.rules_for("storage").blobs.clone().unwrap();
        assert!(grant.read && grant.write && !grant.delete && grant.services == ["local"]);
        assert_eq!(policy.rules_for("other").blobs, None);
        assert_eq!(Policy::default().rules_for("x").blobs, Some(BlobGrant::default()));
        let err = format!("{:#}", Policy::parse("[plugins.x.blobs]\nwrites = true\n").unwrap_err());
        assert!(err.contains("plugins.x") && err.contains("writes"), "{err}");
    }

    #[test]
    fn only_a_policy_file_grants_writes_and_deletes() {
        let policy = Policy::parse(
            "[plugins.storage]\nwrites = { \"ActiveStorage::Blob\" = [\"metadata\"] }\n\
             deletes = [\"ActiveStorage::Blob\"]\n\
             inserts = { \"ActiveStorage::VariantRecord\" = [\"blob_id\"] }\n",
        )
        .unwrap();
        let storage = policy.rules_for("storage");
        assert_eq!(storage.writes["ActiveStorage::Blob"], ["metadata"]);
        assert_eq!(storage.deletes, ["ActiveStorage::Blob"]);
        assert_eq!(storage.inserts["ActiveStorage::VariantRecord"], ["blob_id"]);
        assert!(policy.rules_for("other").inserts.is_empty());
        assert!(policy.rules_for("other").writes.is_empty() && policy.rules_for("other").deletes.is_empty());
        let none = Policy::default();
        assert!(none.rules_for("x").writes.is_empty() && none.rules_for("x").deletes.is_empty());
        let err = format!("{:#}", Policy::parse("[plugins.x]\nwrites = { User = \"*\" }\n").unwrap_err());
        assert!(err.contains("plugins.x") && err.contains("writes"), "{err}");
    }
}
