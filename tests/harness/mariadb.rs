//! A real MariaDB server (Debian's `mariadb-server`), for the MySQL dialect
//! of `records`: its data in a temp directory, listening on a free port on
//! loopback, with a `shop` database.

use crate::{WAIT, eventually, free_port};
use std::process::{Child, Command, Output, Stdio};
use tempfile::TempDir;

/// A running MariaDB, stopped when dropped.
pub struct MariaDb {
    /// The server process.
    child: Child,
    /// Its data directory and socket.
    dir: TempDir,
    /// The port it listens on.
    pub port: u16,
}

/// `--user=root` when we are root (MariaDB refuses root unless told);
/// otherwise nothing, and it runs as us.
fn user_flag() -> Vec<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 { vec!["--user=root"] } else { Vec::new() }
}

impl MariaDb {
    /// Creates a data directory, starts the server and a `shop` database.
    pub fn start() -> MariaDb {
        let dir = tempfile::tempdir().expect("creating MariaDB's temp dir");
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .args(user_flag())
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("running mariadb-install-db (apt-get install mariadb-server)");
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("creating the server log");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .args(user_flag())
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mariadbd");
        let db = MariaDb { child, dir, port };
        eventually("MariaDB to accept connections", WAIT, || {
            db.client("SELECT 1").status.success().then_some(())
        });
        db.sql("CREATE DATABASE shop");
        db
    }

    fn client(&self, sql: &str) -> Output {
        Command::new("mariadb")
            .arg(format!("--socket={}", self.dir.path().join("sock").display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .expect("running the mariadb client")
    }

    /// Runs `sql` as root and returns what it printed.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.client(sql);
        assert!(out.status.success(), "mariadb {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/shop`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/shop", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
