//! The SQL text of each shape of read, made once and reused.
//!
//! A plugin reads the same few shapes over and over (a webhook job reads its
//! endpoint's `url` by id, every time), and building the statement's text
//! (quoting each name, formatting each condition) took about 3 µs of a
//! 190 µs webhook delivery. The text depends only on the read's shape: the
//! database, the table, the columns, the filtered columns with their kinds,
//! each filter's test and how many values it binds, the order and the limit,
//! never on the bound values. So it is kept by that shape, and the same
//! text goes to the database each time, which also lets the database's own
//! statement cache find it.

use super::db::{Database, Select, Test};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The most shapes kept; past it the memo starts over, so a plugin reading
/// ever new shapes can't grow it without bound.
const MOST_SHAPES: usize = 512;

/// Statement texts by the shape of their read.
#[derive(Default)]
pub struct Statements {
    texts: Mutex<HashMap<String, Arc<str>>>,
}

impl Statements {
    /// The text of `select` on `db`, made on the first read of its shape.
    pub fn text(&self, db: &Database, select: &Select<'_>) -> Arc<str> {
        let key = shape(db, select);
        if let Some(text) = self.texts.lock().expect("statements lock").get(&key) {
            return text.clone();
        }
        let text: Arc<str> = db.sql(select).into();
        let mut texts = self.texts.lock().expect("statements lock");
        if texts.len() >= MOST_SHAPES {
            texts.clear();
        }
        texts.insert(key, text.clone());
        text
    }
}

/// Everything [`Database::sql`] reads of `select`, as one string: each part
/// ends in NUL, which no table, column or type name holds, and the columns
/// and filters are counted, so two shapes never make the same string.
fn shape(db: &Database, select: &Select<'_>) -> String {
    let mut key = String::with_capacity(96);
    let (table, order_by, limit) = (select.table, select.order_by, select.limit);
    let (columns, filters) = (select.columns.len(), select.filters.len());
    let _ = write!(key, "{}\0{table}\0{order_by}\0{limit}\0{columns}\0{filters}\0", db.kind());
    for column in select.columns {
        key.push_str(&column.name);
        key.push('\0');
    }
    for filter in select.filters {
        let column = filter.column;
        let (test, values) = match &filter.test {
            Test::Equals(_) => ("=", 1),
            Test::Null => ("null", 0),
            Test::AtLeast(_) => (">=", 1),
            Test::Below(_) => ("<", 1),
            Test::After(_) => (">", 1),
            Test::OneOf(values) => ("in", values.len()),
        };
        let kind = column.kind as u8;
        let _ = write!(key, "{}\0{kind}\0{}\0{test} {values}\0", column.name, column.declared);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::db::tests::col;
    use crate::records::db::{Access, Filter};
    use crate::records::schema::{Column, Kind, Param};

    #[tokio::test]
    async fn a_shape_read_again_gets_the_same_text_and_another_shape_its_own() {
        let db = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Read).unwrap();
        let (id, url, email) = (col("id", Kind::Integer), col("url", Kind::Text), col("email", Kind::Text));
        let statements = Statements::default();
        let equals = |value| [Filter { column: &id, test: Test::Equals(Param::Int(value)) }];
        let one_of = |n| [Filter { column: &id, test: Test::OneOf(vec![Param::Int(1); n]) }];
        let (one, two, in_two, in_three) = (equals(1), equals(2), one_of(2), one_of(3));
        let (u, ue, e) = ([&url], [&url, &email], [&email]);
        let read = |columns, filters, limit| Select { table: "t", columns, filters, order_by: "id", limit };

        let first = statements.text(&db, &read(&u, &one, 1));
        let again = statements.text(&db, &read(&u, &two, 1));
        assert!(Arc::ptr_eq(&first, &again), "another value, the same shape: the text is reused");
        let shapes = [
            read(&u, &one, 1),
            read(&u, &one, 5),
            read(&ue, &one, 1),
            read(&e, &one, 1),
            read(&u, &in_two, 1),
            read(&u, &in_three, 1),
            read(&u, &[], 1),
        ];
        for select in &shapes {
            assert_eq!(&*statements.text(&db, select), db.sql(select));
        }
        assert_eq!(statements.texts.lock().unwrap().len(), shapes.len());
    }

    #[tokio::test]
    async fn a_column_of_another_kind_is_another_shape() {
        // PostgreSQL compares a column of another kind as text: its kind
        // and declared type are part of the shape.
        let db = Database::connect_lazy("postgres://u@127.0.0.1:1/shop", 1, Access::Read).unwrap();
        let statements = Statements::default();
        let text = col("ref", Kind::Text);
        let uuid = Column { name: "ref".into(), kind: Kind::Other, declared: "uuid".into() };
        for column in [&text, &uuid] {
            let filters = [Filter { column, test: Test::Equals(Param::Text("x".into())) }];
            let select =
                Select { table: "t", columns: &[column], filters: &filters, order_by: "ref", limit: 1 };
            assert_eq!(&*statements.text(&db, &select), db.sql(&select));
        }
    }

    #[tokio::test]
    async fn past_the_most_shapes_the_memo_starts_over() {
        let db = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Read).unwrap();
        let statements = Statements::default();
        let id = col("id", Kind::Integer);
        for limit in 0..(MOST_SHAPES as u32 + 10) {
            let select = Select { table: "t", columns: &[&id], filters: &[], order_by: "id", limit };
            statements.text(&db, &select);
        }
        assert!(statements.texts.lock().unwrap().len() <= MOST_SHAPES);
    }
}
