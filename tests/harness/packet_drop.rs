//! Packets dropped between the test's processes and a server on loopback:
//! nftables drops every packet to and from the server's port (a partition),
//! or a random share of them (a lossy link), in a table of the test's own,
//! until healed. TCP retransmits what was dropped, as across a real
//! network: nothing is lost in between, only late.

use std::process::Command;

/// Drops traffic to and from a loopback port while it lives.
pub struct PacketDrop {
    /// The nftables table holding the drop rules.
    table: String,
}

impl PacketDrop {
    /// A partition: cuts every connection to and from `127.0.0.1:<port>`,
    /// open or new.
    pub fn all(port: u16) -> PacketDrop {
        PacketDrop::rules(port, "all", &[])
    }

    /// A lossy link: drops `percent` of the packets each way, at random.
    pub fn share(port: u16, percent: u32) -> PacketDrop {
        assert!(percent < 100, "{percent}% is not a share");
        let share = percent.to_string();
        PacketDrop::rules(port, "share", &["numgen", "random", "mod", "100", "<", &share])
    }

    fn rules(port: u16, kind: &str, condition: &[&str]) -> PacketDrop {
        let table = format!("jobrunner_test_drop_{kind}_{port}");
        let port = port.to_string();
        nft(&["add", "table", "inet", &table]);
        nft(&["add", "chain", "inet", &table, "out", "{ type filter hook output priority 0; }"]);
        // Both ways: the server's packets in and its replies out.
        for (address, port_of) in [("daddr", "dport"), ("saddr", "sport")] {
            let rule = ["ip", address, "127.0.0.1", "tcp", port_of, &port];
            nft(&[&["add", "rule", "inet", &table, "out"][..], &rule[..], condition, &["drop"]].concat());
        }
        PacketDrop { table }
    }

    /// Ends the drops.
    pub fn heal(self) {}
}

impl Drop for PacketDrop {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.table]).status();
    }
}

fn nft(args: &[&str]) {
    let status = Command::new("nft").args(args).status().expect("running nft (apt-get install nftables)");
    assert!(status.success(), "nft {args:?} failed");
}
