//! SQLite reads made on the job's own thread.
//!
//! Through sqlx, each SQLite query is handed to the connection's own
//! thread and its rows handed back: two thread wake-ups per read, which
//! cost a webhook or mail job more than the read. A SQLite file is local,
//! so a read of a few rows takes microseconds; these connections run it
//! where the plugin asked, under a budget: a read that would wait for a
//! lock (`busy_timeout` 0) or runs past [`BUDGET`] is stopped and left to
//! the pool, which waits and times out as every other database's reads do.
//! So the fast path only ever answers, never fails a read the pool would
//! have answered, and never holds a worker thread longer than the budget.

use super::schema::Param;
use rusqlite::{Connection, OpenFlags, params_from_iter, types::ToSqlOutput, types::Value};
use sqlx::sqlite::SqliteConnectOptions;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a read may run on the job's thread before it is handed to
/// the pool instead.
const BUDGET: Duration = Duration::from_millis(2);

/// Read-only connections to one SQLite file, opened as needed.
pub struct Reads {
    path: PathBuf,
    /// Connections not in use.
    idle: Mutex<Vec<Budgeted>>,
    /// The most kept idle.
    keep: usize,
}

/// A connection whose every statement stops past its deadline.
struct Budgeted {
    connection: Connection,
    /// Microseconds after `opened` at which the running read is stopped.
    deadline: Arc<AtomicU64>,
    opened: Instant,
}

impl Reads {
    /// Direct reads of the file `url` names; `None` for anything but a
    /// SQLite file (an in-memory database is one per connection).
    pub fn for_url(url: &str, keep: usize) -> Option<Reads> {
        if !url.starts_with("sqlite:") || url.contains("memory") {
            return None;
        }
        let options = SqliteConnectOptions::from_str(url).ok()?;
        let path = options.get_filename().to_path_buf();
        Some(Reads { path, idle: Mutex::new(Vec::new()), keep: keep.max(1) })
    }

    /// The JSON text of each row `sql` selects with `params`, or `None`
    /// when the read must go through the pool: it would wait for a lock,
    /// ran past the budget, or failed in any way.
    pub fn select(&self, sql: &str, params: &[Param]) -> Option<Vec<String>> {
        let taken = self.idle.lock().expect("direct reads lock").pop();
        let conn = match taken {
            Some(conn) => conn,
            None => {
                self.open().map_err(|err| tracing::debug!(error = %err, "direct SQLite open failed")).ok()?
            }
        };
        let rows = conn.select(sql, params);
        if let Err(err) = &rows {
            tracing::debug!(error = %err, "direct SQLite read left to the pool");
        }
        let mut idle = self.idle.lock().expect("direct reads lock");
        if idle.len() < self.keep {
            idle.push(conn);
        }
        rows.ok()
    }

    fn open(&self) -> rusqlite::Result<Budgeted> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.busy_timeout(Duration::ZERO)?;
        let (deadline, opened) = (Arc::new(AtomicU64::new(u64::MAX)), Instant::now());
        let watched = deadline.clone();
        connection.progress_handler(
            1000,
            Some(move || opened.elapsed().as_micros() as u64 > watched.load(Ordering::Relaxed)),
        );
        Ok(Budgeted { connection, deadline, opened })
    }
}

impl Budgeted {
    fn select(&self, sql: &str, params: &[Param]) -> rusqlite::Result<Vec<String>> {
        let until = (self.opened.elapsed() + BUDGET).as_micros() as u64;
        self.deadline.store(until, Ordering::Relaxed);
        let mut statement = self.connection.prepare_cached(sql)?;
        let rows = statement.query_map(params_from_iter(params.iter().map(value)), |row| row.get(0))?;
        rows.collect()
    }
}

fn value(param: &Param) -> ToSqlOutput<'_> {
    ToSqlOutput::Owned(match param {
        Param::Int(v) => Value::Integer(*v),
        Param::Float(v) => Value::Real(*v),
        Param::Bool(v) => Value::Integer(*v as i64),
        Param::Text(v) => return ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(v.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite file with two `users` rows, removed with the directory.
    fn database() -> (PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sqlite3");
        let app = Connection::open(&path).unwrap();
        app.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, admin BOOLEAN);
             INSERT INTO users VALUES (1, 'ada@example.com', 1), (2, 'bob@example.com', 0);",
        )
        .unwrap();
        (path, dir)
    }

    const BY_EMAIL: &str =
        "SELECT json_object('id', id, 'admin', admin) FROM users WHERE email = ? AND admin = ?";

    #[test]
    fn a_read_answers_with_each_row_as_json_and_its_values_bound() {
        let (path, _gone) = database();
        let reads = Reads::for_url(&format!("sqlite://{}", path.display()), 4).unwrap();
        let params = [Param::Text("ada@example.com".into()), Param::Bool(true)];
        assert_eq!(reads.select(BY_EMAIL, &params), Some(vec![r#"{"id":1,"admin":1}"#.to_string()]));
        let none = [Param::Text("ada@example.com".into()), Param::Bool(false)];
        assert_eq!(reads.select(BY_EMAIL, &none), Some(vec![]));
        assert_eq!(reads.idle.lock().unwrap().len(), 1, "the connection is kept for the next read");
    }

    #[test]
    fn a_read_that_would_wait_for_the_apps_lock_is_left_to_the_pool() {
        let (path, _gone) = database();
        let reads = Reads::for_url(&format!("sqlite://{}", path.display()), 4).unwrap();
        let app = Connection::open(&path).unwrap();
        app.execute_batch("BEGIN EXCLUSIVE; UPDATE users SET email = 'x' WHERE id = 2;").unwrap();
        // The app commits soon: a read that waited for it would answer.
        let app = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            app.execute_batch("COMMIT").unwrap();
        });
        let params = [Param::Text("ada@example.com".into()), Param::Bool(true)];
        assert_eq!(reads.select(BY_EMAIL, &params), None, "the read did not wait for the lock");
        app.join().unwrap();
        assert!(reads.select(BY_EMAIL, &params).is_some(), "answered once the lock is gone");
    }

    #[test]
    fn a_read_past_the_budget_is_stopped_and_left_to_the_pool() {
        let (path, _gone) = database();
        let reads = Reads::for_url(&format!("sqlite:{}", path.display()), 4).unwrap();
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) \
                    SELECT CAST(count(*) AS TEXT) FROM n";
        let started = Instant::now();
        assert_eq!(reads.select(slow, &[]), None);
        assert!(started.elapsed() < Duration::from_secs(1), "stopped after {:?}", started.elapsed());
        assert!(reads.select("SELECT 'still usable'", &[]).is_some());
    }

    #[test]
    fn only_a_sqlite_file_is_read_directly() {
        assert!(Reads::for_url("sqlite::memory:", 1).is_none());
        assert!(Reads::for_url("postgres://u@127.0.0.1/shop", 1).is_none());
    }
}
