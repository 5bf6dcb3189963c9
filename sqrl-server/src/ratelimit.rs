//! Per-address token buckets.
//!
//! Only abuse protection lives in memory here: losing it on restart loses
//! nothing a user relies on. Buckets are generous by default because one NAT
//! address can be a whole office (the burst covers a morning rush of logins,
//! the rate a steady stream of page polls).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

/// How many idle buckets may pile up before a sweep drops the full ones.
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by client address block.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter with every bucket starting full.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; `false` means "too many requests".
    pub fn check(&self, key: IpAddr, now: Instant) -> bool {
        let burst = f64::from(self.limit.burst);
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            // A panic elsewhere while holding the lock cannot leave a bucket
            // half-updated in a way that matters; keep limiting.
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > SWEEP_THRESHOLD {
            let per_second = self.limit.per_second;
            buckets.retain(|_, bucket| {
                let refill =
                    now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second;
                bucket.tokens + refill < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check(a, t0));
        assert!(limiter.check(a, t0));
        assert!(limiter.check(a, t0));
        assert!(!limiter.check(a, t0), "burst exhausted");
        assert!(limiter.check(b, t0), "other addresses are unaffected");
        assert!(
            limiter.check(a, t0 + Duration::from_millis(500)),
            "one token after 0.5 s"
        );
        assert!(!limiter.check(a, t0 + Duration::from_millis(500)));
    }
}
