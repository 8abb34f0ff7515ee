//! Acknowledging finished jobs in batches.
//!
//! Every worker hands its job's outcome to the [`Acker`] and waits until
//! Redis has recorded it (so its slot isn't reused before the job has left
//! the in-progress list). One task records whatever outcomes are waiting
//! in a single script: under load that is dozens of jobs per round
//! trip instead of one, and an idle runner still records each job at once.

use super::{Finished, Outcome, Queue};
use anyhow::{Result, anyhow};
use tokio::sync::{mpsc, oneshot};

/// The most outcomes recorded in one script call.
const BATCH: usize = 256;

/// One outcome waiting to be recorded.
struct Request {
    queue: String,
    raw: Vec<u8>,
    /// The jid whose sent-mail record goes, if any.
    sent_mail_of: String,
    outcome: Outcome,
    /// Told whether Redis recorded it.
    done: oneshot::Sender<Result<(), String>>,
}

/// Hands outcomes to the recording task; cheap to clone.
#[derive(Clone)]
pub struct Acker {
    tx: mpsc::UnboundedSender<Request>,
}

impl Acker {
    /// Starts the task recording `identity`'s outcomes, supervised: after
    /// a panic the next life takes over the same channel, and the jobs of
    /// the batch it dropped are told to try again.
    pub fn spawn(queue: Queue, identity: String) -> (Acker, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let task = crate::supervise::spawn("outcome recorder", move || {
            let (queue, identity, rx) = (queue.clone(), identity.clone(), rx.clone());
            async move { record_batches(queue, identity, &mut *rx.lock().await).await }
        });
        (Acker { tx }, task)
    }

    /// Records a job's outcome; returns once Redis has, or failed to.
    /// `sent_mail_of` names the job whose sent-mail record goes with it
    /// when it won't run again (empty: none).
    pub async fn finish(&self, queue: &str, raw: &[u8], sent_mail_of: &str, outcome: &Outcome) -> Result<()> {
        let (done, recorded) = oneshot::channel();
        let (queue, raw, outcome) = (queue.to_string(), raw.to_vec(), outcome.clone());
        let request = Request { queue, raw, sent_mail_of: sent_mail_of.to_string(), outcome, done };
        self.tx.send(request).map_err(|_| anyhow!("the outcome recorder has stopped"))?;
        match recorded.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(anyhow!(reason)),
            Err(_) => Err(anyhow!("the outcome recorder has stopped")),
        }
    }
}

async fn record_batches(queue: Queue, identity: String, rx: &mut mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let jobs: Vec<Finished<'_>> = batch
            .iter()
            .map(|r| Finished {
                queue: &r.queue,
                raw: &r.raw,
                sent_mail_of: &r.sent_mail_of,
                outcome: &r.outcome,
            })
            .collect();
        // The lines these jobs logged go out before Redis records them, so
        // a SIGKILL can only cost the lines of jobs that will run again.
        crate::logs::flush();
        let result = match queue.finish(&identity, &jobs).await {
            Ok(0) => Ok(()),
            Ok(gone) => {
                // Each has another copy, which runs instead.
                tracing::warn!(
                    jobs = gone,
                    "finished jobs were no longer in progress here (the Redis master changed, or this runner was taken for dead); their outcomes are left to the copies that run again"
                );
                Ok(())
            }
            Err(err) => Err(format!("{err:#}")),
        };
        drop(jobs);
        for request in batch.drain(..) {
            let _ = request.done.send(result.clone());
        }
    }
}
