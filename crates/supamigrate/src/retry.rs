//! Retrying work that failed for a transient reason (the server restarted,
//! the connection was reset, a deadlock): exponential backoff with jitter,
//! bounded in time, each retry logged.

use std::time::{Duration, Instant};

use crate::error::Error;

/// How long a piece of work keeps retrying before its error stands.
pub const RETRY_FOR: Duration = Duration::from_secs(120);

/// The waits between attempts of one piece of work.
#[derive(Debug)]
pub struct Backoff {
    started: Instant,
    limit: Duration,
    attempt: u32,
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// Retries for up to `limit` in total, waiting 0.2 s, 0.4 s, … up to 10 s.
    pub fn new(limit: Duration) -> Backoff {
        Backoff {
            started: Instant::now(),
            limit,
            attempt: 0,
            first: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }

    /// Attempts waited for so far.
    pub fn retries(&self) -> u32 {
        self.attempt
    }

    /// The wait before retry number `attempt` (0-based), without jitter.
    fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max)
    }

    /// After `e`: whether to try again. When yes, waits first (half to all of
    /// the backoff delay, at random, so workers do not retry in step).
    pub async fn retry(&mut self, e: &Error, what: &str) -> bool {
        let elapsed = self.started.elapsed();
        if !e.is_retryable() || elapsed >= self.limit {
            return false;
        }
        let full = self.delay(self.attempt);
        let wait = full.mul_f64(0.5 + 0.5 * jitter()).min(self.limit - elapsed);
        self.attempt += 1;
        tracing::warn!(
            error = %e,
            attempt = self.attempt,
            wait_ms = wait.as_millis() as u64,
            "{what}: retrying"
        );
        tokio::time::sleep(wait).await;
        true
    }
}

/// A number in [0, 1), different on every call (not for cryptography).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::new(RETRY_FOR);
        let ms: Vec<u128> = (0..8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
    }

    #[tokio::test]
    async fn waits_between_attempts_and_stops_at_the_limit() {
        let mut b = Backoff::new(Duration::from_millis(700));
        let e = Error::new(ErrorKind::Connection, "reset");
        let started = Instant::now();
        let mut n = 0;
        while b.retry(&e, "test").await {
            n += 1;
        }
        let took = started.elapsed();
        assert!(n >= 2, "{n} retries");
        assert!(
            took >= Duration::from_millis(300),
            "{took:?}: retries waited"
        );
        assert!(took < Duration::from_millis(1500), "{took:?}: bounded");
        assert!(
            !Backoff::new(RETRY_FOR)
                .retry(&Error::new(ErrorKind::Database, "syntax"), "t")
                .await
        );
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
