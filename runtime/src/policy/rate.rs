//! A token bucket: at most `per_second` events per second on average, with
//! bursts of up to one second's worth.

use std::sync::Mutex;
use std::time::Instant;

/// Allows `per_second` events per second, shared by every instance of a plugin.
pub struct Rate {
    /// Tokens added per second, and the most the bucket holds.
    per_second: f64,
    /// Tokens left and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl Rate {
    pub fn new(per_second: u32) -> Rate {
        let per_second = f64::from(per_second);
        Rate { per_second, bucket: Mutex::new((per_second, Instant::now())) }
    }

    /// Takes a token if one is left.
    pub fn try_take(&self) -> bool {
        let mut bucket = self.bucket.lock().expect("rate bucket lock");
        let (tokens, counted) = &mut *bucket;
        let now = Instant::now();
        *tokens =
            (*tokens + now.duration_since(*counted).as_secs_f64() * self.per_second).min(self.per_second);
        *counted = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
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
}
