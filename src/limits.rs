//! Admission control: a token bucket per principal (`RESOURCE_EXHAUSTED`
//! when empty) and a bound on calls in flight (`UNAVAILABLE` when full), so
//! overload is refused with a retry hint instead of queueing without limit.

use crate::error::Error;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Principals idle this long are forgotten (their bucket would be full).
const IDLE_FORGET: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per principal: `rate` requests per second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` per second with bursts of `burst`; a rate of 0 admits everything.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `principal` at `now`, or says when to retry.
    pub fn admit(&self, principal: &str, now: Instant) -> Result<(), Error> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.last) < IDLE_FORGET);
        }
        let bucket = buckets.entry(principal.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err(Error::ResourceExhausted {
            subject: format!("principal:{principal}"),
            description: format!(
                "more than {} requests per second (burst {}); slow down",
                self.rate, self.burst
            ),
            retry_after: Duration::from_secs_f64(wait).max(Duration::from_millis(1)),
        })
    }
}

/// A bound on calls in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    slots: Arc<Semaphore>,
}

impl InFlight {
    /// At most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// A slot held until dropped, or `UNAVAILABLE` when all are taken.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Unavailable {
                reason: "OVERLOADED".into(),
                message: "too many calls in flight; retry shortly".into(),
                retry_after: Duration::from_millis(200),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 2.0);
        let t0 = Instant::now();
        assert!(limiter.admit("a", t0).is_ok());
        assert!(limiter.admit("a", t0).is_ok());
        let Err(Error::ResourceExhausted { retry_after, .. }) = limiter.admit("a", t0) else {
            panic!("the third call in a burst of 2 is refused")
        };
        assert!(retry_after <= Duration::from_millis(100));
        assert!(limiter.admit("b", t0).is_ok(), "buckets are per principal");
        assert!(limiter.admit("a", t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn zero_rate_admits_everything() {
        let limiter = RateLimiter::new(0.0, 0.0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.admit("a", now).is_ok()));
    }

    #[test]
    fn in_flight_is_bounded() {
        let limit = InFlight::new(1);
        let held = limit.enter().expect("first slot");
        assert!(limit.enter().is_err());
        drop(held);
        assert!(limit.enter().is_ok());
    }
}
