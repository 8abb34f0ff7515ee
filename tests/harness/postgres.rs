//! A real PostgreSQL server (Debian's `postgresql`), made with `initdb` in
//! a temp directory and listening on a free port on loopback. As root it
//! runs as the `postgres` user, since PostgreSQL refuses to run as root.

use crate::{WAIT, eventually, free_port};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use tempfile::TempDir;

/// A running PostgreSQL, stopped when dropped.
pub struct Postgres {
    /// The server process; `None` while stopped.
    child: Option<Child>,
    /// Its data directory and socket directory.
    dir: TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The user to run as when we are root: (uid, gid).
    user: Option<(u32, u32)>,
}

/// Where Debian keeps the newest PostgreSQL's programs.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").join("bin").join(name)
}

/// The uid and gid of the `postgres` user, when we run as root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres user exists")
    };
    Some((id("-u"), id("-g")))
}

impl Postgres {
    /// Creates a cluster and starts it, with a database called `shop`.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("creating PostgreSQL's temp dir");
        let user = server_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("handing the dir to postgres");
        }
        let mut pg = Postgres { child: None, dir, port: free_port(), user };
        let data = pg.data_dir();
        let out = pg
            .as_server_user(Command::new(bin("initdb")))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .expect("running initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        pg.spawn();
        pg.sql("postgres", "CREATE DATABASE shop");
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_server_user(&self, mut command: Command) -> Command {
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("creating the server log");
        let child = self
            .as_server_user(Command::new(bin("postgres")))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        eventually("PostgreSQL to accept connections", WAIT, || {
            self.psql("postgres", "SELECT 1").status.success().then_some(())
        });
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/shop`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/shop", self.port)
    }

    fn psql(&self, database: &str, sql: &str) -> Output {
        Command::new(bin("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", database])
            .args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql])
            .output()
            .expect("running psql")
    }

    /// Runs `sql` in `database` as the superuser and returns what it printed.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = self.psql(database, sql);
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server (a fast shutdown: connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
