//! A real `redis-server` on a free port, with its data in a temp directory.

use crate::{WAIT, eventually, free_port};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A running Redis, stopped when dropped.
pub struct Redis {
    /// The server process.
    child: Child,
    /// Its working directory, removed when it is dropped.
    dir: TempDir,
    /// The port it listens on.
    port: u16,
    /// Whether it keeps its data on disk (AOF, fsync on every write).
    persistent: bool,
    /// More options, e.g. a TLS port.
    extra: Vec<String>,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    /// `rediss://127.0.0.1:<tls port>` when it also listens with TLS.
    pub tls_url: Option<String>,
}

impl Redis {
    /// A Redis that keeps its data only in memory.
    pub fn start() -> Redis {
        Redis::start_with(false)
    }

    /// A Redis with an append-only file synced on every write, as a
    /// production Redis holding jobs should run: a restart loses nothing.
    pub fn start_persistent() -> Redis {
        Redis::start_with(true)
    }

    /// A Redis that also listens with TLS, with the server certificate of
    /// `certs`; with `client_certs`, a TLS client must present one the CA signed.
    pub fn start_tls(certs: &crate::Certs, client_certs: bool) -> Redis {
        let tls_port = free_port();
        let path = |name: &str| certs.path(name).display().to_string();
        let extra = vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            "--tls-auth-clients".into(),
            if client_certs { "yes" } else { "no" }.into(),
        ];
        let mut redis = Redis::spawn_with(false, extra);
        redis.tls_url = Some(format!("rediss://127.0.0.1:{tls_port}"));
        redis
    }

    /// A Redis replicating `master`.
    pub fn start_replica_of(master: &Redis) -> Redis {
        Redis::spawn_with(false, vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()])
    }

    fn start_with(persistent: bool) -> Redis {
        Redis::spawn_with(persistent, Vec::new())
    }

    fn spawn_with(persistent: bool, extra: Vec<String>) -> Redis {
        let dir = tempfile::tempdir().expect("creating Redis's temp dir");
        let port = free_port();
        let child = spawn(port, &dir, persistent, &extra);
        let url = format!("redis://127.0.0.1:{port}");
        let redis = Redis { child, dir, port, persistent, extra, url, tls_url: None };
        redis.wait_ready();
        redis
    }

    /// Kills the server (an outage), leaving it down until [`Redis::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port: with its data if it is
    /// persistent, with an empty data set otherwise.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, self.persistent, &self.extra);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        eventually("redis-server to answer PING", WAIT, || {
            let mut conn = self.try_conn()?;
            redis::cmd("PING").query::<String>(&mut conn).ok()
        });
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url.as_str()).ok()?.get_connection().ok()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh connection.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connecting to the test Redis")
    }

    /// Runs one command and returns its reply.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.conn()).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Pushes a job's JSON as Sidekiq's client does.
    pub fn push(&self, queue: &str, payload: &str) {
        self.push_bytes(queue, payload.as_bytes());
    }

    /// Pushes a payload that may not even be UTF-8.
    pub fn push_bytes(&self, queue: &str, payload: &[u8]) {
        let _: () = redis::pipe()
            .atomic()
            .sadd("queues", queue)
            .lpush(format!("queue:{queue}"), payload)
            .query(&mut self.conn())
            .expect("pushing a payload");
    }

    /// Pushes many jobs' JSON in one round trip.
    pub fn push_many(&self, queue: &str, payloads: &[String]) {
        let mut pipe = redis::pipe();
        pipe.atomic().sadd("queues", queue).ignore();
        for payload in payloads {
            pipe.lpush(format!("queue:{queue}"), payload).ignore();
        }
        let _: () = pipe.query(&mut self.conn()).expect("pushing jobs");
    }

    /// Every member of a sorted set (`retry`, `dead`, `schedule`), parsed.
    pub fn sorted_set(&self, key: &str) -> Vec<serde_json::Value> {
        let members: Vec<String> = self.query(&["ZRANGE", key, "0", "-1"]);
        members.iter().map(|m| serde_json::from_str(m).expect("a JSON member")).collect()
    }

    /// Jobs held in progress by any runner, taken from `queue:default`.
    pub fn inprogress_jobs(&self) -> usize {
        let keys: Vec<String> = self.query(&["KEYS", "jobrunner:inprogress:*:default"]);
        keys.iter().map(|k| self.llen(k)).sum()
    }

    /// Jobs of `queue` not yet done, read in one atomic step: queued, held
    /// in progress by any runner, retrying or scheduled. Reading these one
    /// by one can miss a job moving between them (a retry due just then).
    pub fn jobs_left(&self, queue: &str) -> usize {
        const SCRIPT: &str = "local n = redis.call('LLEN', 'queue:' .. ARGV[1]) \
            for _, key in ipairs(redis.call('KEYS', 'jobrunner:inprogress:*:' .. ARGV[1])) do \
              n = n + redis.call('LLEN', key) end \
            return n + redis.call('ZCARD', 'retry') + redis.call('ZCARD', 'schedule')";
        self.query(&["EVAL", SCRIPT, "0", queue])
    }

    /// The length of a list.
    pub fn llen(&self, key: &str) -> usize {
        self.query(&["LLEN", key])
    }
}

fn spawn(port: u16, dir: &TempDir, persistent: bool, extra: &[String]) -> Child {
    let aof: &[&str] = if persistent {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--appendonly", "no"]
    };
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(aof)
        .args(extra)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server (apt-get install redis-server)")
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
