//! The connection to Redis, and following the master through a Sentinel
//! failover.
//!
//! Every command goes through the current [`Link`]. With a plain URL it
//! never changes: the connection manager reconnects to the same server by
//! itself. Behind Sentinel (`redis+sentinel://`), [`Queue::follow_master`]
//! asks the sentinels which server is master the moment one of them
//! announces a switch (`+switch-master`), and every [`FOLLOW_EVERY`] in
//! case an announcement was missed; when it changed, a link to the new
//! master is made and swapped in whole, so commands from then on go there,
//! and the switch is announced so the runner can put back what the old
//! master had of its in-progress jobs. Until the switch, writes still go to
//! the old master and are lost with it (Redis replicates asynchronously):
//! the sooner the switch, the fewer jobs run twice.

use super::{Endpoint, Queue, reconnect_policy};
use crate::secret::redact_url;
use crate::shutdown::Shutdown;
use anyhow::{Context, Result};
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often the sentinels are asked for the master without an announcement.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// A connection to one Redis server.
pub(super) struct Link {
    /// Opens the connection that waits for jobs.
    pub client: redis::Client,
    /// Everything else; reconnects by itself.
    pub conn: ConnectionManager,
    /// The server's URL, password included.
    pub url: String,
}

impl Link {
    /// Connects to the server at `url`, trusting it as `endpoint` says.
    pub async fn open(endpoint: &Endpoint, url: &str) -> Result<Link> {
        let client = endpoint.client_for(url)?;
        let conn = client
            .get_connection_manager_with_config(reconnect_policy())
            .await
            .with_context(|| format!("connecting to Redis at {}", redact_url(url)))?;
        Ok(Link { client, conn, url: url.to_string() })
    }
}

impl Queue {
    /// Follows the master the sentinels of `endpoint` name, until shutdown.
    /// The receiver counts the switches; the tasks listen to each sentinel
    /// and follow, supervised.
    pub fn follow_master(
        &self,
        endpoint: Endpoint,
        shutdown: Shutdown,
    ) -> (watch::Receiver<u64>, Vec<tokio::task::JoinHandle<()>>) {
        let (switched, switches) = watch::channel(0);
        let (switched, announced) = (Arc::new(switched), Arc::new(Notify::new()));
        let mut tasks = Vec::new();
        for addr in endpoint.sentinel_addrs() {
            let (announced, shutdown) = (announced.clone(), shutdown.clone());
            tasks.push(crate::supervise::spawn("Sentinel listener", move || {
                listen(addr.clone(), announced.clone(), shutdown.clone())
            }));
        }
        let queue = self.clone();
        tasks.push(crate::supervise::spawn("Sentinel follower", move || {
            let (queue, endpoint, shutdown) = (queue.clone(), endpoint.clone(), shutdown.clone());
            follow(queue, endpoint, (switched.clone(), announced.clone()), shutdown)
        }));
        (switches, tasks)
    }

    /// Switches to the master the sentinels name, if it changed.
    async fn follow_once(&self, endpoint: &Endpoint) -> Result<bool> {
        let url = endpoint.master_url().await?;
        let current = self.link.load();
        if url == current.url {
            return Ok(false);
        }
        let link = Link::open(endpoint, &url).await?;
        tracing::warn!(from = %redact_url(&current.url), to = %redact_url(&url), "the Redis master changed; following it");
        self.link.store(Arc::new(link));
        // The waiting connection still points at the old master.
        *self.waiter.lock().await = None;
        self.waiter_id.store(0, std::sync::atomic::Ordering::Release);
        Ok(true)
    }
}

/// Listens to the sentinel at `addr` for `+switch-master` and wakes the
/// follower at each; reconnects after a second when the sentinel is gone.
async fn listen(addr: String, announced: Arc<Notify>, shutdown: Shutdown) {
    loop {
        let subscribed = async {
            let client = redis::Client::open(format!("redis://{addr}"))?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                announced.notify_one();
            }
            anyhow::Ok(())
        };
        tokio::select! {
            _ = subscribed => {}
            _ = shutdown.wait() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Asks the sentinels for the master every [`FOLLOW_EVERY`], or at once
/// when one announces a switch, and counts the switches, until shutdown.
async fn follow(
    queue: Queue,
    endpoint: Endpoint,
    (switched, announced): (Arc<watch::Sender<u64>>, Arc<Notify>),
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = announced.notified() => {}
            _ = shutdown.wait() => return,
        }
        match queue.follow_once(&endpoint).await {
            Ok(true) => switched.send_modify(|n| *n += 1),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "asking Sentinel for the Redis master failed")
            }
        }
    }
}
