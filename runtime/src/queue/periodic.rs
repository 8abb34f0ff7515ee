//! The state of periodic jobs in Redis: one hash per job, holding the last
//! tick enqueued (so each tick is enqueued once, by whichever runner gets
//! there first), the last run and jid, and whether the dashboard turned
//! it off or on.

use super::{Queue, keys};
use anyhow::{Context, Result};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Pushes a tick's job unless the job is off or the tick (or a later one)
/// was enqueued already.
/// KEYS: the job's state hash, the queue list. ARGV: tick (epoch s), job
/// JSON, jid, queue name, now, "1" if the file enables it.
/// Returns 1 when pushed, 0 when enqueued already, -1 when off.
static TICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local enabled = redis.call('HGET', KEYS[1], 'enabled')
if enabled == 'false' or (not enabled and ARGV[6] ~= '1') then return -1 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_tick') or '0')
if last >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'last_tick', ARGV[1], 'last_jid', ARGV[3], 'last_run', ARGV[5])
redis.call('SADD', 'queues', ARGV[4])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
",
    )
});

/// What Redis holds about one periodic job.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PeriodicState {
    /// On or off as the dashboard last set it; `None`: as the file says.
    pub enabled: Option<bool>,
    /// The last tick enqueued, in epoch seconds.
    pub last_tick: Option<f64>,
    /// When its job was last pushed (by a tick or by hand), in epoch seconds.
    pub last_run: Option<f64>,
    /// The jid of that job.
    pub last_jid: Option<String>,
}

/// How a tick went.
#[derive(Debug, PartialEq)]
pub enum Tick {
    /// Pushed now.
    Pushed,
    /// Another runner pushed it first.
    Taken,
    /// The job is off.
    Off,
}

impl Queue {
    /// Pushes the job of the tick `at` of periodic job `name`, once.
    pub async fn periodic_tick(
        &self,
        name: &str,
        at: f64,
        (queue, jid, payload): (&str, &str, &str),
        on: bool,
    ) -> Result<Tick> {
        let mut conn = self.connection();
        let pushed: i64 = TICK
            .key(keys::periodic(name))
            .key(keys::queue(queue))
            .arg(at)
            .arg(payload)
            .arg(jid)
            .arg(queue)
            .arg(crate::clock::now())
            .arg(if on { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .with_context(|| format!("enqueuing periodic job {name}"))?;
        Ok(match pushed {
            1 => Tick::Pushed,
            0 => Tick::Taken,
            _ => Tick::Off,
        })
    }

    /// What Redis holds about periodic job `name`.
    pub async fn periodic_state(&self, name: &str) -> Result<PeriodicState> {
        let mut conn = self.connection();
        let fields: HashMap<String, String> = conn
            .hgetall(keys::periodic(name))
            .await
            .with_context(|| format!("reading periodic job {name}"))?;
        let number = |key: &str| fields.get(key).and_then(|v| v.parse().ok());
        Ok(PeriodicState {
            enabled: fields.get("enabled").map(|v| v == "true"),
            last_tick: number("last_tick"),
            last_run: number("last_run"),
            last_jid: fields.get("last_jid").cloned(),
        })
    }

    /// Turns periodic job `name` on or off for every runner.
    pub async fn set_periodic_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let mut conn = self.connection();
        conn.hset::<_, _, _, ()>(keys::periodic(name), "enabled", enabled.to_string())
            .await
            .with_context(|| format!("turning periodic job {name} {}", if enabled { "on" } else { "off" }))
    }

    /// Pushes periodic job `name`'s job now, outside its schedule.
    pub async fn enqueue_periodic_now(
        &self,
        name: &str,
        (queue, jid, payload): (&str, &str, &str),
    ) -> Result<()> {
        let mut conn = self.connection();
        redis::pipe()
            .atomic()
            .sadd(keys::QUEUES, queue)
            .lpush(keys::queue(queue), payload)
            .hset_multiple(
                keys::periodic(name),
                &[("last_jid", jid.to_string()), ("last_run", crate::clock::now().to_string())],
            )
            .exec_async(&mut conn)
            .await
            .with_context(|| format!("enqueuing periodic job {name} now"))
    }
}
