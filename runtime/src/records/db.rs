//! The connection to the app's database: SQLite, PostgreSQL or MySQL, and
//! the few statements `records` runs.
//!
//! Reads go through a pool that is read-only by construction: SQLite is
//! opened read-only; PostgreSQL sessions start with
//! `default_transaction_read_only`; MySQL and MariaDB sessions with
//! `SET SESSION TRANSACTION READ ONLY`. Granted changes go through a second
//! pool of [`Access::Write`] connections, opened only when a change is
//! made. Every session has a statement timeout (`statement_timeout`,
//! MySQL's `max_execution_time`, MariaDB's `max_statement_time`), and every
//! query also runs under [`QUERY_TIMEOUT`] on our side. Rows come back as
//! JSON text built by the database itself, so each value keeps the type the
//! database gave it.

use super::RecordError;
use super::schema::{self, Column, Kind, Param, Schema};
use anyhow::{Context, Result, bail};
use sqlx::Executor;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The longest one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a query waits for a free connection, or for a new one.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a pool's sessions may change anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A pool of connections, read-only unless made with [`Access::Write`].
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// One query: the columns of one table's rows that pass every filter, in
/// one column's order.
pub struct Select<'a> {
    pub table: &'a str,
    pub columns: &'a [&'a Column],
    pub filters: &'a [Filter<'a>],
    pub order_by: &'a str,
    pub limit: u32,
}

impl Select<'_> {
    /// The values its filters bind, in order.
    pub fn params(&self) -> Vec<Param> {
        self.filters.iter().flat_map(|f| f.test.params()).cloned().collect()
    }
}

/// One condition of a [`Select`]: `column` compared with bound values.
pub struct Filter<'a> {
    pub column: &'a Column,
    pub test: Test,
}

/// How a [`Filter`] compares its column.
#[derive(Clone, Debug)]
pub enum Test {
    Equals(Param),
    /// `IS NULL`, as Rails writes `where(deleted_at: nil)`.
    Null,
    AtLeast(Param),
    Below(Param),
    After(Param),
    /// One of the values (at least one).
    OneOf(Vec<Param>),
}

impl Test {
    fn params(&self) -> &[Param] {
        match self {
            Test::Equals(p) | Test::AtLeast(p) | Test::Below(p) | Test::After(p) => std::slice::from_ref(p),
            Test::OneOf(params) => params,
            Test::Null => &[],
        }
    }
}

/// `query` with `params` bound, for whichever pool it then runs on.
macro_rules! bound {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Float(v) => query.bind(*v),
                Param::Bool(v) => query.bind(*v),
                Param::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }};
}

impl Database {
    /// A lazily connecting pool of at most `max` connections for `url`
    /// (`sqlite://PATH`, `postgres://...`, `mysql://...`). Only the URL is
    /// checked here: an unreachable database fails each query retryably.
    pub fn connect_lazy(url: &str, max: u32, access: Access) -> Result<Database> {
        let read_only = access == Access::Read;
        let shown = crate::secret::redact_url(url);
        let invalid = || format!("--database {shown} is not a valid database URL");
        let timeout_ms = QUERY_TIMEOUT.as_millis().to_string();
        Ok(match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("sqlite") => {
                let options = SqliteConnectOptions::from_str(url).with_context(invalid)?.read_only(read_only);
                let pool = SqlitePoolOptions::new().max_connections(max).acquire_timeout(ACQUIRE_TIMEOUT);
                Database::Sqlite(pool.connect_lazy_with(options))
            }
            Some("postgres" | "postgresql") => {
                let options = PgConnectOptions::from_str(url).with_context(invalid)?.options([
                    ("default_transaction_read_only", if read_only { "on" } else { "off" }),
                    ("statement_timeout", timeout_ms.as_str()),
                ]);
                let pool = PgPoolOptions::new().max_connections(max).acquire_timeout(ACQUIRE_TIMEOUT);
                Database::Postgres(pool.connect_lazy_with(options))
            }
            Some("mysql" | "mariadb") => {
                let options = MySqlConnectOptions::from_str(url).with_context(invalid)?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |conn, _| {
                        // MySQL calls the statement timeout max_execution_time (ms),
                        // MariaDB max_statement_time (s).
                        let mysql = format!("SET SESSION max_execution_time = {}", QUERY_TIMEOUT.as_millis());
                        let mariadb = format!("SET SESSION max_statement_time = {}", QUERY_TIMEOUT.as_secs());
                        Box::pin(async move {
                            if read_only {
                                conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                            }
                            if conn.execute(mysql.as_str()).await.is_err() {
                                conn.execute(mariadb.as_str()).await?;
                            }
                            Ok(())
                        })
                    });
                Database::MySql(pool.connect_lazy_with(options))
            }
            _ => bail!("--database {shown}: expected sqlite://PATH, postgres://... or mysql://..."),
        })
    }

    /// Which database this is, for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
            Database::MySql(_) => "mysql",
        }
    }

    /// Reads every table and column the connection may see.
    pub async fn schema(&self) -> Result<Schema, RecordError> {
        let rows: Vec<(String, String, String)> = timed(async {
            match self {
                Database::Sqlite(pool) => {
                    sqlx::query_as(
                        "SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                         WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
                    )
                    .fetch_all(pool)
                    .await
                }
                Database::Postgres(pool) => {
                    sqlx::query_as(
                        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                         WHERE table_schema = ANY (current_schemas(false)) ORDER BY table_name, ordinal_position",
                    )
                    .fetch_all(pool)
                    .await
                }
                Database::MySql(pool) => {
                    sqlx::query_as(
                        "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), CAST(data_type AS CHAR) \
                         FROM information_schema.columns WHERE table_schema = DATABASE() \
                         ORDER BY table_name, ordinal_position",
                    )
                    .fetch_all(pool)
                    .await
                }
            }
        })
        .await?;
        Ok(Schema::from_rows(rows))
    }

    /// Runs `sql`, the text of a [`Select`] (see [`Database::sql`]), with
    /// its `params`, and returns each row as the JSON text of an object.
    pub async fn select(&self, sql: &str, params: &[Param]) -> Result<Vec<String>, RecordError> {
        timed(async {
            match self {
                Database::Sqlite(pool) => {
                    bound!(sqlx::query_scalar::<_, String>(sql), params).fetch_all(pool).await
                }
                Database::Postgres(pool) => {
                    bound!(sqlx::query_scalar::<_, String>(sql), params).fetch_all(pool).await
                }
                Database::MySql(pool) => {
                    bound!(sqlx::query_scalar::<_, String>(sql), params).fetch_all(pool).await
                }
            }
        })
        .await
    }

    /// Runs a statement that changes rows and returns how many it changed.
    /// A change the database refuses (a foreign key, a unique index, a
    /// `NOT NULL`) is invalid input, not worth a retry.
    pub async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, RecordError> {
        refusable(async {
            Ok(match self {
                Database::Sqlite(pool) => {
                    bound!(sqlx::query(sql), params).execute(pool).await?.rows_affected()
                }
                Database::Postgres(pool) => {
                    bound!(sqlx::query(sql), params).execute(pool).await?.rows_affected()
                }
                Database::MySql(pool) => {
                    bound!(sqlx::query(sql), params).execute(pool).await?.rows_affected()
                }
            })
        })
        .await
    }

    /// Runs the `INSERT` of one row (SQLite and PostgreSQL with a
    /// `RETURNING` clause, see [`returning`]) and returns the new row's
    /// primary key as text; MySQL and MariaDB give theirs as the
    /// connection's last insert id. Refusals as for [`execute`].
    ///
    /// [`execute`]: Database::execute
    /// [`returning`]: Database::returning
    pub async fn insert(&self, sql: &str, params: &[Param]) -> Result<String, RecordError> {
        refusable(async {
            Ok(match self {
                Database::Sqlite(pool) => {
                    bound!(sqlx::query_scalar::<_, String>(sql), params).fetch_one(pool).await?
                }
                Database::Postgres(pool) => {
                    bound!(sqlx::query_scalar::<_, String>(sql), params).fetch_one(pool).await?
                }
                Database::MySql(pool) => {
                    bound!(sqlx::query(sql), params).execute(pool).await?.last_insert_id().to_string()
                }
            })
        })
        .await
    }

    /// The clause that makes an `INSERT` return the new row's `key` as
    /// text; none for MySQL, which has no `RETURNING` (see [`insert`]).
    ///
    /// [`insert`]: Database::insert
    pub fn returning(&self, key: &str) -> String {
        match self {
            Database::MySql(_) => String::new(),
            _ => format!(" RETURNING CAST({} AS TEXT)", self.quote(key)),
        }
    }

    /// The `n`th (from 1) bound parameter's placeholder.
    pub fn placeholder(&self, n: usize) -> String {
        match self {
            Database::Postgres(_) => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// The current time in UTC as Active Record stores timestamps.
    pub fn now_utc(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
            Database::Postgres(_) => "(now() AT TIME ZONE 'UTC')",
            Database::MySql(_) => "UTC_TIMESTAMP(6)",
        }
    }

    /// The statement for `select`. Every name in it was found in the live
    /// schema and is quoted besides; the value is always a bound parameter.
    pub fn sql(&self, s: &Select<'_>) -> String {
        let q = |name: &str| self.quote(name);
        let names: Vec<String> = s.columns.iter().map(|c| q(&c.name)).collect();
        let mut bound = 0;
        let conditions: Vec<String> = s.filters.iter().map(|f| self.condition(f, &mut bound)).collect();
        let mut filter = format!("FROM {}", q(s.table));
        if !conditions.is_empty() {
            filter = format!("{filter} WHERE {}", conditions.join(" AND "));
        }
        let filter = format!("{filter} ORDER BY {} LIMIT {}", q(s.order_by), s.limit);
        let pairs = |f: &dyn Fn(&str) -> String| {
            s.columns.iter().map(|c| format!("{}, {}", f(&c.name), q(&c.name))).collect::<Vec<_>>().join(", ")
        };
        match self {
            Database::Postgres(_) => {
                format!("SELECT row_to_json(r)::text FROM (SELECT {} {filter}) r", names.join(", "))
            }
            Database::Sqlite(_) => format!("SELECT json_object({}) {filter}", pairs(&literal)),
            Database::MySql(_) => {
                format!(
                    "SELECT CAST(JSON_OBJECT({}) AS CHAR) {filter}",
                    pairs(&|n| literal(&n.replace('\\', "\\\\")))
                )
            }
        }
    }

    /// `filter` as SQL, its values bound from placeholder `bound + 1` on.
    /// PostgreSQL compares a column of another kind (uuid, timestamp) as
    /// text for equality, and orders it as its own type, cast from the
    /// bound text, so that `created_at >= '2026-01-01'` uses its index.
    fn condition(&self, filter: &Filter<'_>, bound: &mut usize) -> String {
        let column = &filter.column;
        let quoted = self.quote(&column.name);
        let postgres_other = matches!(self, Database::Postgres(_)) && column.kind == Kind::Other;
        let ordered_as_its_type = postgres_other && schema::castable(&column.declared);
        let name = match &filter.test {
            Test::AtLeast(_) | Test::Below(_) | Test::After(_) if ordered_as_its_type => quoted,
            _ if postgres_other => format!("CAST({quoted} AS TEXT)"),
            _ => quoted,
        };
        let mut value = || {
            *bound += 1;
            match ordered_as_its_type && !matches!(filter.test, Test::Equals(_) | Test::OneOf(_)) {
                true => format!("CAST({} AS {})", self.placeholder(*bound), column.declared),
                false => self.placeholder(*bound),
            }
        };
        match &filter.test {
            Test::Null => format!("{} IS NULL", self.quote(&column.name)),
            Test::Equals(_) => format!("{name} = {}", value()),
            Test::AtLeast(_) => format!("{name} >= {}", value()),
            Test::Below(_) => format!("{name} < {}", value()),
            Test::After(_) => format!("{name} > {}", value()),
            Test::OneOf(params) => {
                let list: Vec<String> = params.iter().map(|_| value()).collect();
                format!("{name} IN ({})", list.join(", "))
            }
        }
    }

    /// `name` as a quoted identifier.
    pub fn quote(&self, name: &str) -> String {
        match self {
            Database::MySql(_) => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs a change under [`QUERY_TIMEOUT`]. One the database refuses (a
/// foreign key, a unique index, a `NOT NULL`) is invalid input, not worth
/// a retry; any other failure is.
async fn refusable<T>(change: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, RecordError> {
    timed(async {
        match change.await {
            Err(sqlx::Error::Database(err)) if err.kind() != sqlx::error::ErrorKind::Other => {
                Ok(Err(RecordError::Invalid(format!("the database refused the change: {err}"))))
            }
            other => other.map(Ok),
        }
    })
    .await?
}

/// Runs a query under [`QUERY_TIMEOUT`]; any failure is worth a retry.
async fn timed<T>(query: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, RecordError> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(RecordError::Unavailable(format!("the database failed: {err}"))),
        Err(_) => Err(RecordError::Unavailable(format!(
            "the database did not answer within {}s",
            QUERY_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A column of `kind` named `name`, as the schema would give it.
    pub(in crate::records) fn col(name: &str, kind: Kind) -> Column {
        Column { name: name.to_string(), kind, declared: String::new() }
    }

    #[tokio::test]
    async fn statements_quote_every_name_and_bind_the_value() {
        let (email, name, id) =
            (col("email", Kind::Text), col("na\"me", Kind::Text), col("id", Kind::Integer));
        let columns = [&email, &name];
        let filters = [Filter { column: &id, test: Test::Equals(Param::Int(1)) }];
        let select =
            Select { table: "users", columns: &columns, filters: &filters, order_by: "id", limit: 1 };
        let sqlite = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Read).unwrap();
        assert_eq!(
            sqlite.sql(&select),
            r#"SELECT json_object('email', "email", 'na"me', "na""me") FROM "users" WHERE "id" = ? ORDER BY "id" LIMIT 1"#
        );
        let pg = Database::connect_lazy("postgres://u:secret@127.0.0.1:1/shop", 1, Access::Read).unwrap();
        assert_eq!(
            pg.sql(&select),
            r#"SELECT row_to_json(r)::text FROM (SELECT "email", "na""me" FROM "users" WHERE "id" = $1 ORDER BY "id" LIMIT 1) r"#
        );
        let err =
            format!("{:#}", Database::connect_lazy("oracle://u:secret@h/db", 1, Access::Read).err().unwrap());
        assert!(err.contains("oracle://") && !err.contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn a_batch_is_one_keyset_query_with_every_value_bound() {
        let (id, user, total) =
            (col("id", Kind::Integer), col("user_id", Kind::Integer), col("total", Kind::Float));
        let created = Column {
            name: "created_at".into(),
            kind: Kind::Other,
            declared: "timestamp(6) without time zone".into(),
        };
        let columns = [&id, &total];
        let filters = [
            Filter { column: &user, test: Test::Equals(Param::Int(7)) },
            Filter { column: &created, test: Test::AtLeast(Param::Text("2026-01-01".into())) },
            Filter { column: &created, test: Test::Below(Param::Text("2026-02-01".into())) },
            Filter { column: &id, test: Test::After(Param::Int(500)) },
        ];
        let select =
            Select { table: "orders", columns: &columns, filters: &filters, order_by: "id", limit: 1000 };
        let pg = Database::connect_lazy("postgres://u@127.0.0.1:1/shop", 1, Access::Read).unwrap();
        assert_eq!(
            pg.sql(&select),
            r#"SELECT row_to_json(r)::text FROM (SELECT "id", "total" FROM "orders" WHERE "user_id" = $1 AND "created_at" >= CAST($2 AS timestamp(6) without time zone) AND "created_at" < CAST($3 AS timestamp(6) without time zone) AND "id" > $4 ORDER BY "id" LIMIT 1000) r"#
        );
        let many = [Filter { column: &id, test: Test::OneOf(vec![Param::Int(3), Param::Int(1)]) }];
        let select = Select { table: "orders", columns: &columns, filters: &many, order_by: "id", limit: 2 };
        let sqlite = Database::connect_lazy("sqlite:///nonexistent.db", 1, Access::Read).unwrap();
        assert_eq!(
            sqlite.sql(&select),
            r#"SELECT json_object('id', "id", 'total', "total") FROM "orders" WHERE "id" IN (?, ?) ORDER BY "id" LIMIT 2"#
        );
        let all = Select { table: "orders", columns: &columns, filters: &[], order_by: "id", limit: 10 };
        assert!(sqlite.sql(&all).ends_with(r#"FROM "orders" ORDER BY "id" LIMIT 10"#));
    }
}
