//! Waiting longer after each try in a row that came to nothing: a Redis
//! that isn't up yet, an outcome that couldn't be recorded, an empty queue.
//! Each wait doubles, up to a ceiling.

use std::time::Duration;

/// The waits between tries.
pub struct Backoff {
    /// The wait before the next try.
    next: Duration,
    /// The longest wait.
    max: Duration,
}

impl Backoff {
    /// Waits of `first`, twice that, ... up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first.min(max), max }
    }

    /// How long to wait before the next try.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }
}
