//! Redis behind Sentinel: a master, a replica of it and one sentinel
//! watching them, each a real `redis-server` on a free port.

use crate::{Redis, WAIT, eventually, free_port};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A master, its replica and a sentinel; all stopped when dropped.
pub struct Sentinel {
    /// The servers, master first until a failover.
    pub servers: [Redis; 2],
    /// The sentinel process.
    child: Child,
    /// Its config file, which it rewrites.
    _dir: TempDir,
    /// Its port.
    port: u16,
    /// `redis+sentinel://127.0.0.1:<port>/mymaster`.
    pub url: String,
}

impl Sentinel {
    pub fn start() -> Sentinel {
        let master = Redis::start();
        let replica = Redis::start_replica_of(&master);
        let dir = tempfile::tempdir().expect("creating the sentinel's temp dir");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        let master_port = master.url.rsplit(':').next().expect("a port");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                dir.path().display()
            ),
        )
        .expect("writing sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server --sentinel");
        let sentinel = Sentinel {
            servers: [master, replica],
            child,
            _dir: dir,
            port,
            url: format!("redis+sentinel://127.0.0.1:{port}/mymaster"),
        };
        eventually("the sentinel to know the master", WAIT, || sentinel.master_port());
        eventually("the replica to be in sync", WAIT, || {
            let info: String = sentinel.servers[1].query(&["INFO", "replication"]);
            info.contains("master_link_status:up").then_some(())
        });
        sentinel
    }

    /// The port of the master the sentinel names now.
    pub fn master_port(&self) -> Option<u16> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).ok()?;
        let mut conn = client.get_connection().ok()?;
        let addr: Option<(String, u16)> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("mymaster").query(&mut conn).ok()?;
        addr.map(|(_, port)| port)
    }

    /// The server that is master now.
    pub fn master(&self) -> &Redis {
        let port = self.master_port().expect("the sentinel names a master");
        self.servers.iter().find(|s| s.url.ends_with(&format!(":{port}"))).expect("one of ours")
    }

    /// Has the sentinel promote the replica, and waits until it has.
    pub fn failover(&self) {
        let before = self.master_port();
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).expect("the sentinel's URL");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg("mymaster")
            .query(&mut client.get_connection().expect("connecting to the sentinel"))
            .expect("SENTINEL FAILOVER");
        eventually("the sentinel to name the new master", WAIT, || {
            (self.master_port() != before).then_some(())
        });
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
