//! Granted new records: `insert` creates one row and returns its primary
//! key, as Active Record's `create!` does for an Active Storage variant's
//! blob, variant record and attachment.
//!
//! Only a policy file grants inserts, column by column (`inserts`); the
//! timestamps Active Record sets itself (`created_at`, `updated_at`) are
//! set here to UTC now when the table has them and the values don't. Names
//! are found in the live schema and values bound, and the statement goes
//! through the writing pool, as updates do.

use super::db::Database;
use super::schema;
use super::write::{Writer, bind_as};
use super::{MAX_COLUMNS, RecordError, Records, Table, connected, naming};
use crate::policy::records as grants;
use crate::untrusted::shown;
use serde_json::{Map, Value};

/// The timestamps Active Record fills in on create.
const TIMESTAMPS: [&str; 2] = ["created_at", "updated_at"];

impl Records {
    /// Creates a record of `model` with `values` and returns its primary
    /// key as text.
    pub async fn insert(
        &self,
        writer: Writer<'_>,
        model: &str,
        values: &Map<String, Value>,
    ) -> Result<String, RecordError> {
        let result = self.create(writer, model, values).await;
        let outcome = match &result {
            Ok(_) => "inserted",
            Err(RecordError::Denied(_)) => "denied",
            Err(RecordError::Invalid(_)) => "invalid",
            Err(RecordError::Unavailable(_)) => "unavailable",
        };
        // Only granted models become label values.
        let model = if matches!(result, Ok(_) | Err(RecordError::Unavailable(_))) { model } else { "-" };
        self.metrics.record_write(writer.plugin, model, "insert", outcome);
        result
    }

    async fn create(
        &self,
        writer: Writer<'_>,
        model: &str,
        values: &Map<String, Value>,
    ) -> Result<String, RecordError> {
        naming::check_model(model)?;
        check_grant(writer, model, values).map_err(RecordError::Denied)?;
        let db = connected(&self.writer)?;
        let table = self.table_of(connected(&self.db)?, model).await?;
        let (sql, params) = statement(db, &table, model, values)?;
        let key = db.insert(&sql, &params).await;
        if key.is_err() {
            // A failed insert may mean the schema changed: read it afresh next time.
            *self.schema.lock().await = None;
        }
        key
    }
}

/// Why the policy doesn't allow creating a `model` with `values`, if it
/// doesn't.
fn check_grant(writer: Writer<'_>, model: &str, values: &Map<String, Value>) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("plugin {} asked to create a {model} with no values", writer.plugin));
    }
    values.keys().try_for_each(|column| grants::check_insert(writer.inserts, writer.plugin, model, column))
}

/// The `INSERT` of one row of `table`, returning its key, and its bound
/// values.
fn statement(
    db: &Database,
    table: &Table,
    model: &str,
    values: &Map<String, Value>,
) -> Result<(String, Vec<schema::Param>), RecordError> {
    if values.len() > MAX_COLUMNS {
        return Err(RecordError::Invalid(format!(
            "{} columns given, more than the {MAX_COLUMNS} one insert may set",
            values.len()
        )));
    }
    let has = |name: &str| table.columns().iter().any(|c| c.name == name);
    let (mut names, mut sql_values, mut params) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in values {
        let column = table.columns().iter().find(|c| &c.name == name).ok_or_else(|| {
            RecordError::Invalid(format!("model {model} has no column \"{}\"", shown(name, naming::SHOWN)))
        })?;
        let value = match schema::write_param(value, column, &format_args!("{}.{name}", table.table))? {
            None => "NULL".to_string(),
            Some(param) => {
                params.push(param);
                bind_as(db, column, params.len())?
            }
        };
        names.push(db.quote(name));
        sql_values.push(value);
    }
    for stamp in TIMESTAMPS.into_iter().filter(|s| has(s) && !values.contains_key(*s)) {
        names.push(db.quote(stamp));
        sql_values.push(db.now_utc().to_string());
    }
    if !has(&table.primary_key) {
        return Err(RecordError::Invalid(format!(
            "model {model}: table {} has no primary key column {}",
            table.table, table.primary_key
        )));
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}){}",
        db.quote(&table.table),
        names.join(", "),
        sql_values.join(", "),
        db.returning(&table.primary_key)
    );
    Ok((sql, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::WriteGrants;
    use crate::records::db::Access;
    use crate::records::schema::{Param, Schema};
    use serde_json::json;
    use std::sync::Arc;

    fn variant_records() -> Table {
        let rows = [("id", "bigint"), ("blob_id", "bigint"), ("variation_digest", "character varying")];
        let mut rows: Vec<_> = rows
            .map(|(c, t)| ("active_storage_variant_records".to_string(), c.to_string(), t.to_string()))
            .to_vec();
        rows.push(("active_storage_variant_records".into(), "created_at".into(), "timestamp(6)".into()));
        Table {
            table: "active_storage_variant_records".into(),
            primary_key: "id".into(),
            schema: Arc::new(Schema::from_rows(rows)),
        }
    }

    #[tokio::test]
    async fn inserts_bind_every_value_stamp_the_time_and_return_the_key() {
        let values = json!({"blob_id": 7, "variation_digest": "abc="});
        let values = values.as_object().unwrap();
        let pg = Database::connect_lazy("postgres://u@127.0.0.1:1/shop", 1, Access::Write).unwrap();
        let (sql, params) =
            statement(&pg, &variant_records(), "ActiveStorage::VariantRecord", values).unwrap();
        assert_eq!(
            sql,
            r#"INSERT INTO "active_storage_variant_records" ("blob_id", "variation_digest", "created_at") VALUES ($1, $2, (now() AT TIME ZONE 'UTC')) RETURNING CAST("id" AS TEXT)"#
        );
        assert_eq!(params, [Param::Int(7), Param::Text("abc=".into())]);
        // MySQL has no RETURNING: the key is the connection's last insert id.
        let mysql = Database::connect_lazy("mysql://u@127.0.0.1:1/shop", 1, Access::Write).unwrap();
        let (sql, _) = statement(&mysql, &variant_records(), "ActiveStorage::VariantRecord", values).unwrap();
        assert!(sql.ends_with("VALUES (?, ?, UTC_TIMESTAMP(6))"), "{sql}");
        let sqlite = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Write).unwrap();
        let bad = json!({"blob_id": 7, "nope": 1});
        let err =
            statement(&sqlite, &variant_records(), "ActiveStorage::VariantRecord", bad.as_object().unwrap());
        assert!(matches!(err, Err(RecordError::Invalid(m)) if m.contains("\"nope\"")));
    }

    #[test]
    fn only_granted_columns_go_into_a_new_record() {
        let inserts =
            WriteGrants::from([("ActiveStorage::VariantRecord".to_string(), vec!["blob_id".to_string()])]);
        let writes = WriteGrants::new();
        let writer = Writer { plugin: "storage", writes: &writes, deletes: &[], inserts: &inserts };
        let ok = json!({"blob_id": 1});
        assert!(check_grant(writer, "ActiveStorage::VariantRecord", ok.as_object().unwrap()).is_ok());
        let id = json!({"blob_id": 1, "id": 5});
        let err = check_grant(writer, "ActiveStorage::VariantRecord", id.as_object().unwrap()).unwrap_err();
        assert!(err.contains("column id"), "{err}");
        assert!(check_grant(writer, "ActiveStorage::VariantRecord", &Map::new()).is_err());
    }
}
