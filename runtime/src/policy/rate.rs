//! A token bucket: at most `per_second` events per second on average, with
//! bursts of up to one second's worth. Callers either skip an event when no
//! token is left ([`Rate::try_take`]) or reserve one and wait their turn
//! ([`Rate::reserve`]). A turn given up before it comes (the job timed out
//! or was cancelled while waiting) goes back to the bucket: otherwise the
//! debt of abandoned turns would grow under load until nothing is sent.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Allows `per_second` events per second, shared by every instance of a plugin.
pub struct Rate {
    /// Tokens added per second, and the most the bucket holds.
    per_second: f64,
    /// Tokens left (negative when reserved ahead) and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl Rate {
    pub fn new(per_second: u32) -> Rate {
        let per_second = f64::from(per_second);
        Rate { per_second, bucket: Mutex::new((per_second, Instant::now())) }
    }

    /// Takes a token if one is left.
    pub fn try_take(&self) -> bool {
        let mut bucket = self.refilled();
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token, borrowing from the future when none is left: the
    /// turn says how long to wait before using it.
    pub fn reserve(&self) -> Turn<'_> {
        let mut bucket = self.refilled();
        bucket.0 -= 1.0;
        let wait = Duration::from_secs_f64((-bucket.0).max(0.0) / self.per_second);
        Turn { rate: self, wait, taken: false }
    }

    /// Puts back a token reserved and never used.
    fn give_back(&self) {
        let mut bucket = self.refilled();
        bucket.0 = (bucket.0 + 1.0).min(self.per_second);
    }

    fn refilled(&self) -> MutexGuard<'_, (f64, Instant)> {
        let mut bucket = self.bucket.lock().expect("rate bucket lock");
        let now = Instant::now();
        let (tokens, counted) = &mut *bucket;
        let earned = now.duration_since(*counted).as_secs_f64() * self.per_second;
        *tokens = (*tokens + earned).min(self.per_second);
        *counted = now;
        bucket
    }
}

/// A reserved token: used once [`Turn::wait`] has waited for it, given
/// back if dropped before.
pub struct Turn<'a> {
    rate: &'a Rate,
    /// How long until the token may be used.
    pub wait: Duration,
    taken: bool,
}

impl std::fmt::Debug for Turn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("wait", &self.wait).finish()
    }
}

impl Turn<'_> {
    /// Waits for the turn and uses it.
    pub async fn wait(mut self) {
        if !self.wait.is_zero() {
            tokio::time::sleep(self.wait).await;
        }
        self.taken = true;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.taken {
            self.rate.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn allows_a_burst_then_refuses() {
        let rate = super::Rate::new(5);
        assert_eq!((0..20).filter(|_| rate.try_take()).count(), 5);
    }

    #[test]
    fn reservations_beyond_the_burst_wait_their_turn() {
        let rate = super::Rate::new(5);
        let turns: Vec<_> = (0..7).map(|_| rate.reserve()).collect();
        let waits: Vec<f64> = turns.iter().map(|t| t.wait.as_secs_f64()).collect();
        assert!(waits[..5].iter().all(|&w| w < 0.01), "{waits:?}");
        assert!((waits[5] - 0.2).abs() < 0.05 && (waits[6] - 0.4).abs() < 0.05, "{waits:?}");
    }

    #[test]
    fn turns_given_up_go_back_to_the_bucket() {
        let rate = super::Rate::new(2);
        // Many waiters time out: none of their turns is used.
        for _ in 0..50 {
            drop(rate.reserve());
        }
        let next = rate.reserve();
        assert!(next.wait.as_secs_f64() < 0.01, "abandoned turns left a debt: {:?}", next.wait);
    }
}
