//! Granted changes to the app's rows: `update` sets columns of one record
//! found by its primary key, `delete` removes one.
//!
//! Only a policy file grants changes, column by column for updates and
//! model by model for deletes, so that an Active Storage plugin may write a
//! blob's `metadata` and nothing else. Names are found in the live schema
//! and values bound, as for reads; the statements go through their own
//! pool, since the reading one is read-only by construction. As Active
//! Record's `update` does, an update also sets `updated_at` when the table
//! has one and the changes don't name it.

use super::db::Database;
use super::schema::{self, Column, Kind, Param};
use super::{MAX_COLUMNS, RecordError, Records, Table, connected, naming};
use crate::policy::WriteGrants;
use crate::policy::records as grants;
use crate::untrusted::shown;
use serde_json::{Map, Value};

/// Who is changing rows: the plugin's name and what its policy grants.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    pub plugin: &'a str,
    pub writes: &'a WriteGrants,
    pub deletes: &'a [String],
    /// The columns of each model the plugin may give a new record.
    pub inserts: &'a WriteGrants,
}

/// One change to one record.
#[derive(Clone, Copy)]
pub enum Change<'a> {
    /// Set these columns to these values.
    Update(&'a Map<String, Value>),
    /// Delete the record.
    Delete,
}

impl Change<'_> {
    /// The operation's name, for metrics and logs.
    pub fn op(&self) -> &'static str {
        match self {
            Change::Update(_) => "update",
            Change::Delete => "delete",
        }
    }
}

impl Records {
    /// Makes `change` to the record of `model` whose primary key is `id`;
    /// `false` when there is no such record.
    pub async fn change(
        &self,
        writer: Writer<'_>,
        model: &str,
        id: &Value,
        change: Change<'_>,
    ) -> Result<bool, RecordError> {
        let result = self.apply(writer, model, id, change).await;
        let outcome = match &result {
            Ok(true) => "changed",
            Ok(false) => "not_found",
            Err(RecordError::Denied(_)) => "denied",
            Err(RecordError::Invalid(_)) => "invalid",
            Err(RecordError::Unavailable(_)) => "unavailable",
        };
        // Only granted models become label values.
        let model = if matches!(result, Ok(_) | Err(RecordError::Unavailable(_))) { model } else { "-" };
        self.metrics.record_write(writer.plugin, model, change.op(), outcome);
        result
    }

    async fn apply(
        &self,
        writer: Writer<'_>,
        model: &str,
        id: &Value,
        change: Change<'_>,
    ) -> Result<bool, RecordError> {
        naming::check_model(model)?;
        check_grant(writer, model, change).map_err(RecordError::Denied)?;
        let db = connected(&self.writer)?;
        let table = self.table_of(connected(&self.db)?, model).await?;
        let statement = Statement::new(db, &table, model, id, change)?;
        let changed = db.execute(&statement.sql, &statement.params).await;
        if changed.is_err() {
            // A failed change may mean the schema changed: read it afresh next time.
            *self.schema.lock().await = None;
        }
        Ok(changed? > 0)
    }
}

/// Why the policy doesn't allow `change`, if it doesn't.
fn check_grant(writer: Writer<'_>, model: &str, change: Change<'_>) -> Result<(), String> {
    match change {
        Change::Update(changes) => {
            if changes.is_empty() {
                return Err(format!(
                    "plugin {} asked to update model {model} with no changes",
                    writer.plugin
                ));
            }
            changes
                .keys()
                .try_for_each(|column| grants::check_write(writer.writes, writer.plugin, model, column))
        }
        Change::Delete => grants::check_delete(writer.deletes, writer.plugin, model),
    }
}

/// An `UPDATE` or `DELETE` of one row and its bound values.
struct Statement {
    sql: String,
    params: Vec<Param>,
}

impl Statement {
    fn new(
        db: &Database,
        table: &Table,
        model: &str,
        id: &Value,
        change: Change<'_>,
    ) -> Result<Statement, RecordError> {
        let column = |name: &str| -> Result<&Column, RecordError> {
            table.columns().iter().find(|c| c.name == name).ok_or_else(|| {
                RecordError::Invalid(format!(
                    "model {model} has no column \"{}\"",
                    shown(name, naming::SHOWN)
                ))
            })
        };
        let q = |name: &str| db.quote(name);
        let mut params = Vec::new();
        let mut sql = match change {
            Change::Update(changes) => {
                if changes.len() > MAX_COLUMNS {
                    return Err(RecordError::Invalid(format!(
                        "{} columns changed, more than the {MAX_COLUMNS} one update may change",
                        changes.len()
                    )));
                }
                let mut sets = Vec::new();
                for (name, value) in changes {
                    let column = column(name)?;
                    let value =
                        match schema::write_param(value, column, &format_args!("{}.{name}", table.table))? {
                            None => "NULL".to_string(),
                            Some(param) => {
                                params.push(param);
                                bind_as(db, column, params.len())?
                            }
                        };
                    sets.push(format!("{} = {value}", q(name)));
                }
                let stamped = changes.contains_key("updated_at") || column("updated_at").is_err();
                if !stamped {
                    sets.push(format!("{} = {}", q("updated_at"), db.now_utc()));
                }
                format!("UPDATE {} SET {}", q(&table.table), sets.join(", "))
            }
            Change::Delete => format!("DELETE FROM {}", q(&table.table)),
        };
        let key = column(&table.primary_key)?;
        params.push(schema::param(id, key.kind, &format_args!("{}.{}", table.table, key.name))?);
        let placeholder = db.placeholder(params.len());
        let key_sql = match (db, key.kind) {
            (Database::Postgres(_), Kind::Other) => format!("CAST({} AS TEXT) = {placeholder}", q(&key.name)),
            _ => format!("{} = {placeholder}", q(&key.name)),
        };
        sql.push_str(&format!(" WHERE {key_sql}"));
        Ok(Statement { sql, params })
    }
}

/// The `n`th placeholder as a value for `column`. PostgreSQL takes a text
/// into a JSON, timestamp or uuid column only with a cast to its type.
pub(super) fn bind_as(db: &Database, column: &Column, n: usize) -> Result<String, RecordError> {
    let placeholder = db.placeholder(n);
    match (db, column.kind) {
        (Database::Postgres(_), Kind::Other) if schema::castable(&column.declared) => {
            Ok(format!("CAST({placeholder} AS {})", column.declared))
        }
        (Database::Postgres(_), Kind::Other) => Err(RecordError::Invalid(format!(
            "column {} is of type {}, which the runner can't write",
            column.name,
            shown(&column.declared, naming::SHOWN)
        ))),
        _ => Ok(placeholder),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::db::Access;
    use crate::records::schema::Schema;
    use serde_json::json;
    use std::sync::Arc;

    fn blobs() -> Table {
        let rows = [("id", "bigint"), ("metadata", "text"), ("created_at", "timestamp(6) without time zone")];
        let rows = rows.map(|(c, t)| ("active_storage_blobs".to_string(), c.to_string(), t.to_string()));
        Table {
            table: "active_storage_blobs".into(),
            primary_key: "id".into(),
            schema: Arc::new(Schema::from_rows(rows)),
        }
    }

    #[tokio::test]
    async fn updates_bind_every_value_and_cast_where_postgres_needs_it() {
        let pg = Database::connect_lazy("postgres://u@127.0.0.1:1/shop", 1, Access::Write).unwrap();
        let changes = json!({"metadata": {"width": 2}, "created_at": "2026-12-04 16:00:00"});
        let changes = changes.as_object().unwrap();
        let update =
            Statement::new(&pg, &blobs(), "ActiveStorage::Blob", &json!("7"), Change::Update(changes))
                .unwrap();
        assert_eq!(
            update.sql,
            r#"UPDATE "active_storage_blobs" SET "metadata" = $1, "created_at" = CAST($2 AS timestamp(6) without time zone) WHERE "id" = $3"#
        );
        assert_eq!(update.params.last(), Some(&Param::Int(7)));
        let sqlite = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Write).unwrap();
        let delete =
            Statement::new(&sqlite, &blobs(), "ActiveStorage::Blob", &json!(7), Change::Delete).unwrap();
        assert_eq!(delete.sql, r#"DELETE FROM "active_storage_blobs" WHERE "id" = ?"#);
        let bad = json!({"nope": 1});
        let err = Statement::new(
            &sqlite,
            &blobs(),
            "ActiveStorage::Blob",
            &json!(7),
            Change::Update(bad.as_object().unwrap()),
        );
        assert!(matches!(err, Err(RecordError::Invalid(m)) if m.contains("\"nope\"")));
    }

    #[test]
    fn only_granted_columns_and_models_change() {
        let writes = WriteGrants::from([("ActiveStorage::Blob".to_string(), vec!["metadata".to_string()])]);
        let writer =
            Writer { plugin: "storage", writes: &writes, deletes: &[], inserts: &WriteGrants::new() };
        let ok = json!({"metadata": "{}"});
        assert!(check_grant(writer, "ActiveStorage::Blob", Change::Update(ok.as_object().unwrap())).is_ok());
        let key = json!({"metadata": "{}", "key": "x"});
        let err =
            check_grant(writer, "ActiveStorage::Blob", Change::Update(key.as_object().unwrap())).unwrap_err();
        assert!(err.contains("column key"), "{err}");
        assert!(check_grant(writer, "ActiveStorage::Blob", Change::Delete).unwrap_err().contains("delete"));
        assert!(check_grant(writer, "ActiveStorage::Blob", Change::Update(&Map::new())).is_err());
    }
}
