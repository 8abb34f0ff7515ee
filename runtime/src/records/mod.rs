//! The `records` capability: plugins read the app's own rows, and change
//! the few their policy grants, under their policy.
//!
//! A plugin names a model as Rails does (`Order`, from a GlobalID or by
//! hand); [`naming`] maps it to its table, the policy says which models and
//! columns the plugin may read (or, in [`write`], update and delete), and
//! [`schema`] checks every name against the live database before it
//! reaches SQL ([`db`]). Values are always bound parameters. A row comes
//! back as JSON text with the database's own types; a missing row is
//! `None`, never an error.

mod batch;
mod db;
mod direct;
mod insert;
pub mod naming;
pub mod schema;
mod statements;
mod write;

pub use batch::{Batch, Bounds, Scan};
pub use write::{Change, Writer};

use crate::metrics::Metrics;
use crate::policy::ModelMapping;
use crate::policy::records::{self as grants, Grants};
use crate::untrusted::shown;
use anyhow::Result;
use db::{Access, Database, Filter, Select, Test};
use schema::{Column, Schema};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most rows one `find-all-by` returns.
pub const MAX_ROWS: u32 = 1000;

/// The most columns one read may name.
const MAX_COLUMNS: usize = 256;

/// How often a name the schema lacks may trigger a fresh read of it (a
/// migration may just have added it), so that a plugin naming missing
/// tables can't turn every call into a schema read.
const SCHEMA_REFRESH: Duration = Duration::from_secs(1);

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The policy doesn't grant the model or column.
    #[error("{0}")]
    Denied(String),
    /// A GlobalID, model, column or value that can't name anything.
    #[error("{0}")]
    Invalid(String),
    /// No database, or it failed or was too slow; worth a retry.
    #[error("{0}")]
    Unavailable(String),
}

/// Who is reading: the plugin's name and what its policy grants.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub plugin: &'a str,
    pub grants: &'a Grants,
}

/// One lookup: rows of `model` whose `column` equals `value`.
pub struct Lookup<'a> {
    pub model: &'a str,
    /// The column to match; `None` for the primary key.
    pub column: Option<&'a str>,
    pub value: &'a Value,
    /// The columns to return; empty for every permitted one.
    pub columns: &'a [String],
    pub limit: u32,
}

/// The app's database as plugins may see it.
pub struct Records {
    /// The read-only connection pool; `None` when no `--database` was given.
    db: Option<Database>,
    /// For a SQLite file, reads tried on the job's thread before the pool.
    direct: Option<direct::Reads>,
    /// The SQL text of each shape of read.
    statements: statements::Statements,
    /// The pool granted changes go through, connecting on first use.
    writer: Option<Database>,
    /// The schema as last read, and when.
    schema: tokio::sync::Mutex<Option<(Arc<Schema>, Instant)>>,
    /// Tables and primary keys set in the policy file.
    models: HashMap<String, ModelMapping>,
    /// Counts reads per plugin and model.
    metrics: Arc<Metrics>,
}

impl Records {
    /// Reads through a pool of at most `max_connections` to `url`, or
    /// refuses every read (retryably) when there is no URL.
    pub fn new(
        url: Option<&str>,
        max_connections: u32,
        models: HashMap<String, ModelMapping>,
        metrics: Arc<Metrics>,
    ) -> Result<Records> {
        let db = url.map(|url| Database::connect_lazy(url, max_connections, Access::Read)).transpose()?;
        let writer =
            url.map(|url| Database::connect_lazy(url, max_connections, Access::Write)).transpose()?;
        if let (Some(db), Some(url)) = (&db, url) {
            tracing::info!(database = %crate::secret::redact_url(url), kind = db.kind(), "records read from the app's database");
        }
        let direct = url.and_then(|url| direct::Reads::for_url(url, max_connections as usize));
        let schema = tokio::sync::Mutex::new(None);
        Ok(Records { db, direct, statements: Default::default(), writer, schema, models, metrics })
    }

    /// The rows `lookup` asks for, as JSON texts.
    pub async fn lookup(&self, reader: Reader<'_>, lookup: &Lookup<'_>) -> Result<Vec<String>, RecordError> {
        let result = self.run(reader, lookup).await;
        self.count_read(reader, lookup.model, &result.as_ref().map(Vec::len));
        result
    }

    async fn run(&self, reader: Reader<'_>, lookup: &Lookup<'_>) -> Result<Vec<String>, RecordError> {
        let (db, readable) = self.readable(reader, lookup.model, lookup.columns.len()).await?;
        let table = &readable.table;
        let key = readable.column(lookup.column.unwrap_or(&table.primary_key))?;
        let columns = readable.selected(lookup.columns)?;
        let value = schema::param(lookup.value, key.kind, &format_args!("{}.{}", table.table, key.name))?;
        let order_by = match readable.has_primary_key() {
            true => table.primary_key.as_str(),
            false => key.name.as_str(),
        };
        if lookup.limit == 0 {
            return Ok(Vec::new());
        }
        let filters = [Filter { column: key, test: Test::Equals(value) }];
        let select = Select {
            table: &table.table,
            columns: &columns,
            filters: &filters,
            order_by,
            limit: lookup.limit.min(MAX_ROWS),
        };
        self.select(db, &select).await
    }

    /// `model`'s table as `reader` may read it, checked against the policy
    /// and the live schema, with the pool to read it through.
    async fn readable<'a>(
        &self,
        reader: Reader<'a>,
        model: &'a str,
        columns_named: usize,
    ) -> Result<(&Database, Readable<'a>), RecordError> {
        naming::check_model(model)?;
        if columns_named > MAX_COLUMNS {
            return Err(RecordError::Invalid(format!(
                "{columns_named} columns named, more than the {MAX_COLUMNS} one read may name"
            )));
        }
        grants::check_model(reader.grants, reader.plugin, model).map_err(RecordError::Denied)?;
        let db = connected(&self.db)?;
        let table = self.table_of(db, model).await?;
        Ok((db, Readable { reader, model, table }))
    }

    /// Runs `select`; a failed query may mean the schema changed, so it is
    /// read afresh next time.
    async fn select(&self, db: &Database, select: &Select<'_>) -> Result<Vec<String>, RecordError> {
        let (sql, params) = (self.statements.text(db, select), select.params());
        if let Some(rows) = self.direct.as_ref().and_then(|d| d.select(&sql, &params)) {
            return Ok(rows);
        }
        let rows = db.select(&sql, &params).await;
        if rows.is_err() {
            *self.schema.lock().await = None;
        }
        rows
    }

    /// Counts a read of `model` that found `rows`, or failed.
    fn count_read(&self, reader: Reader<'_>, model: &str, result: &Result<usize, &RecordError>) {
        let outcome = match result {
            Ok(0) => "not_found",
            Ok(_) => "found",
            Err(RecordError::Denied(_)) => "denied",
            Err(RecordError::Invalid(_)) => "invalid",
            Err(RecordError::Unavailable(_)) => "unavailable",
        };
        // Only models the database has become label values.
        let model = if result.is_ok() { model } else { "-" };
        self.metrics.record_read(reader.plugin, model, outcome);
    }

    /// The table, primary key and columns of `model`, from the policy's
    /// `[models]` or Rails' naming, found in the live schema.
    async fn table_of(&self, db: &Database, model: &str) -> Result<Table, RecordError> {
        let mapping = self.models.get(model).cloned().unwrap_or_default();
        let table = mapping.table.unwrap_or_else(|| naming::table_for(model));
        let primary_key = mapping.primary_key.unwrap_or_else(|| "id".into());
        let schema = self.schema_with(db, &table).await?;
        if !schema.tables.contains_key(&table) {
            return Err(RecordError::Invalid(format!(
                "model {model}: the database has no table {table} it may read"
            )));
        }
        Ok(Table { table, primary_key, schema })
    }

    /// The schema, read now if it wasn't yet, or if it lacks `table` and
    /// hasn't been read within [`SCHEMA_REFRESH`].
    async fn schema_with(&self, db: &Database, table: &str) -> Result<Arc<Schema>, RecordError> {
        let mut cached = self.schema.lock().await;
        if let Some((schema, read_at)) = cached.as_ref()
            && (schema.tables.contains_key(table) || read_at.elapsed() < SCHEMA_REFRESH)
        {
            return Ok(schema.clone());
        }
        let schema = Arc::new(db.schema().await?);
        tracing::debug!(tables = schema.tables.len(), "read the database schema");
        *cached = Some((schema.clone(), Instant::now()));
        Ok(schema)
    }
}

/// A model's table as the live schema has it.
struct Table {
    table: String,
    primary_key: String,
    schema: Arc<Schema>,
}

impl Table {
    fn columns(&self) -> &[Column] {
        &self.schema.tables[&self.table]
    }
}

/// A model's table as one plugin may read it.
struct Readable<'a> {
    reader: Reader<'a>,
    model: &'a str,
    table: Table,
}

impl Readable<'_> {
    /// The column `name`, if the table has it and the policy lets the
    /// plugin read it.
    fn column(&self, name: &str) -> Result<&Column, RecordError> {
        let (reader, model) = (self.reader, self.model);
        let found = self.table.columns().iter().find(|c| c.name == name).ok_or_else(|| {
            RecordError::Invalid(format!("model {model} has no column \"{}\"", shown(name, naming::SHOWN)))
        })?;
        // The primary key is in every GlobalID anyway: always readable.
        match name == self.table.primary_key || grants::column_allowed(reader.grants, model, name) {
            true => Ok(found),
            false => {
                Err(RecordError::Denied(grants::column_denied(reader.grants, reader.plugin, model, name)))
            }
        }
    }

    /// The columns `names` asks for, or every readable one when empty.
    fn selected(&self, names: &[String]) -> Result<Vec<&Column>, RecordError> {
        let (reader, model, primary_key) = (self.reader, self.model, &self.table.primary_key);
        let columns: Vec<&Column> = if names.is_empty() {
            let readable =
                |c: &&Column| &c.name == primary_key || grants::column_allowed(reader.grants, model, &c.name);
            self.table.columns().iter().filter(readable).collect()
        } else {
            names.iter().map(|name| self.column(name)).collect::<Result<_, _>>()?
        };
        if columns.is_empty() {
            return Err(RecordError::Denied(format!(
                "plugin {} may read no column of model {model}",
                reader.plugin
            )));
        }
        Ok(columns)
    }

    /// The primary key column, which batched reads order and resume by.
    fn primary_key(&self) -> Result<&Column, RecordError> {
        let (model, key) = (self.model, &self.table.primary_key);
        self.table.columns().iter().find(|c| &c.name == key).ok_or_else(|| {
            RecordError::Invalid(format!(
                "model {model} has no primary key column \"{key}\" to read in batches by; \
                 name its primary key under [models] in the policy"
            ))
        })
    }

    fn has_primary_key(&self) -> bool {
        self.table.columns().iter().any(|c| c.name == self.table.primary_key)
    }
}

/// The pool, or why there is none.
fn connected(db: &Option<Database>) -> Result<&Database, RecordError> {
    db.as_ref().ok_or_else(|| {
        RecordError::Unavailable("no database is configured: start the runner with --database URL".into())
    })
}
