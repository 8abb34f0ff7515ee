//! Reading the app's records through the host's `records` capability, one
//! or many at a time ([`scan`], [`find_many`]), and changing the ones the
//! policy grants ([`update`], [`insert`], [`delete`]).
//!
//! A record comes back as its columns, decoded into any serde type:
//!
//! ```no_run
//! use jobrunner_plugin_sdk::records;
//!
//! #[derive(serde::Deserialize)]
//! struct User { email: String, name: Option<String> }
//!
//! let user: User = records::locate_required("gid://shop/User/1", &["email", "name"])?;
//! # Ok::<(), jobrunner_plugin_sdk::JobError>(())
//! ```
//!
//! Errors map onto job errors as the runner treats them: a read the policy
//! denies or that names nothing is permanent, an unreachable database is
//! retryable. A record that isn't there is `None` from [`locate`] and
//! [`find`]; the `_required` forms turn it into a retryable error, as Rails'
//! `ActiveJob::DeserializationError` is retried (the runner records it
//! under that name).

use crate::JobError;
use crate::bindings::jobrunner::plugin::records as host;
pub use host::RecordError;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::scan::{Batch, Batches, Each, MAX_BATCH, Scan, find_many, scan};

impl From<RecordError> for JobError {
    fn from(err: RecordError) -> JobError {
        match err {
            RecordError::Denied(reason) => JobError::Permanent(format!("records: {reason}")),
            RecordError::InvalidInput(reason) => JobError::Permanent(format!("records: {reason}")),
            RecordError::Unavailable(reason) => JobError::Retryable(format!("records: {reason}")),
        }
    }
}

pub(crate) fn owned(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

pub(crate) fn decode<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, JobError> {
    serde_json::from_str(json).map_err(|e| JobError::Permanent(format!("records: unexpected {what}: {e}")))
}

/// The record a GlobalID names (`gid://shop/Order/42`), with `columns`
/// (empty for every permitted column); `None` when there is no such row.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct User { email: String, name: Option<String> }
///
/// let user: Option<User> = records::locate("gid://shop/User/1", &["email", "name"])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn locate<T: DeserializeOwned>(gid: &str, columns: &[&str]) -> Result<Option<T>, JobError> {
    match host::locate(gid, &owned(columns))? {
        Some(json) => decode(&json, gid).map(Some),
        None => Ok(None),
    }
}

/// Like [`locate`], but a missing record fails the job for a retry.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct User { email: String, name: Option<String> }
///
/// let user: User = records::locate_required("gid://shop/User/1", &["email", "name"])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn locate_required<T: DeserializeOwned>(gid: &str, columns: &[&str]) -> Result<T, JobError> {
    locate(gid, columns)?.ok_or_else(|| JobError::Retryable(format!("Couldn't find the record {gid}")))
}

/// The record of `model` (`Order`) whose primary key is `id`.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct Order { user_id: u64, total: String }
///
/// let order: Option<Order> = records::find("Order", 42, &["user_id", "total"])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn find<T: DeserializeOwned>(
    model: &str,
    id: impl ToString,
    columns: &[&str],
) -> Result<Option<T>, JobError> {
    let id = id.to_string();
    match host::find(model, &id, &owned(columns))? {
        Some(json) => decode(&json, &format!("{model} {id}")).map(Some),
        None => Ok(None),
    }
}

/// Like [`find`], but a missing record fails the job for a retry.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct Order { user_id: u64, total: String }
///
/// let order: Order = records::find_required("Order", 42, &["user_id", "total"])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn find_required<T: DeserializeOwned>(
    model: &str,
    id: impl ToString,
    columns: &[&str],
) -> Result<T, JobError> {
    let id = id.to_string();
    find(model, &id, columns)?
        .ok_or_else(|| JobError::Retryable(format!("Couldn't find {model} with id={id}")))
}

/// Up to `limit` records of `model` whose `column` equals `value`, in
/// primary key order (at most 1,000).
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct Item { name: String, quantity: u32, price: String }
///
/// let items: Vec<Item> = records::find_all_by("LineItem", "order_id", 42, &["name", "quantity", "price"], 100)?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn find_all_by<T: DeserializeOwned>(
    model: &str,
    column: &str,
    value: impl Serialize,
    columns: &[&str],
    limit: u32,
) -> Result<Vec<T>, JobError> {
    let value = serde_json::to_string(&value)
        .map_err(|e| JobError::Permanent(format!("records: {model}.{column} value: {e}")))?;
    let json = host::find_all_by(model, column, &value, &owned(columns), limit)?;
    decode(&json, &format!("{model} rows"))
}

/// Sets `changes` (any serde value that is an object of columns) on the
/// record of `model` whose primary key is `id`; `false` when there is no
/// such record. The policy must grant each column under `writes`:
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// let metadata = serde_json::json!({"identified": true, "width": 640, "height": 480, "analyzed": true});
/// records::update("ActiveStorage::Blob", 7, &serde_json::json!({ "metadata": metadata }))?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn update(model: &str, id: impl ToString, changes: &impl Serialize) -> Result<bool, JobError> {
    let changes = serde_json::to_string(changes)
        .map_err(|e| JobError::Permanent(format!("records: changes to {model}: {e}")))?;
    Ok(host::update(model, &id.to_string(), &changes)?)
}

/// Creates a record of `model` with `values` (any serde value that is an
/// object of columns) and returns its primary key as text. The policy must
/// grant each column under `inserts`; `created_at` and `updated_at` are
/// set by the host when the table has them. A row the database refuses
/// (a unique index) is a permanent error:
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// let values = serde_json::json!({"blob_id": 7, "variation_digest": "5f1e0b"});
/// let id = records::insert("ActiveStorage::VariantRecord", &values)?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn insert(model: &str, values: &impl Serialize) -> Result<String, JobError> {
    let values = serde_json::to_string(values)
        .map_err(|e| JobError::Permanent(format!("records: a new {model}: {e}")))?;
    Ok(host::insert(model, &values)?)
}

/// Deletes the record of `model` whose primary key is `id`; `false` when
/// there is none. The policy must name the model under `deletes`.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// let deleted = records::delete("ActiveStorage::Attachment", 12)?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn delete(model: &str, id: impl ToString) -> Result<bool, JobError> {
    Ok(host::delete(model, &id.to_string())?)
}
