//! Batched reads, for jobs that go through many rows: a scan in primary key
//! order that resumes after the last key it gave (Rails' `find_in_batches`,
//! keyset pagination, never an OFFSET), and many records by their keys
//! (`where(id: [...])`). Each batch is one query under the same policy,
//! schema checks, bound values and timeouts as a single read.

use super::db::{Filter, Select, Test};
use super::{MAX_COLUMNS, MAX_ROWS, Readable, Reader, RecordError, Records, schema};
use serde_json::{Map, Value};

/// One batch of a scan: which rows, from where, how many.
pub struct Scan<'a> {
    pub model: &'a str,
    /// Columns and the values they must equal (`null`: `IS NULL`).
    pub equal: &'a Map<String, Value>,
    /// One column's bounds.
    pub range: Option<Bounds<'a>>,
    /// The columns to return; empty for every permitted one. The primary
    /// key is always among them.
    pub columns: &'a [String],
    /// The primary key the previous batch ended with.
    pub after: Option<&'a Value>,
    /// At most [`MAX_ROWS`].
    pub size: u32,
}

/// Values of `column` at least `from` and below `until`.
pub struct Bounds<'a> {
    pub column: &'a str,
    pub from: Option<&'a Value>,
    pub until: Option<&'a Value>,
}

/// Rows as JSON texts, and the last one's primary key as text.
#[derive(Debug, Default)]
pub struct Batch {
    pub rows: Vec<String>,
    pub last_key: Option<String>,
}

impl Records {
    /// The batch `scan` asks for.
    pub async fn scan(&self, reader: Reader<'_>, scan: &Scan<'_>) -> Result<Batch, RecordError> {
        let result = self.run_scan(reader, scan).await;
        self.count_read(reader, scan.model, &result.as_ref().map(|batch| batch.rows.len()));
        result
    }

    /// The records of `model` whose primary keys are `ids`, in key order;
    /// keys with no record are left out.
    pub async fn find_many(
        &self,
        reader: Reader<'_>,
        model: &str,
        ids: &[Value],
        columns: &[String],
    ) -> Result<Vec<String>, RecordError> {
        let result = self.run_find_many(reader, model, ids, columns).await;
        self.count_read(reader, model, &result.as_ref().map(Vec::len));
        result
    }

    async fn run_scan(&self, reader: Reader<'_>, scan: &Scan<'_>) -> Result<Batch, RecordError> {
        if scan.size > MAX_ROWS {
            return Err(RecordError::Invalid(format!(
                "a batch of {} rows asked for, more than the {MAX_ROWS} one batch may hold",
                scan.size
            )));
        }
        if scan.equal.len() > MAX_COLUMNS {
            return Err(RecordError::Invalid(format!(
                "{} conditions, more than the {MAX_COLUMNS} one read may have",
                scan.equal.len()
            )));
        }
        let (db, readable) = self.readable(reader, scan.model, scan.columns.len()).await?;
        let key = readable.primary_key()?;
        let mut filters = Vec::with_capacity(scan.equal.len() + 3);
        for (name, value) in scan.equal {
            let column = readable.column(name)?;
            let test = match value {
                Value::Null => Test::Null,
                value => Test::Equals(param(&readable, column, value)?),
            };
            filters.push(Filter { column, test });
        }
        if let Some(range) = &scan.range {
            let column = readable.column(range.column)?;
            if let Some(from) = range.from {
                filters.push(Filter { column, test: Test::AtLeast(param(&readable, column, from)?) });
            }
            if let Some(until) = range.until {
                filters.push(Filter { column, test: Test::Below(param(&readable, column, until)?) });
            }
        }
        if let Some(after) = scan.after {
            filters.push(Filter { column: key, test: Test::After(param(&readable, key, after)?) });
        }
        let columns = with_key(readable.selected(scan.columns)?, key);
        if scan.size == 0 {
            return Ok(Batch::default());
        }
        let table = &readable.table;
        let select = Select {
            table: &table.table,
            columns: &columns,
            filters: &filters,
            order_by: &key.name,
            limit: scan.size,
        };
        let rows = self.select(db, &select).await?;
        let last_key = rows.last().map(|row| key_of(row, &key.name)).transpose()?;
        Ok(Batch { rows, last_key })
    }

    async fn run_find_many(
        &self,
        reader: Reader<'_>,
        model: &str,
        ids: &[Value],
        columns: &[String],
    ) -> Result<Vec<String>, RecordError> {
        if ids.len() > MAX_ROWS as usize {
            return Err(RecordError::Invalid(format!(
                "{} keys asked for, more than the {MAX_ROWS} one read may name",
                ids.len()
            )));
        }
        let (db, readable) = self.readable(reader, model, columns.len()).await?;
        let key = readable.primary_key()?;
        let params = ids.iter().map(|id| param(&readable, key, id)).collect::<Result<Vec<_>, _>>()?;
        let columns = with_key(readable.selected(columns)?, key);
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let limit = params.len() as u32;
        let filters = [Filter { column: key, test: Test::OneOf(params) }];
        let table = &readable.table;
        let select =
            Select { table: &table.table, columns: &columns, filters: &filters, order_by: &key.name, limit };
        self.select(db, &select).await
    }
}

/// `value` bound for `column` of the readable table.
fn param(
    readable: &Readable<'_>,
    column: &schema::Column,
    value: &Value,
) -> Result<schema::Param, RecordError> {
    schema::param(value, column.kind, &format_args!("{}.{}", readable.table.table, column.name))
}

/// `columns`, with the primary key first unless it is among them: a batch's
/// rows always carry the key the next batch starts after.
fn with_key<'a>(mut columns: Vec<&'a schema::Column>, key: &'a schema::Column) -> Vec<&'a schema::Column> {
    if !columns.iter().any(|c| c.name == key.name) {
        columns.insert(0, key);
    }
    columns
}

/// The primary key of the JSON text `row`, as text.
fn key_of(row: &str, key: &str) -> Result<String, RecordError> {
    let missing = || RecordError::Unavailable(format!("a row came back without its primary key {key}"));
    let row: Value = serde_json::from_str(row).map_err(|_| missing())?;
    match row.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(missing()),
        Some(other) => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_the_last_rows_key_as_text() {
        assert_eq!(key_of(r#"{"id":42,"total":"9.50"}"#, "id").unwrap(), "42");
        assert_eq!(key_of(r#"{"uuid":"0b9e-77"}"#, "uuid").unwrap(), "0b9e-77");
        assert!(key_of(r#"{"total":1}"#, "id").is_err());
    }
}
