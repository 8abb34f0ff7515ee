//! A partition between the test's processes and a server on loopback:
//! nftables drops every packet to and from the server's port, in a table
//! of the test's own, until healed. TCP retransmits what was dropped once
//! the partition heals, as across a real one; nothing is lost in between.

use std::process::Command;

/// Drops all traffic to and from a loopback port while it lives.
pub struct Partition {
    /// The nftables table holding the drop rules.
    table: String,
}

impl Partition {
    /// Cuts every connection to and from `127.0.0.1:<port>`, open or new.
    pub fn cut(port: u16) -> Partition {
        let table = format!("jobrunner_test_cut_{port}");
        let port = port.to_string();
        nft(&["add", "table", "inet", &table]);
        nft(&["add", "chain", "inet", &table, "out", "{ type filter hook output priority 0; }"]);
        // Both ways: the server's packets in and its replies out.
        for (address, port_of) in [("daddr", "dport"), ("saddr", "sport")] {
            let rule = ["ip", address, "127.0.0.1", "tcp", port_of, &port, "drop"];
            nft(&[&["add", "rule", "inet", &table, "out"][..], &rule[..]].concat());
        }
        Partition { table }
    }

    /// Ends the partition.
    pub fn heal(self) {}
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.table]).status();
    }
}

fn nft(args: &[&str]) {
    let status = Command::new("nft").args(args).status().expect("running nft (apt-get install nftables)");
    assert!(status.success(), "nft {args:?} failed");
}
