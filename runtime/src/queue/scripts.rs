//! The Lua scripts that make the queue's multi-step moves atomic.
//!
//! Each one runs inside Redis as a single step, so a runner killed halfway,
//! or two runners racing, can neither lose a job nor move it twice.

use redis::Script;
use std::sync::LazyLock;

/// Moves up to ARGV[1] jobs, trying queues in the order given, from their
/// queue into this runner's in-progress list for that queue: the oldest
/// first, as one LMOVE each would, but in two commands per queue.
/// KEYS: pairs of (queue list, in-progress list). ARGV: the most jobs, then
/// the queue names. Returns `{queue name, {job, ...}, queue name, {...}}`
/// for the queues that had jobs.
pub static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local taken = {}
local left = tonumber(ARGV[1])
for i = 1, #ARGV - 1 do
  if left <= 0 then break end
  local jobs = redis.call('RPOP', KEYS[2 * i - 1], left)
  if jobs then
    redis.call('LPUSH', KEYS[2 * i], unpack(jobs))
    taken[#taken + 1] = ARGV[i + 1]
    taken[#taken + 1] = jobs
    left = left - #jobs
  end
end
return taken
",
    )
});

/// Puts every job a runner holds back at the front of its queue, then
/// forgets the runner. Unless forced, does nothing while the runner's last
/// heartbeat is recent, so two runners can't both decide a third is dead and
/// requeue its jobs twice.
/// KEYS: runners set, the runner's in-progress set, the runner's process hash.
/// ARGV: identity, now (epoch s), timeout (s), force ("1" or "0").
/// Returns the number of jobs requeued, or -1 when the runner is alive.
pub static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[4] ~= '1' then
  local beat = redis.call('HGET', KEYS[3], 'beat')
  if beat and tonumber(ARGV[2]) - tonumber(beat) < tonumber(ARGV[3]) then return -1 end
end
local moved = 0
for _, q in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local list = KEYS[2] .. ':' .. q
  while redis.call('LMOVE', list, 'queue:' .. q, 'LEFT', 'RIGHT') do
    moved = moved + 1
  end
  redis.call('SADD', 'queues', q)
end
redis.call('DEL', KEYS[2], KEYS[3], ARGV[1] .. ':workers', ARGV[1] .. ':work')
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', 'processes', ARGV[1])
return moved
",
    )
});

/// Puts back at the front of the queue every job of a live runner's
/// in-progress list that none of its workers is running: a job whose fetch
/// Redis carried out but whose reply was lost (Redis died or the connection
/// broke just then). Running jobs are matched by their JSON, counting
/// duplicates.
/// KEYS: the in-progress list, the queue list. ARGV: the running jobs' JSON.
/// Returns the number of jobs put back.
pub static RESCUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local running = {}
for i = 1, #ARGV do running[ARGV[i]] = (running[ARGV[i]] or 0) + 1 end
local moved = 0
for _, job in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local n = running[job]
  if n and n > 0 then
    running[job] = n - 1
  else
    redis.call('LREM', KEYS[1], 1, job)
    redis.call('RPUSH', KEYS[2], job)
    moved = moved + 1
  end
end
return moved
",
    )
});

/// Moves due jobs of a sorted set (`schedule` or `retry`) to their queues,
/// as Sidekiq's scheduler does: a job is pushed only if this caller's ZREM
/// removed it. A member that isn't JSON goes to `queue:default`, where the
/// runner will dead-letter it with the parse error.
/// Like Sidekiq's re-push through `Client#push`, the job gets a fresh
/// top-level `enqueued_at` (float seconds), so its queue latency counts
/// from now, not from its first push or not at all. The JSON is edited as
/// text, never re-encoded: cjson would turn `[]` into `{}` and round big
/// numbers. A numeric `enqueued_at` that appears more than once (one in
/// the arguments too) is left as it is rather than guessed at.
/// KEYS: the sorted set. ARGV: now (epoch s), the most jobs to move.
pub static ENQUEUE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local function stamped(job, decoded, now)
  if type(decoded.enqueued_at) == 'nil' and string.match(job, '^{%s*"') then
    return '{"enqueued_at":' .. now .. ',' .. string.sub(job, 2)
  end
  if type(decoded.enqueued_at) ~= 'number' then return job end
  local field = '"enqueued_at":%s*%-?[%d%.eE%+%-]+'
  local _, count = string.gsub(job, field, '')
  if count ~= 1 then return job end
  return (string.gsub(job, field, '"enqueued_at":' .. now))
end
local moved = 0
while moved < tonumber(ARGV[2]) do
  local job = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)[1]
  if not job then break end
  if redis.call('ZREM', KEYS[1], job) == 1 then
    local ok, decoded = pcall(cjson.decode, job)
    local q = 'default'
    if ok and type(decoded) == 'table' then
      if KEYS[1] == 'retry' and type(decoded.retry_queue) == 'string' then
        q = decoded.retry_queue
      elseif type(decoded.queue) == 'string' then
        q = decoded.queue
      end
      job = stamped(job, decoded, ARGV[1])
    end
    redis.call('SADD', 'queues', q)
    redis.call('LPUSH', 'queue:' .. q, job)
    moved = moved + 1
  end
end
return moved
"#,
    )
});

/// Records the outcomes of a batch of finished jobs, each only if this
/// runner still holds it: its LREM from the in-progress list must remove
/// it. A job that isn't there any more has another copy that will run (a
/// failover lost its fetch, or the runner was taken for dead and its jobs
/// requeued), so recording it too would add a second copy to the retry
/// set, or drop the sent-mail record that copy needs to not mail again.
/// Because of the same check, recording a batch twice (its reply lost)
/// changes nothing the second time.
/// KEYS: the processed and failed counters (total, today), then per job its
/// in-progress list and where its outcome goes. ARGV: now, the dead set's
/// most age (s) and jobs, the processed and failed counts, then per job
/// what to do (`done`, `forget` its sent mail, `retry`, `dead`, `requeue`), its JSON
/// as fetched, the JSON to store and the retry time.
/// Returns how many jobs weren't held, and so not recorded.
pub static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local gone = 0
for i = 0, (#KEYS - 4) / 2 - 1 do
  local held, target = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local what, raw, payload, at = ARGV[6 + 4 * i], ARGV[7 + 4 * i], ARGV[8 + 4 * i], ARGV[9 + 4 * i]
  if redis.call('LREM', held, -1, raw) == 0 then
    gone = gone + 1
  elseif what == 'forget' then
    redis.call('DEL', target)
  elseif what == 'retry' then
    redis.call('ZADD', target, at, payload)
  elseif what == 'requeue' then
    redis.call('LPUSH', target, payload)
  elseif what == 'dead' then
    redis.call('ZADD', target, now, payload)
    redis.call('ZREMRANGEBYSCORE', target, '-inf', now - tonumber(ARGV[2]))
    redis.call('ZREMRANGEBYRANK', target, 0, -tonumber(ARGV[3]) - 1)
  end
end
redis.call('INCRBY', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('INCRBY', KEYS[3], ARGV[5])
  redis.call('INCRBY', KEYS[4], ARGV[5])
end
return gone
",
    )
});
