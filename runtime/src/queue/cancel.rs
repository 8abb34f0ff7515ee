//! Cancelling a job by jid, on Redis's side: the jid is recorded in
//! `jobrunner:cancelled` (kept a day, for a runner that missed the news)
//! and published on `jobrunner:cancel` (for the runner running it, at
//! once), and the job is taken out of the schedule, the retry set and
//! every queue where it waits. A job is found by its own top-level `jid`,
//! never by a jid that its arguments mention (an admin job about job X).

use super::{Queue, keys};
use crate::clock;
use anyhow::{Context, Result, bail};
use futures_util::{Stream, StreamExt};
use redis::AsyncCommands;

/// How long a cancellation is remembered, in seconds.
pub const REMEMBERED_SECS: f64 = 86_400.0;
/// Queue entries read per round trip while looking for a job.
const PAGE: isize = 1000;

/// Where a cancelled job was found.
#[derive(Debug, Default, PartialEq, serde::Serialize)]
pub struct Cancelled {
    /// The sets (`schedule`, `retry`) and queues it was taken out of.
    pub removed_from: Vec<String>,
    /// The processes running it, which are told to stop it.
    pub running_on: Vec<String>,
}

impl Queue {
    /// Cancels the job `jid`, wherever it is.
    pub async fn cancel(&self, jid: &str) -> Result<Cancelled> {
        check_jid(jid)?;
        let mut conn = self.connection();
        let now = clock::now();
        redis::pipe()
            .atomic()
            .zadd(keys::CANCELLED, jid, now)
            .zrembyscore(keys::CANCELLED, "-inf", now - REMEMBERED_SECS)
            .publish(keys::CANCEL_CHANNEL, jid)
            // As Sidekiq's `cancel!` marks an iterable job, for its Web UI.
            .hset_nx(keys::iteration(jid), "cancelled", now as i64)
            .expire(keys::iteration(jid), super::iteration::STATE_TTL_SECS)
            .exec_async(&mut conn)
            .await
            .with_context(|| format!("recording the cancellation of job {jid}"))?;
        let mut found = Cancelled::default();
        let needle = format!("\"jid\":\"{jid}\"");
        for set in [keys::SCHEDULE, keys::RETRY] {
            if self.remove_from_set(set, &needle).await? {
                found.removed_from.push(set.to_string());
            }
        }
        let queues: Vec<String> = conn.smembers(keys::QUEUES).await.context("listing the queues")?;
        for name in queues {
            if self.remove_from_queue(&name, &needle).await? {
                found.removed_from.push(format!("queue:{name}"));
            }
        }
        found.running_on = self.running_on(&needle).await?;
        Ok(found)
    }

    /// Removes the members of `set` that contain `needle`; whether any was.
    async fn remove_from_set(&self, set: &str, needle: &str) -> Result<bool> {
        let mut conn = self.connection();
        let pattern = format!("*{}*", glob_escape(needle));
        let members: Vec<String> = {
            let mut scan = conn.zscan_match::<_, _, (String, f64)>(set, &pattern).await?;
            let mut members = Vec::new();
            while let Some((member, _score)) = scan.next().await {
                if is_job(&member, needle) {
                    members.push(member);
                }
            }
            members
        };
        let mut conn = self.connection();
        let mut removed = 0;
        for member in members {
            removed += conn
                .zrem::<_, _, i64>(set, member)
                .await
                .with_context(|| format!("removing a job from {set}"))?;
        }
        Ok(removed > 0)
    }

    /// Removes the jobs in queue `name` that contain `needle`; whether any was.
    async fn remove_from_queue(&self, name: &str, needle: &str) -> Result<bool> {
        let mut conn = self.connection();
        let key = keys::queue(name);
        let mut start = 0;
        let mut removed = 0;
        loop {
            let page: Vec<String> = conn.lrange(&key, start, start + PAGE - 1).await?;
            let mut removed_here = 0;
            for job in page.iter().filter(|job| is_job(job, needle)) {
                removed_here += conn.lrem::<_, _, i64>(&key, 0, job).await?;
            }
            removed += removed_here;
            if page.len() < PAGE as usize {
                return Ok(removed > 0);
            }
            // What was removed from this page moved the rest up.
            start += (PAGE - removed_here as isize).max(0);
        }
    }

    /// The processes whose running jobs include one containing `needle`.
    async fn running_on(&self, needle: &str) -> Result<Vec<String>> {
        let mut conn = self.connection();
        let processes: Vec<String> = conn.smembers(keys::PROCESSES).await.context("listing the processes")?;
        let mut running = Vec::new();
        for identity in processes {
            let work: Vec<String> = conn.hvals(keys::work(&identity)).await?;
            if work.iter().any(|entry| runs_job(entry, needle)) {
                running.push(identity);
            }
        }
        Ok(running)
    }

    /// The jids cancelled in the last day.
    pub async fn cancelled_jids(&self) -> Result<Vec<String>> {
        let mut conn = self.connection();
        let since = clock::now() - REMEMBERED_SECS;
        conn.zrangebyscore(keys::CANCELLED, since, "+inf").await.context("reading the cancelled jobs")
    }

    /// The jids cancelled from now on, as they are published.
    pub async fn cancellations(&self) -> Result<impl Stream<Item = String> + use<>> {
        let mut pubsub =
            self.link.load().client.get_async_pubsub().await.context("subscribing to cancellations")?;
        pubsub.subscribe(keys::CANCEL_CHANNEL).await.context("subscribing to cancellations")?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|message| std::future::ready(message.get_payload::<String>().ok())))
    }
}

/// A jid as Sidekiq makes them (hex) or as a client might (letters,
/// digits, `-`, `_`), up to 64 characters: nothing a pattern or JSON
/// string would read differently.
pub fn check_jid(jid: &str) -> Result<()> {
    let valid = !jid.is_empty()
        && jid.len() <= 64
        && jid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        bail!("{jid:?} is not a jid (letters, digits, - and _, up to 64)");
    }
    Ok(())
}

/// Whether `job` (a job's JSON) is the job whose `"jid":"..."` is
/// `needle`: the text is looked for first, which rules out nearly all
/// without parsing, then the top-level field is read.
fn is_job(job: &str, needle: &str) -> bool {
    job.contains(needle)
        && serde_json::from_str::<serde_json::Value>(job).is_ok_and(|job| jid_field(&job, needle))
}

/// Whether a `<identity>:work` entry (`{queue, payload, run_at}`, with the
/// payload as JSON text or, from Sidekiq 8, an object) runs the job.
fn runs_job(entry: &str, needle: &str) -> bool {
    let Ok(entry) = serde_json::from_str::<serde_json::Value>(entry) else { return false };
    match &entry["payload"] {
        serde_json::Value::String(payload) => is_job(payload, needle),
        payload => jid_field(payload, needle),
    }
}

/// Whether the top-level `jid` of `job` makes `needle`.
fn jid_field(job: &serde_json::Value, needle: &str) -> bool {
    job.get("jid").and_then(|jid| jid.as_str()).is_some_and(|jid| format!("\"jid\":\"{jid}\"") == needle)
}

/// `text` with Redis's glob characters escaped.
fn glob_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_jids_are_accepted() {
        assert!(check_jid("b4a577edbccf1d805744efa9").is_ok());
        assert!(check_jid("a-b_C").is_ok());
        for bad in ["", "a\"b", "a*", "x".repeat(65).as_str(), "a b"] {
            assert!(check_jid(bad).is_err(), "{bad:?}");
        }
        assert_eq!(glob_escape(r#""jid":"a*"#), r#""jid":"a\*"#);
    }

    #[test]
    fn a_job_is_found_by_its_own_jid_not_one_its_arguments_name() {
        let needle = r#""jid":"abc""#;
        assert!(is_job(r#"{"class":"A","args":[],"jid":"abc"}"#, needle));
        let about = r#"{"class":"Audit","args":[{"jid":"abc"}],"jid":"def"}"#;
        assert!(!is_job(about, needle), "an admin job about job abc is not job abc");
        let work = serde_json::json!({"queue": "default", "payload": about, "run_at": 1}).to_string();
        assert!(!runs_job(&work, needle));
        let work =
            serde_json::json!({"queue": "default", "payload": {"jid": "abc"}, "run_at": 1}).to_string();
        assert!(runs_job(&work, needle));
    }
}
