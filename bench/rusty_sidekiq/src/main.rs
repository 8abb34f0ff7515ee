//! NoopJob under rusty-sidekiq, as fairly as it runs: a Redis pool as large
//! as its concurrency, so no worker waits for a connection, and no logging
//! per job. rusty-sidekiq keeps no `stat:processed` counter, so this one
//! counts its jobs and sets the counter once all are done, which is where
//! scripts/bench's drain ends.
//!
//! Usage: REDIS_URL=redis://... rusty-sidekiq-bench CONCURRENCY JOBS

use async_trait::async_trait;
use sidekiq::{Processor, ProcessorConfig, RedisConnectionManager, RedisPool, Result, Worker};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
struct NoopJob {
    done: Arc<AtomicUsize>,
    jobs: usize,
    redis: RedisPool,
}

#[async_trait]
impl Worker<serde_json::Value> for NoopJob {
    fn disable_argument_coercion(&self) -> bool {
        true
    }

    async fn perform(&self, _args: serde_json::Value) -> Result<()> {
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.jobs {
            let mut conn = self.redis.get().await?;
            redis::cmd("SET")
                .arg("stat:processed")
                .arg(self.jobs)
                .query_async::<()>(conn.unnamespaced_borrow_mut())
                .await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let (concurrency, jobs) = (args.next().unwrap_or(50), args.next().unwrap_or(50_000));
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1/".into());
    let manager = RedisConnectionManager::new(url)?;
    let redis = bb8::Pool::builder().max_size(concurrency as u32 + 2).build(manager).await?;
    let config = ProcessorConfig::default().num_workers(concurrency);
    let mut processor = Processor::new(redis.clone(), vec!["default".to_string()]).with_config(config);
    processor.register(NoopJob { done: Arc::new(AtomicUsize::new(0)), jobs, redis });
    processor.run().await;
    Ok(())
}
