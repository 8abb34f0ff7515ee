//! `records` as the guest sees it: the host side of the WIT interface.
//!
//! Besides mapping the guest's calls onto [`crate::records`], this is where
//! Rails' commit race is absorbed. An app that enqueues in `after_create`
//! pushes the job before its transaction commits, and the runner starts
//! it within a millisecond, so the row is often not visible yet. A record
//! not found during a job's first run, within [`COMMIT_RACE_WINDOW`] of the
//! job's creation, is looked for again after 0.5 s, 1 s, 2 s, 4 s... before
//! "not found" is believed. A record still missing fails the job like
//! Rails' `ActiveJob::DeserializationError`, with normal retries.

use super::host::HostState;
use crate::policy::Guard;
use crate::records::{Bounds, Change, Lookup, Reader, RecordError, Scan, Writer, naming};
use crate::untrusted::shown;
use crate::wit::jobrunner::plugin::records::{self, RecordError as WitError};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long after a job was created a missing record may still be an
/// uncommitted one.
pub const COMMIT_RACE_WINDOW: Duration = Duration::from_secs(10);

/// The first pause before looking again; it doubles each time.
const FIRST_PAUSE: Duration = Duration::from_millis(500);

impl From<RecordError> for WitError {
    fn from(err: RecordError) -> WitError {
        match err {
            RecordError::Denied(m) => WitError::Denied(m),
            RecordError::Invalid(m) => WitError::InvalidInput(m),
            RecordError::Unavailable(m) => WitError::Unavailable(m),
        }
    }
}

impl HostState {
    /// The record of `model` with primary key `id`, waiting out the commit
    /// race while the job is young.
    async fn find_one(
        &mut self,
        model: &str,
        id: &str,
        columns: &[String],
    ) -> Result<Option<String>, WitError> {
        let id_value = Value::String(id.to_string());
        let lookup = Lookup { model, column: None, value: &id_value, columns, limit: 1 };
        let mut pause = FIRST_PAUSE;
        loop {
            let rows = self.read(&lookup).await?;
            if let Some(row) = rows.into_iter().next() {
                return Ok(Some(row));
            }
            let remaining =
                self.commit_race_until.map(|until| until.saturating_duration_since(Instant::now()));
            match remaining {
                Some(left) if !left.is_zero() => {
                    let wait = pause.min(left);
                    tracing::debug!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
                        model, id, wait_ms = wait.as_millis() as u64,
                        "record not found yet (its transaction may not have committed); looking again");
                    tokio::time::sleep(wait).await;
                    pause *= 2;
                }
                _ => break,
            }
        }
        let what = format!("Couldn't find {model} with id={id}");
        tracing::info!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid, model, id, "record not found");
        self.missing_record.get_or_insert(what);
        Ok(None)
    }

    /// Reads `lookup` under this plugin's grants. The state itself can't be
    /// held across an await (it isn't `Sync`), so what is needed is cloned.
    fn read(
        &self,
        lookup: &Lookup<'_>,
    ) -> impl Future<Output = Result<Vec<String>, RecordError>> + Send + use<> {
        let (records, guard, tags) = (self.caps.records.clone(), self.caps.guard.clone(), self.tags.clone());
        let (model, column, value, columns, limit) = (
            lookup.model.to_string(),
            lookup.column.map(str::to_string),
            lookup.value.clone(),
            lookup.columns.to_vec(),
            lookup.limit,
        );
        async move {
            let lookup =
                Lookup { model: &model, column: column.as_deref(), value: &value, columns: &columns, limit };
            let reader = Reader { plugin: &tags.plugin, grants: guard.record_grants() };
            let result = records.lookup(reader, &lookup).await;
            if let Err(err) = &result {
                tracing::warn!(plugin = %tags.plugin, class = %tags.class, jid = %tags.jid,
                    model = %shown(&model, naming::SHOWN), error = %crate::untrusted::escape(&err.to_string()), "record read failed");
            }
            result
        }
    }

    /// Logs a read that failed.
    fn read_failed<T>(&self, model: &str, result: &Result<T, RecordError>) {
        if let Err(err) = result {
            tracing::warn!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
                model = %shown(model, naming::SHOWN), error = %crate::untrusted::escape(&err.to_string()), "record read failed");
        }
    }

    /// Makes `change` to the record of `model` with primary key `id` under
    /// this plugin's grants; a change the policy denies fails the job.
    async fn change_record(&mut self, model: &str, id: &str, change: Change<'_>) -> Result<bool, WitError> {
        let (records, guard) = (self.caps.records.clone(), self.caps.guard.clone());
        let result = records
            .change(writer(&self.tags.plugin, &guard), model, &Value::String(id.to_string()), change)
            .await;
        let (model, op) = (shown(model, naming::SHOWN), change.op());
        match &result {
            Ok(changed) => tracing::debug!(plugin = %self.tags.plugin, class = %self.tags.class,
                jid = %self.tags.jid, model = %model, id = %shown(id, naming::SHOWN), changed, "record {op}"),
            Err(err) => self.change_failed(&model, op, err),
        }
        Ok(result?)
    }

    /// Logs a failed change; one the policy denied fails the job for good.
    fn change_failed(&mut self, model: &str, op: &str, err: &RecordError) {
        let error = err.to_string();
        tracing::warn!(plugin = %self.tags.plugin, class = %self.tags.class, jid = %self.tags.jid,
            model = %model, error = %crate::untrusted::escape(&error), "record {op} failed");
        if let RecordError::Denied(rule) = err {
            self.violation.get_or_insert_with(|| rule.clone());
        }
    }
}

impl records::Host for HostState {
    async fn locate(&mut self, gid: String, columns: Vec<String>) -> Result<Option<String>, WitError> {
        let gid = naming::parse_gid(&gid)?;
        self.find_one(&gid.model, &gid.id, &columns).await
    }

    async fn find(
        &mut self,
        model: String,
        id: String,
        columns: Vec<String>,
    ) -> Result<Option<String>, WitError> {
        self.find_one(&model, &id, &columns).await
    }

    async fn find_all_by(
        &mut self,
        model: String,
        column: String,
        value: String,
        columns: Vec<String>,
        limit: u32,
    ) -> Result<String, WitError> {
        let value: Value = serde_json::from_str(&value).map_err(|err| {
            WitError::InvalidInput(format!(
                "the value \"{}\" is not JSON: {err}",
                shown(&value, naming::SHOWN)
            ))
        })?;
        let lookup = Lookup { model: &model, column: Some(&column), value: &value, columns: &columns, limit };
        let rows = self.read(&lookup).await?;
        Ok(format!("[{}]", rows.join(",")))
    }

    async fn find_batch(
        &mut self,
        model: String,
        equal: String,
        range: Option<records::Bounds>,
        columns: Vec<String>,
        after: Option<String>,
        batch_size: u32,
    ) -> Result<records::Batch, WitError> {
        let equal = json_object(&equal, &format!("the conditions on {model}"))?;
        let bound = |value: Option<&str>, what| value.map(|v| json_value(v, what)).transpose();
        let from = bound(range.as_ref().and_then(|r| r.at_least.as_deref()), "at-least")?;
        let until = bound(range.as_ref().and_then(|r| r.below.as_deref()), "below")?;
        let after = after.map(Value::String);
        let range =
            range.as_ref().map(|r| Bounds { column: &r.column, from: from.as_ref(), until: until.as_ref() });
        let scan = Scan {
            model: &model,
            equal: &equal,
            range,
            columns: &columns,
            after: after.as_ref(),
            size: batch_size,
        };
        let (records, guard) = (self.caps.records.clone(), self.caps.guard.clone());
        let reader = Reader { plugin: &self.tags.plugin, grants: guard.record_grants() };
        let result = records.scan(reader, &scan).await;
        self.read_failed(&model, &result);
        let batch = result?;
        Ok(records::Batch { rows: format!("[{}]", batch.rows.join(",")), last_key: batch.last_key })
    }

    async fn find_many(
        &mut self,
        model: String,
        ids: Vec<String>,
        columns: Vec<String>,
    ) -> Result<String, WitError> {
        let ids: Vec<Value> = ids.into_iter().map(Value::String).collect();
        let (records, guard) = (self.caps.records.clone(), self.caps.guard.clone());
        let reader = Reader { plugin: &self.tags.plugin, grants: guard.record_grants() };
        let result = records.find_many(reader, &model, &ids, &columns).await;
        self.read_failed(&model, &result);
        Ok(format!("[{}]", result?.join(",")))
    }

    async fn update(&mut self, model: String, id: String, changes: String) -> Result<bool, WitError> {
        let changes = json_object(&changes, &format!("the changes to {model}"))?;
        self.change_record(&model, &id, Change::Update(&changes)).await
    }

    async fn delete(&mut self, model: String, id: String) -> Result<bool, WitError> {
        self.change_record(&model, &id, Change::Delete).await
    }

    async fn insert(&mut self, model: String, values: String) -> Result<String, WitError> {
        let values = json_object(&values, &format!("the values of a new {model}"))?;
        let (records, guard) = (self.caps.records.clone(), self.caps.guard.clone());
        let result = records.insert(writer(&self.tags.plugin, &guard), &model, &values).await;
        let model = shown(&model, naming::SHOWN);
        match &result {
            Ok(id) => tracing::debug!(plugin = %self.tags.plugin, class = %self.tags.class,
                jid = %self.tags.jid, model = %model, id = %shown(id, naming::SHOWN), "record insert"),
            Err(err) => self.change_failed(&model, "insert", err),
        }
        Ok(result?)
    }
}

/// What `plugin` may change, from its policy.
fn writer<'a>(plugin: &'a str, guard: &'a Guard) -> Writer<'a> {
    Writer {
        plugin,
        writes: guard.record_writes(),
        deletes: guard.record_deletes(),
        inserts: guard.record_inserts(),
    }
}

/// `text` as a JSON value, or an error naming the bound `what` it is.
fn json_value(text: &str, what: &str) -> Result<Value, WitError> {
    serde_json::from_str(text).map_err(|err| {
        WitError::InvalidInput(format!(
            "the bound {what} \"{}\" is not JSON: {err}",
            shown(text, naming::SHOWN)
        ))
    })
}

/// `text` as a JSON object, or an error naming `what` it should be.
fn json_object(text: &str, what: &str) -> Result<serde_json::Map<String, Value>, WitError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(WitError::InvalidInput(format!("{what} are not a JSON object of columns and values"))),
        Err(err) => Err(WitError::InvalidInput(format!("{what} are not JSON: {err}"))),
    }
}
