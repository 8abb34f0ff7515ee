//! Feeding the worker slots: one task fetches jobs ahead of the slots that
//! will run them, so a fetch's round trip overlaps the jobs running instead
//! of holding up the next ones, and one round trip brings many jobs.
//!
//! How far ahead is bounded, in jobs and in time. Every fetched job holds a
//! credit until it has run, so at most `concurrency + ahead` jobs wait or
//! run here at once; and a receipt until its outcome is recorded, twice as
//! many, so jobs being recorded don't hold up the next fetch (waiting for
//! the acknowledgement's round trip made no-op drains at concurrency 50
//! about a quarter slower) while a Redis that records slowly still stops
//! the fetching. Beyond its free slots the task fetches only while the
//! last fetch found a backlog (it got every job it asked for), so there
//! are more jobs than runners and no other runner goes short; and only as
//! many as its slots run in [`HOLD`] at the recent jobs' pace (or the
//! running jobs', if slower), so a job held ahead waits about that long at
//! most. Until a job has ended the pace is unknown, and nothing is fetched
//! ahead.
//! No-op jobs are fetched a hundred ahead; jobs of 20 ms at concurrency
//! 10, one. When the queues run dry or jobs are slow, it fetches for free
//! slots only, so no job waits here behind a slow one while another runner
//! sits idle.
//!
//! With several Redis shards there is one fetching task per shard, each
//! with its own credits, feeding the same slots through the same channel:
//! every shard with jobs gets fetched for whenever a slot is free, and a
//! shard that is down or empty holds up none of the others.
//!
//! When the runner goes quiet, jobs fetched but not started go back to the
//! front of their queues at once ([`Feed::give_back`]).

use crate::busy::{Busy, Held, Running};
use crate::fetch::Fetcher;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// About the longest a job fetched ahead waits for a slot.
pub const HOLD: Duration = Duration::from_millis(2);

/// The fetched jobs, in order, for the loop that puts them into slots.
pub struct Feed {
    /// Jobs fetched and waiting for a slot.
    jobs: mpsc::UnboundedReceiver<Fetched>,
    /// The fetching tasks, one per shard; they end when the runner goes quiet.
    tasks: Vec<JoinHandle<()>>,
    /// Each shard's Redis and this runner's identity, to put unstarted jobs back.
    fetchers: Vec<Arc<Fetcher>>,
    /// Per shard, the credits and receipts of the jobs this runner holds.
    credits: Vec<Arc<Credits>>,
}

/// One shard's bounds on the jobs this runner holds from it.
struct Credits {
    /// One per job fetched and not yet run: waiting or running.
    unfinished: Arc<Semaphore>,
    /// One per job fetched and not yet recorded: the unfinished and
    /// those whose outcome is being recorded; twice the credits.
    unrecorded: Arc<Semaphore>,
    /// How many receipts there are.
    receipts: u32,
}

/// A fetched job waiting for a slot.
pub struct Fetched {
    /// The shard it came from, by index.
    pub shard: usize,
    /// The queue it came from.
    pub queue: String,
    /// Its JSON exactly as fetched.
    pub raw: Arc<[u8]>,
    /// Its entry among this runner's jobs, not yet running.
    held: Held,
    /// Its share of the bound on jobs not yet run.
    credit: OwnedSemaphorePermit,
    /// Its share of the bound on jobs not yet recorded.
    receipt: OwnedSemaphorePermit,
    /// Told when it starts and ends.
    demand: Arc<Demand>,
}

/// A started job's hold on its slot, credit and receipt. The slot and
/// credit are freed when the job has run ([`Ticket::free_slot`]), the
/// receipt when the ticket is dropped, once the job has been recorded;
/// each wakes the fetching task.
pub struct Ticket {
    /// The worker slot, until the job has run.
    slot: Option<OwnedSemaphorePermit>,
    /// The credit, until the job has run.
    credit: Option<OwnedSemaphorePermit>,
    /// The receipt, taken out on drop before the wake-up.
    receipt: Option<OwnedSemaphorePermit>,
    demand: Arc<Demand>,
    started: Instant,
}

/// What the fetching task looks at to decide how many jobs to ask for.
struct Demand {
    /// The worker slots: their free permits are the slots to feed.
    slots: Arc<Semaphore>,
    /// How many slots there are.
    concurrency: usize,
    /// The most jobs fetched beyond them.
    ahead: usize,
    /// Jobs fetched but not yet in a slot.
    waiting: AtomicUsize,
    /// Wakes every shard's fetching task whenever a job ends (a future
    /// from `notified()` hears it from the moment it is made).
    ended: Notify,
    /// Recent jobs' mean duration in µs, weighted towards the latest;
    /// [`UNKNOWN`] until a job has ended.
    mean_us: AtomicU64,
    /// Each shard's running jobs, whose age says when jobs turn slow.
    busy: Vec<Arc<Busy>>,
}

impl Credits {
    /// `total` credits, and twice as many receipts.
    fn new(total: usize) -> Credits {
        let receipts = 2 * total;
        Credits {
            unfinished: Arc::new(Semaphore::new(total)),
            unrecorded: Arc::new(Semaphore::new(receipts)),
            receipts: receipts as u32,
        }
    }

    /// Waits until every job taken has run and been recorded.
    async fn settled(&self) {
        let _all = self.unrecorded.acquire_many(self.receipts).await;
    }
}

/// The mean duration before any job has ended.
const UNKNOWN: u64 = u64::MAX;

impl Fetched {
    /// The job takes `slot`: it counts as running from now. Returns its
    /// queue and JSON, its entry among the running jobs and its ticket.
    pub fn start(self, slot: OwnedSemaphorePermit) -> (String, Arc<[u8]>, Running, Ticket) {
        self.demand.waiting.fetch_sub(1, Ordering::AcqRel);
        let running = self.held.start();
        let ticket = Ticket {
            slot: Some(slot),
            credit: Some(self.credit),
            receipt: Some(self.receipt),
            demand: self.demand,
            started: Instant::now(),
        };
        (self.queue, self.raw, running, ticket)
    }
}

impl Ticket {
    /// The job has run: its slot goes to the next one.
    pub fn free_slot(&mut self) {
        if self.slot.take().is_some() {
            drop(self.credit.take());
            self.demand.job_ended(self.started.elapsed());
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.free_slot();
        drop(self.receipt.take());
        self.demand.ended.notify_waiters();
    }
}

impl Demand {
    /// A job has run for `took`; its slot is free.
    fn job_ended(&self, took: Duration) {
        let took = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let mean = match self.mean_us.load(Ordering::Relaxed) {
            UNKNOWN => took,
            // One eighth of the newest: a few slow jobs in a row cut fetching ahead.
            mean => mean - mean / 8 + took / 8,
        };
        self.mean_us.store(mean, Ordering::Relaxed);
        self.ended.notify_waiters();
    }

    /// How many jobs may be held beyond the slots now: as many as the
    /// slots run in [`HOLD`] at the recent pace, within the bound.
    fn room_ahead(&self) -> usize {
        let longest = self.busy.iter().map(|busy| busy.longest_running()).fold(0.0, f64::max);
        let running_us = (longest * 1e6) as u64;
        let mean_us = self.mean_us.load(Ordering::Relaxed).max(running_us).max(1);
        let in_hold = self.concurrency as u64 * HOLD.as_micros() as u64 / mean_us;
        self.ahead.min(in_hold as usize)
    }

    /// How many jobs to fetch next, waiting until it is at least one.
    /// Free `credits` are those no job holds; `backlog` says the last
    /// fetch got every job it asked for.
    async fn wanted(&self, credits: &Credits, backlog: bool) -> usize {
        loop {
            // Made before looking, so a job ending meanwhile isn't missed.
            let ended = self.ended.notified();
            let held = (self.concurrency + self.ahead).saturating_sub(credits.unfinished.available_permits());
            let unfed = self.slots.available_permits().saturating_sub(self.waiting.load(Ordering::Acquire));
            let ahead = if backlog { self.room_ahead() } else { 0 };
            let room = (self.concurrency + ahead).saturating_sub(held);
            let want = if ahead == 0 {
                unfed.min(room)
            } else if unfed > 0 || room >= ahead.div_ceil(2) {
                // Refill in batches: when a slot has nothing waiting, or
                // when half the room ahead is free.
                room
            } else {
                0
            };
            let want = want.min(credits.unrecorded.available_permits());
            if want > 0 {
                return want;
            }
            ended.await;
        }
    }
}

impl Feed {
    /// Starts fetching from each shard's `fetchers` for `slots`, up to
    /// `ahead` jobs beyond them per shard.
    pub fn start(fetchers: Vec<Fetcher>, slots: Arc<Semaphore>, ahead: usize, shutdown: Shutdown) -> Feed {
        let concurrency = slots.available_permits();
        let total = concurrency + ahead;
        let demand = Arc::new(Demand {
            slots,
            concurrency,
            ahead,
            waiting: AtomicUsize::new(0),
            ended: Notify::new(),
            mean_us: AtomicU64::new(UNKNOWN),
            busy: fetchers.iter().map(|fetcher| fetcher.busy.clone()).collect(),
        });
        let (tx, jobs) = mpsc::unbounded_channel();
        let fetchers: Vec<Arc<Fetcher>> = fetchers.into_iter().map(Arc::new).collect();
        let credits: Vec<Arc<Credits>> = fetchers.iter().map(|_| Arc::new(Credits::new(total))).collect();
        let tasks = fetchers
            .iter()
            .zip(&credits)
            .enumerate()
            .map(|(shard, (fetcher, credits))| {
                let task = fetch_ahead(
                    shard,
                    fetcher.clone(),
                    demand.clone(),
                    credits.clone(),
                    tx.clone(),
                    shutdown.clone(),
                );
                tokio::spawn(task)
            })
            .collect();
        Feed { jobs, tasks, fetchers, credits }
    }

    /// Waits until every job this runner took has run and been recorded
    /// (after [`Feed::give_back`], which returns the unstarted ones).
    pub async fn settled(&self) {
        for credits in &self.credits {
            credits.settled().await;
        }
    }

    /// The next fetched job; `None` once the runner is quiet and every
    /// fetched job has been handed out.
    pub async fn next(&mut self) -> Option<Fetched> {
        self.jobs.recv().await
    }

    /// Once quiet: waits for the fetching tasks to stop, then puts every
    /// job fetched but not started (`unstarted` and those waiting) back at
    /// the front of its queue. If Redis fails, they stay in progress and
    /// go back at shutdown.
    pub async fn give_back(&mut self, unstarted: Option<Fetched>) {
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        // Dropped, they are no longer this runner's jobs: the rescue puts
        // back whatever it holds in progress and doesn't run.
        drop(unstarted);
        while self.jobs.try_recv().is_ok() {}
        for fetcher in &self.fetchers {
            fetcher.put_back_unstarted().await;
        }
    }
}

/// The fetching task: asks for as many jobs as [`Demand::wanted`] says,
/// each holding a credit and a receipt, until the runner is quiet.
async fn fetch_ahead(
    shard: usize,
    fetcher: Arc<Fetcher>,
    demand: Arc<Demand>,
    credits: Arc<Credits>,
    jobs: mpsc::UnboundedSender<Fetched>,
    shutdown: Shutdown,
) {
    let mut backlog = false;
    loop {
        let want = tokio::select! {
            want = demand.wanted(&credits, backlog) => want,
            _ = shutdown.wait_quiet() => return,
        };
        // Only this task takes credits and receipts, so the `want` seen
        // free are still free.
        let taken: Vec<(OwnedSemaphorePermit, OwnedSemaphorePermit)> = (0..want)
            .map_while(|_| {
                let credit = credits.unfinished.clone().try_acquire_owned().ok()?;
                Some((credit, credits.unrecorded.clone().try_acquire_owned().ok()?))
            })
            .collect();
        // A fetch in flight at the quiet is ended and waited for; a job it
        // took is left in progress, where the rescue in `give_back` finds it.
        let fetch = fetcher.next(&shutdown, taken.len());
        tokio::pin!(fetch);
        let fetched = tokio::select! {
            fetched = &mut fetch => fetched,
            _ = shutdown.wait_quiet() => {
                fetcher.end_in_flight(fetch).await;
                None
            }
        };
        let Some(fetched) = fetched else { return };
        backlog = fetched.len() == taken.len();
        for ((queue, raw), (credit, receipt)) in fetched.into_iter().zip(taken) {
            let raw: Arc<[u8]> = Arc::from(raw);
            let held = fetcher.busy.hold(&queue, raw.clone());
            demand.waiting.fetch_add(1, Ordering::AcqRel);
            let job = Fetched { shard, queue, raw, held, credit, receipt, demand: demand.clone() };
            // The receiver goes only when the runner ends; the job is then
            // still in progress in Redis and goes back with the rest.
            if jobs.send(job).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Demand for `concurrency` slots and up to `ahead` more, with the
    /// credits for them.
    fn demand(concurrency: usize, ahead: usize) -> (Arc<Demand>, Arc<Credits>) {
        let demand = Demand {
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            ahead,
            waiting: AtomicUsize::new(0),
            ended: Notify::new(),
            mean_us: AtomicU64::new(UNKNOWN),
            busy: vec![Arc::new(Busy::default())],
        };
        (Arc::new(demand), Arc::new(Credits::new(concurrency + ahead)))
    }

    async fn wanted_now(demand: &Demand, credits: &Credits, backlog: bool) -> Option<usize> {
        tokio::time::timeout(Duration::from_millis(50), demand.wanted(credits, backlog)).await.ok()
    }

    #[tokio::test]
    async fn without_a_backlog_only_free_slots_are_fed() {
        let (demand, credits) = demand(10, 10);
        assert_eq!(wanted_now(&demand, &credits, false).await, Some(10));
        let _waiting = credits.unfinished.try_acquire_many(4).unwrap();
        demand.waiting.store(4, Ordering::Release);
        assert_eq!(wanted_now(&demand, &credits, false).await, Some(6));
        let _more = credits.unfinished.try_acquire_many(6).unwrap();
        demand.waiting.store(10, Ordering::Release);
        assert_eq!(wanted_now(&demand, &credits, false).await, None);
    }

    #[tokio::test]
    async fn under_a_backlog_of_short_jobs_it_fetches_ahead_in_batches() {
        let (demand, credits) = demand(10, 10);
        // Every slot busy, nothing waiting: the whole room ahead.
        let _running = demand.slots.try_acquire_many(10).unwrap();
        let _held = credits.unfinished.try_acquire_many(10).unwrap();
        // Not before the first job has ended: the pace is unknown.
        assert_eq!(wanted_now(&demand, &credits, true).await, None);
        demand.job_ended(Duration::from_micros(100));
        assert_eq!(wanted_now(&demand, &credits, true).await, Some(10));
        // Eight held ahead: two free credits are too few for a round trip.
        let _ahead = credits.unfinished.try_acquire_many(8).unwrap();
        demand.waiting.store(8, Ordering::Release);
        assert_eq!(wanted_now(&demand, &credits, true).await, None);
    }

    #[tokio::test]
    async fn no_fetching_ahead_when_told_so() {
        let (demand, credits) = demand(10, 0);
        let _running = demand.slots.try_acquire_many(10).unwrap();
        let _held = credits.unfinished.try_acquire_many(10).unwrap();
        assert_eq!(wanted_now(&demand, &credits, true).await, None);
    }

    #[tokio::test]
    async fn the_slower_the_jobs_the_fewer_held_ahead() {
        let (demand, credits) = demand(10, 100);
        let _running = demand.slots.try_acquire_many(10).unwrap();
        let _held = credits.unfinished.try_acquire_many(10).unwrap();
        let settle = |took: Duration| {
            for _ in 0..100 {
                demand.job_ended(took);
            }
        };
        settle(Duration::from_micros(50));
        assert_eq!(wanted_now(&demand, &credits, true).await, Some(100));
        // 10 slots of 5 ms jobs run four in 2 ms.
        settle(Duration::from_millis(5));
        assert_eq!(wanted_now(&demand, &credits, true).await, Some(4));
        settle(Duration::from_millis(100));
        assert_eq!(wanted_now(&demand, &credits, true).await, None);
        // A job running long counts before it ends.
        settle(Duration::from_micros(50));
        let _long = demand.busy[0].start("default", Arc::from(&b"{}"[..]));
        tokio::time::sleep(Duration::from_millis(12)).await;
        let want = wanted_now(&demand, &credits, true).await;
        assert!(matches!(want, None | Some(1)), "{want:?}");
    }

    #[tokio::test]
    async fn a_job_ending_wakes_every_shards_fetcher() {
        let (demand, credits) = demand(1, 0);
        let slot = demand.slots.clone().try_acquire_owned().unwrap();
        let credit = credits.unfinished.clone().try_acquire_owned().unwrap();
        let receipt = credits.unrecorded.clone().try_acquire_owned().unwrap();
        let other_shard = Arc::new(Credits::new(1));
        let waiting: Vec<_> = [credits.clone(), other_shard]
            .into_iter()
            .map(|credits| {
                let demand = demand.clone();
                tokio::spawn(async move { demand.wanted(&credits, false).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiting.iter().all(|task| !task.is_finished()));
        drop(Ticket {
            slot: Some(slot),
            credit: Some(credit),
            receipt: Some(receipt),
            demand: demand.clone(),
            started: Instant::now(),
        });
        for task in waiting {
            let want = tokio::time::timeout(Duration::from_secs(1), task).await.expect("woken").unwrap();
            assert_eq!(want, 1);
        }
    }

    /// A started job's ticket, holding one of each.
    fn ticket(demand: &Arc<Demand>, credits: &Credits) -> Ticket {
        Ticket {
            slot: Some(demand.slots.clone().try_acquire_owned().unwrap()),
            credit: Some(credits.unfinished.clone().try_acquire_owned().unwrap()),
            receipt: Some(credits.unrecorded.clone().try_acquire_owned().unwrap()),
            demand: demand.clone(),
            started: Instant::now(),
        }
    }

    #[tokio::test]
    async fn a_job_being_recorded_does_not_hold_up_the_next_fetch() {
        let (demand, credits) = demand(2, 0);
        let mut tickets = [ticket(&demand, &credits), ticket(&demand, &credits)];
        assert_eq!(wanted_now(&demand, &credits, false).await, None, "both slots busy");
        tickets[0].free_slot();
        assert_eq!(
            wanted_now(&demand, &credits, false).await,
            Some(1),
            "its outcome is still being recorded"
        );
    }

    #[tokio::test]
    async fn jobs_waiting_to_be_recorded_stop_the_fetching_at_twice_the_credits() {
        let (demand, credits) = demand(2, 0);
        let mut recording: Vec<Ticket> = (0..4)
            .map(|_| {
                let mut ticket = ticket(&demand, &credits);
                ticket.free_slot();
                ticket
            })
            .collect();
        assert_eq!(credits.unfinished.available_permits(), 2, "every job has run");
        assert_eq!(wanted_now(&demand, &credits, false).await, None, "four outcomes not yet recorded");
        recording.pop();
        assert_eq!(wanted_now(&demand, &credits, false).await, Some(1));
    }
}
