//! Fetching: which queue to take the next job from, and waiting for one.
//!
//! Queues are given as `name` or `name,weight`, like Sidekiq's `-q`. Without
//! weights they are strictly ordered: a later queue is only served when all
//! earlier ones are empty. With weights, each fetch draws a fresh order in
//! which a queue of weight 3 comes first three times as often as one of
//! weight 1, so no queue starves.
//!
//! [`Fetcher::next`] polls Redis, backing off while every queue is empty,
//! so an idle runner costs Redis a few cheap calls per second (one every
//! 2 s when it serves one queue) and a busy one gets its next jobs in a
//! single round trip. After a failed fetch it first
//! puts back any job Redis moved without the reply reaching us, so a job
//! can't sit in the in-progress list of a runner that doesn't know it has it.

use crate::backoff::Backoff;
use crate::busy::Busy;
use crate::queue::Queue;
use crate::shutdown::Shutdown;
use anyhow::{Context, Result, bail};
use rand::Rng;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The first wait after finding every queue empty; doubled up to
/// [`MAX_IDLE_WAIT`], or [`MAX_IDLE_WAIT_ONE_QUEUE`] for a runner of one queue.
const MIN_IDLE_WAIT: Duration = Duration::from_millis(1);
/// With several queues only the first is waited on, so the others are
/// looked at again this often.
const MAX_IDLE_WAIT: Duration = Duration::from_millis(200);
/// With one queue the wait sees every push at once, so it can be long:
/// Sidekiq's `BRPOP` timeout.
const MAX_IDLE_WAIT_ONE_QUEUE: Duration = Duration::from_secs(2);
/// What a rescue after lost replies logs.
const LOST_FETCHES: &str = "jobs fetched while Redis was failing are back in the queue";
/// The wait after Redis failed to answer.
const ERROR_WAIT: Duration = Duration::from_secs(1);
/// How often a fetch in flight at the quiet is told again to end: the
/// wait may not have reached Redis when first told.
const END_WAIT_EVERY: Duration = Duration::from_millis(100);
/// The longest a fetch in flight at the quiet is waited for (a Redis that
/// refuses `CLIENT UNBLOCK` ends a wait at its timeout, 2 s at most).
const FETCH_ENDS_WITHIN: Duration = Duration::from_secs(5);

/// The queues a runner serves, and how it picks among them.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueOrder {
    /// Queue names with their weights, in the order given.
    queues: Vec<(String, u32)>,
    /// True when no weights were given: serve queues in order.
    strict: bool,
}

impl QueueOrder {
    /// Parses `-q` values such as `critical,3`, `default`.
    pub fn parse(specs: &[String]) -> Result<QueueOrder> {
        let mut queues = Vec::new();
        for spec in specs {
            let (name, weight) = match spec.split_once(',') {
                Some((name, weight)) => {
                    let weight = weight.trim().parse::<u32>().ok().filter(|w| *w > 0).with_context(|| {
                        format!("invalid queue {spec:?}: the weight must be a whole number of at least 1")
                    })?;
                    (name.trim(), weight)
                }
                None => (spec.trim(), 1),
            };
            if name.is_empty() {
                bail!("invalid queue {spec:?}: the name is empty");
            }
            if queues.iter().any(|(n, _)| n == name) {
                bail!("queue {name:?} is given twice");
            }
            queues.push((name.to_string(), weight));
        }
        if queues.is_empty() {
            bail!("no queues to serve");
        }
        let strict = queues.iter().all(|(_, w)| *w == 1);
        Ok(QueueOrder { queues, strict })
    }

    /// Every queue name, in the order given.
    pub fn names(&self) -> Vec<&str> {
        self.queues.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Every queue with its weight as Sidekiq reports it: 0 when none was given.
    pub fn weights(&self) -> Vec<(String, u32)> {
        let weight = |w: u32| if self.strict { 0 } else { w };
        self.queues.iter().map(|(n, w)| (n.clone(), weight(*w))).collect()
    }

    /// The order to try queues in for one fetch.
    pub fn draw(&self, rng: &mut impl Rng) -> Vec<&str> {
        if self.strict {
            return self.names();
        }
        // Weighted sampling without replacement: repeatedly pick among the
        // queues not yet placed, with probability proportional to weight.
        let mut left: Vec<&(String, u32)> = self.queues.iter().collect();
        let mut order = Vec::with_capacity(left.len());
        while !left.is_empty() {
            let total: u32 = left.iter().map(|(_, w)| w).sum();
            let mut pick = rng.random_range(0..total);
            let index = left
                .iter()
                .position(|(_, w)| {
                    if pick < *w {
                        return true;
                    }
                    pick -= w;
                    false
                })
                .unwrap_or(0);
            order.push(left.remove(index).0.as_str());
        }
        order
    }
}

/// Takes jobs off the queues for one runner.
pub struct Fetcher {
    /// The queue in Redis.
    pub queue: Queue,
    /// This runner's identity, which names its in-progress lists.
    pub identity: String,
    /// Which queues to serve and how.
    pub order: QueueOrder,
    /// The jobs running now, told apart from lost fetches after an error.
    pub busy: Arc<Busy>,
    /// Set when the Redis master changed: before its next fetch, the
    /// fetcher puts back what the new master holds in progress for this
    /// runner but isn't running. Done here, between fetches, because a
    /// fetch in flight holds jobs not yet entered as running.
    pub rescue_asked: Arc<AtomicBool>,
}

impl Fetcher {
    /// Waits for jobs and takes up to `max` of them; `None` once the
    /// runner is quiet or shutting down.
    pub async fn next(&self, shutdown: &Shutdown, max: usize) -> Option<Vec<(String, Vec<u8>)>> {
        let longest = match self.order.names().len() {
            1 => MAX_IDLE_WAIT_ONE_QUEUE,
            _ => MAX_IDLE_WAIT,
        };
        let mut idle = Backoff::new(MIN_IDLE_WAIT, longest);
        let mut wait = idle.next_wait();
        let mut lost_replies = false;
        loop {
            if shutdown.is_quiet() {
                return None;
            }
            let asked = self.rescue_asked.swap(false, Ordering::AcqRel);
            if (lost_replies || asked) && self.rescue(LOST_FETCHES).await.is_err() {
                self.rescue_asked.fetch_or(asked, Ordering::AcqRel);
                lost_replies = true;
                shutdown.sleep(ERROR_WAIT).await;
                continue;
            }
            lost_replies = false;
            let order = self.order.draw(&mut rand::rng());
            match self.queue.fetch(&self.identity, &order, max).await {
                Ok(jobs) if !jobs.is_empty() => return Some(jobs),
                Ok(_) => {
                    // Every queue is empty: wait on the first one, so a job
                    // pushed there starts at once. With several queues the
                    // others are looked at again after `wait`; with one,
                    // the waiting goes on until a job comes.
                    loop {
                        match self.queue.wait_for_job(&self.identity, order[0], wait).await {
                            Ok(Some(job)) => return Some(vec![job]),
                            Ok(None) => wait = idle.next_wait(),
                            Err(err) => {
                                tracing::warn!(error = %format!("{err:#}"), "waiting for jobs failed; retrying");
                                lost_replies = true;
                                shutdown.sleep(ERROR_WAIT).await;
                                break;
                            }
                        }
                        if order.len() > 1 || shutdown.is_quiet() {
                            break;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "fetching failed; retrying");
                    lost_replies = true;
                    shutdown.sleep(ERROR_WAIT).await;
                }
            }
        }
    }

    /// Once quiet: ends `fetch`, in flight, and waits for it, so that a
    /// job it takes is in the in-progress list before the give-back looks
    /// there ([`Fetcher::put_back_unstarted`]), not moved by Redis after.
    pub async fn end_in_flight<F: Future>(&self, mut fetch: Pin<&mut F>) {
        let ended = tokio::time::timeout(FETCH_ENDS_WITHIN, async {
            loop {
                if let Err(err) = self.queue.end_wait().await {
                    tracing::debug!(error = %format!("{err:#}"), "could not end the wait for jobs; it ends at its timeout");
                }
                if tokio::time::timeout(END_WAIT_EVERY, fetch.as_mut()).await.is_ok() {
                    return;
                }
            }
        });
        if ended.await.is_err() {
            tracing::warn!(
                waited_s = FETCH_ENDS_WITHIN.as_secs_f64(),
                "quiet: the fetch in flight has not ended; a job it takes goes back at shutdown"
            );
        }
    }

    /// Once quiet and no longer fetching: puts every job this runner holds
    /// in progress but isn't running back at the front of its queue (jobs
    /// fetched ahead, and any the fetch in flight at the quiet took).
    pub async fn put_back_unstarted(&self) {
        if let Err(err) = self.rescue("quiet: jobs fetched ahead are back at the front of their queue").await
        {
            tracing::warn!(error = %format!("{err:#}"), "could not put back jobs fetched ahead; they go back at shutdown");
        }
    }

    /// Puts back jobs in progress here that aren't running or held (whose
    /// fetch went through without its reply reaching us), logging `what`.
    async fn rescue(&self, what: &str) -> Result<()> {
        for queue in self.order.names() {
            let running = self.busy.payloads(queue);
            match self.queue.rescue(&self.identity, queue, &running).await {
                Ok(0) => {}
                Ok(jobs) => {
                    tracing::warn!(queue, jobs, "{what}")
                }
                Err(err) => {
                    tracing::warn!(queue, error = %format!("{err:#}"), "checking for lost fetches failed");
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_weights_the_order_is_strict() {
        let order = QueueOrder::parse(&specs(&["critical", "default", "low"])).unwrap();
        for _ in 0..10 {
            assert_eq!(order.draw(&mut rand::rng()), ["critical", "default", "low"]);
        }
    }

    #[test]
    fn weights_bias_which_queue_comes_first() {
        let order = QueueOrder::parse(&specs(&["critical,3", "default"])).unwrap();
        let mut rng = rand::rng();
        let firsts = (0..4000).filter(|_| order.draw(&mut rng)[0] == "critical").count();
        assert!((2700..3300).contains(&firsts), "critical came first {firsts} times of 4000");
        assert_eq!(order.draw(&mut rng).len(), 2);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let err = |s: &[&str]| QueueOrder::parse(&specs(s)).unwrap_err().to_string();
        assert!(err(&["a,x"]).contains("weight"));
        assert!(err(&["a,0"]).contains("weight"));
        assert!(err(&[",2"]).contains("name is empty"));
        assert!(err(&["a", "a"]).contains("twice"));
    }
}
