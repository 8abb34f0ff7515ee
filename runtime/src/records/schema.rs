//! The live schema: which tables and columns the database has, and of
//! which kind. Table and column names reach SQL only after they are found
//! here, and values are converted to their column's kind before they are
//! bound, so that `WHERE order_id = $1` compares like with like.

use super::RecordError;
use serde_json::Value;
use std::collections::HashMap;

/// How a column's values are compared and bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Float,
    Bool,
    Text,
    /// Anything else (uuid, timestamps...): compared as text.
    Other,
}

impl Kind {
    /// The kind of a column from its declared type, as any of the three
    /// databases spells it.
    pub fn from_type(declared: &str) -> Kind {
        let t = declared.to_ascii_lowercase();
        // By whole words, not by "int" anywhere: PostgreSQL's `interval`
        // and `point` are no integers.
        if t.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| INTEGER_WORDS.contains(&word)) {
            Kind::Integer
        } else if ["real", "floa", "doub", "numeric", "decimal"].iter().any(|f| t.contains(f)) {
            Kind::Float
        } else if t.starts_with("bool") {
            Kind::Bool
        } else if t.contains("char") || t.contains("text") || t.contains("clob") || t.is_empty() {
            Kind::Text
        } else {
            Kind::Other
        }
    }
}

/// The words that make a declared type an integer, in SQLite (`INTEGER`,
/// `UNSIGNED BIG INT`), PostgreSQL (`int4`, `bigserial`) and MySQL
/// (`bigint(20) unsigned`).
const INTEGER_WORDS: &[&str] = &[
    "int",
    "integer",
    "tinyint",
    "smallint",
    "mediumint",
    "bigint",
    "int2",
    "int4",
    "int8",
    "serial",
    "smallserial",
    "bigserial",
];

/// One column.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// Its type as the database declared it (`jsonb`, `timestamp(6)
    /// without time zone`), to cast a written text to.
    pub declared: String,
}

/// Every readable table and its columns, in the database's order.
#[derive(Debug, Default)]
pub struct Schema {
    pub tables: HashMap<String, Vec<Column>>,
}

impl Schema {
    /// Builds a schema from (table, column, declared type) rows.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, String, String)>) -> Schema {
        let mut tables: HashMap<String, Vec<Column>> = HashMap::new();
        for (table, name, declared) in rows {
            let kind = Kind::from_type(&declared);
            tables.entry(table).or_default().push(Column { name, kind, declared });
        }
        Schema { tables }
    }
}

/// A value ready to bind.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

/// Converts `value` for comparison with a column of `kind`. Strings of
/// digits match integer columns, as GlobalID ids are strings.
///
/// `what` names the column for the error (`orders.id`); it is formatted
/// only when there is an error to name it in.
pub fn param(value: &Value, kind: Kind, what: &dyn std::fmt::Display) -> Result<Param, RecordError> {
    let mismatch = || RecordError::Invalid(format!("{value} can't be compared with {what} ({kind:?})"));
    Ok(match (kind, value) {
        (Kind::Integer, Value::Number(n)) => Param::Int(n.as_i64().ok_or_else(mismatch)?),
        (Kind::Integer, Value::String(s)) => Param::Int(s.trim().parse().map_err(|_| mismatch())?),
        (Kind::Float, Value::Number(n)) => Param::Float(n.as_f64().ok_or_else(mismatch)?),
        (Kind::Float, Value::String(s)) => Param::Float(s.trim().parse().map_err(|_| mismatch())?),
        (Kind::Bool, Value::Bool(b)) => Param::Bool(*b),
        (Kind::Text | Kind::Other, Value::String(s)) => Param::Text(s.clone()),
        (Kind::Text | Kind::Other, Value::Number(n)) => Param::Text(n.to_string()),
        _ => return Err(mismatch()),
    })
}

/// Converts `value` for writing to `column`: `None` for `null`, and an
/// object or array as its JSON text for a text or JSON column (Active
/// Storage's `metadata` is JSON in a text column).
pub fn write_param(
    value: &Value,
    column: &Column,
    what: &dyn std::fmt::Display,
) -> Result<Option<Param>, RecordError> {
    match (column.kind, value) {
        (_, Value::Null) => Ok(None),
        (Kind::Text | Kind::Other, Value::Object(_) | Value::Array(_)) => {
            Ok(Some(Param::Text(value.to_string())))
        }
        (Kind::Text | Kind::Other, Value::Bool(b)) => Ok(Some(Param::Text(b.to_string()))),
        (kind, value) => param(value, kind, what).map(Some),
    }
}

/// Whether a declared type may be written into SQL as a cast target: it
/// came from the database, but only plain type names are taken.
pub fn castable(declared: &str) -> bool {
    let plain = declared.chars().all(|c| c.is_ascii_alphanumeric() || " _(),".contains(c));
    plain
        && !declared.is_empty()
        && !["user-defined", "array"].contains(&declared.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_from_declared_types() {
        for (declared, kind) in [
            ("INTEGER", Kind::Integer),
            ("bigint", Kind::Integer),
            ("decimal(10,2)", Kind::Float),
            ("numeric", Kind::Float),
            ("double precision", Kind::Float),
            ("character varying", Kind::Text),
            ("varchar", Kind::Text),
            ("boolean", Kind::Bool),
            ("uuid", Kind::Other),
            ("timestamp without time zone", Kind::Other),
            ("bigint(20) unsigned", Kind::Integer),
            ("UNSIGNED BIG INT", Kind::Integer),
            ("int4", Kind::Integer),
            ("interval", Kind::Other),
            ("point", Kind::Other),
            ("interval day to second", Kind::Other),
        ] {
            assert_eq!(Kind::from_type(declared), kind, "{declared}");
        }
    }

    #[test]
    fn values_take_their_columns_kind() {
        assert_eq!(param(&json!("42"), Kind::Integer, &"orders.id").unwrap(), Param::Int(42));
        assert_eq!(param(&json!(42), Kind::Text, &"t.c").unwrap(), Param::Text("42".into()));
        let err = param(&json!("1 OR 1=1"), Kind::Integer, &"orders.id").unwrap_err();
        assert!(matches!(err, RecordError::Invalid(m) if m.contains("orders.id")));
        assert!(param(&json!({"a": 1}), Kind::Text, &"t.c").is_err());
    }

    #[test]
    fn written_values_take_their_columns_kind() {
        let column = |kind| Column { name: "c".into(), kind, declared: String::new() };
        let metadata = write_param(&json!({"width": 2}), &column(Kind::Text), &"t.c").unwrap();
        assert_eq!(metadata, Some(Param::Text(r#"{"width":2}"#.into())));
        assert_eq!(write_param(&json!(null), &column(Kind::Integer), &"t.c").unwrap(), None);
        assert_eq!(write_param(&json!("7"), &column(Kind::Integer), &"t.c").unwrap(), Some(Param::Int(7)));
        assert!(write_param(&json!({"a": 1}), &column(Kind::Integer), &"t.c").is_err());
        assert!(castable("timestamp(6) without time zone") && castable("jsonb"));
        assert!(!castable("USER-DEFINED") && !castable("text); DROP TABLE x; --"));
    }
}
