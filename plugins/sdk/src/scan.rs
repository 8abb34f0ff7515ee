//! Reading many records: a scan in primary key order, a batch at a time
//! (Rails' `find_each` and `find_in_batches`), and many records by their
//! keys (`where(id: [...])`).
//!
//! ```no_run
//! use jobrunner_plugin_sdk::records;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64, total: String }
//!
//! let orders = records::scan("Order")
//!     .where_eq("user_id", 7)
//!     .at_least("created_at", "2026-11-01")
//!     .below("created_at", "2026-12-01")
//!     .columns(&["id", "total"]);
//! for order in orders.each::<Order>() {
//!     let order = order?;
//! }
//! # Ok::<(), jobrunner_plugin_sdk::JobError>(())
//! ```
//!
//! The host reads one batch per query (500 rows unless
//! [`Scan::batch_size`] says otherwise, at most 1,000), each starting after
//! the last primary key of the one before, never with an OFFSET. A job that
//! stops part way keeps [`Batch::last_key`] and resumes with
//! [`Scan::after`].

use crate::JobError;
use crate::bindings::jobrunner::plugin::records as host;
use crate::records::{decode, owned};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;

/// The most rows one batch, or one [`find_many`] query, holds.
///
/// ```
/// let scan = jobrunner_plugin_sdk::records::scan("Order").batch_size(jobrunner_plugin_sdk::records::MAX_BATCH);
/// ```
pub const MAX_BATCH: u32 = 1000;

/// The rows a scan reads unless told otherwise.
const DEFAULT_BATCH: u32 = 500;

/// The records of `model` to read in batches; all of them until narrowed.
/// Nothing is read until [`Scan::batches`] or [`Scan::each`] is walked.
///
/// ```
/// use jobrunner_plugin_sdk::records;
///
/// let every_order = records::scan("Order");
/// ```
pub fn scan(model: &str) -> Scan {
    Scan {
        model: model.to_string(),
        equal: Map::new(),
        range: None,
        columns: Vec::new(),
        after: None,
        batch_size: DEFAULT_BATCH,
        error: None,
    }
}

/// A scan being described: which records, which columns, from where;
/// made by [`scan`].
#[derive(Debug)]
pub struct Scan {
    model: String,
    equal: Map<String, Value>,
    range: Option<host::Bounds>,
    columns: Vec<String>,
    after: Option<String>,
    batch_size: u32,
    /// A condition that couldn't be described, reported by the first batch.
    error: Option<JobError>,
}

impl Scan {
    /// Only records whose `column` equals `value` (`None` for `IS NULL`).
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").where_eq("user_id", 7).where_eq("shipped_at", None::<String>);
    /// ```
    pub fn where_eq(mut self, column: &str, value: impl Serialize) -> Scan {
        match serde_json::to_value(value) {
            Ok(value) => {
                self.equal.insert(column.to_string(), value);
            }
            Err(e) => self.fail(format!("records: {}.{column} value: {e}", self.model)),
        }
        self
    }

    /// Only records whose `column` is at least `value` (Rails' `from..`).
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").at_least("created_at", "2026-11-01");
    /// ```
    pub fn at_least(self, column: &str, value: impl Serialize) -> Scan {
        self.bound(column, value, |bounds, value| bounds.at_least = Some(value))
    }

    /// Only records whose `column` is below `value` (Rails' `...until`).
    /// One column may be bounded, from below, above or both.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").at_least("created_at", "2026-11-01").below("created_at", "2026-12-01");
    /// ```
    pub fn below(self, column: &str, value: impl Serialize) -> Scan {
        self.bound(column, value, |bounds, value| bounds.below = Some(value))
    }

    /// The columns to read; every permitted one unless named. The primary
    /// key is always read.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").columns(&["user_id", "total"]);
    /// ```
    pub fn columns(mut self, columns: &[&str]) -> Scan {
        self.columns = owned(columns);
        self
    }

    /// Starts after the record whose primary key is `key`: a resumed job
    /// passes the last key it finished.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").after("41");
    /// ```
    pub fn after(mut self, key: impl ToString) -> Scan {
        self.after = Some(key.to_string());
        self
    }

    /// Reads `size` records per query (1 to 1,000); another size is an
    /// error at the first batch.
    ///
    /// ```
    /// use jobrunner_plugin_sdk::records;
    ///
    /// let scan = records::scan("Order").batch_size(1000);
    /// ```
    pub fn batch_size(mut self, size: u32) -> Scan {
        if size == 0 || size > MAX_BATCH {
            self.fail(format!("records: a batch of {size} rows; batches hold 1 to {MAX_BATCH}"));
        }
        self.batch_size = size;
        self
    }

    /// The records a batch at a time, each with the key to resume after.
    ///
    /// ```no_run
    /// use jobrunner_plugin_sdk::records;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Order { id: u64, total: String }
    ///
    /// for batch in records::scan("Order").batch_size(1000).batches::<Order>() {
    ///     let batch = batch?;
    ///     // batch.rows, then batch.last_key to resume after
    /// }
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn batches<T: DeserializeOwned>(self) -> Batches<T> {
        Batches { scan: self, done: false, rows: PhantomData }
    }

    /// The records one by one, read a batch at a time.
    ///
    /// ```no_run
    /// use jobrunner_plugin_sdk::records;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Order { id: u64, total: String }
    ///
    /// let mut total = 0.0;
    /// for order in records::scan("Order").columns(&["total"]).each::<Order>() {
    ///     total += order?.total.parse::<f64>().unwrap_or(0.0);
    /// }
    /// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
    /// ```
    pub fn each<T: DeserializeOwned>(self) -> Each<T> {
        Each { batches: self.batches(), current: Vec::new().into_iter() }
    }

    fn bound(mut self, column: &str, value: impl Serialize, set: fn(&mut host::Bounds, String)) -> Scan {
        let bounds = self.range.get_or_insert_with(|| host::Bounds {
            column: column.to_string(),
            at_least: None,
            below: None,
        });
        if bounds.column != column {
            let first = bounds.column.clone();
            self.fail(format!("records: a scan takes bounds on one column; {first} and {column} named"));
            return self;
        }
        match serde_json::to_string(&value) {
            Ok(value) => set(bounds, value),
            Err(e) => self.fail(format!("records: {}.{column} bound: {e}", self.model)),
        }
        self
    }

    fn fail(&mut self, reason: String) {
        self.error.get_or_insert(JobError::Permanent(reason));
    }

    /// Reads the next batch and moves past it.
    fn next_batch<T: DeserializeOwned>(&mut self) -> Result<Batch<T>, JobError> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        let equal = Value::Object(self.equal.clone()).to_string();
        let batch = host::find_batch(
            &self.model,
            &equal,
            self.range.as_ref(),
            &self.columns,
            self.after.as_deref(),
            self.batch_size,
        )?;
        let rows: Vec<T> = decode(&batch.rows, &format!("{} rows", self.model))?;
        if let Some(key) = &batch.last_key {
            self.after = Some(key.clone());
        }
        Ok(Batch { rows, last_key: batch.last_key })
    }
}

/// One batch of records, and the primary key of its last one; see
/// [`Scan::batches`].
#[derive(Debug)]
pub struct Batch<T> {
    /// The records, in primary key order.
    pub rows: Vec<T>,
    /// Where the next batch starts: pass it to [`Scan::after`] to resume.
    pub last_key: Option<String>,
}

/// The batches of a [`Scan`]; ends after the first short batch, or at the
/// first error. Made by [`Scan::batches`].
pub struct Batches<T> {
    scan: Scan,
    done: bool,
    rows: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Batches<T> {
    type Item = Result<Batch<T>, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let batch = self.scan.next_batch::<T>();
        match &batch {
            Ok(batch) => self.done = (batch.rows.len() as u32) < self.scan.batch_size,
            Err(_) => self.done = true,
        }
        match batch {
            Ok(batch) if batch.rows.is_empty() => None,
            batch => Some(batch),
        }
    }
}

/// The records of a [`Scan`] one by one. Made by [`Scan::each`].
pub struct Each<T> {
    batches: Batches<T>,
    current: std::vec::IntoIter<T>,
}

impl<T: DeserializeOwned> Iterator for Each<T> {
    type Item = Result<T, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            match self.batches.next()? {
                Ok(batch) => self.current = batch.rows.into_iter(),
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// The records of `model` whose primary keys are `ids`, leaving out keys
/// with no record: Rails' `where(id: ids)`. One query per 1,000 keys, each
/// query's records in primary key order.
///
/// ```no_run
/// use jobrunner_plugin_sdk::records;
///
/// #[derive(serde::Deserialize)]
/// struct User { id: u64, email: String }
///
/// let users: Vec<User> = records::find_many("User", [3, 1, 2], &["email"])?;
/// # Ok::<(), jobrunner_plugin_sdk::JobError>(())
/// ```
pub fn find_many<T: DeserializeOwned>(
    model: &str,
    ids: impl IntoIterator<Item = impl ToString>,
    columns: &[&str],
) -> Result<Vec<T>, JobError> {
    let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    let columns = owned(columns);
    let mut found = Vec::new();
    for chunk in ids.chunks(MAX_BATCH as usize) {
        let json = host::find_many(model, chunk, &columns)?;
        found.extend(decode::<Vec<T>>(&json, &format!("{model} rows"))?);
    }
    Ok(found)
}
