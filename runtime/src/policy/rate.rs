//! A token bucket: at most `per_second` events per second on average, with
//! bursts of up to one second's worth. Callers either skip an event when no
//! token is left ([`Rate::try_take`]) or reserve one and wait their turn
//! ([`Rate::reserve`]).

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

    /// Takes a token, borrowing from the future when none is left, and
    /// says how long to wait before using it.
    pub fn reserve(&self) -> Duration {
        let mut bucket = self.refilled();
        bucket.0 -= 1.0;
        Duration::from_secs_f64((-bucket.0).max(0.0) / self.per_second)
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
        let waits: Vec<f64> = (0..7).map(|_| rate.reserve().as_secs_f64()).collect();
        assert!(waits[..5].iter().all(|&w| w < 0.01), "{waits:?}");
        assert!((waits[5] - 0.2).abs() < 0.05 && (waits[6] - 0.4).abs() < 0.05, "{waits:?}");
    }
}
