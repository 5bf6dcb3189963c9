//! Per-address rate limit: a keyed GCRA limiter (`governor`).
//!
//! Only abuse protection lives in memory here: losing it on restart loses
//! nothing a user relies on. The quota is generous by default because one NAT
//! address can be a whole office (the burst covers a morning rush of logins,
//! the rate a steady stream of page polls).
//!
//! Memory stays bounded by [`RateLimiter::sweep`], which a timer calls (see
//! [`RateLimiter::run_sweeper`]): it forgets every address whose allowance
//! has refilled, since remembering it would change no answer. A flood of
//! distinct addresses therefore holds at most the addresses seen within one
//! refill time (plus one request's worth) and one sweep period, and no
//! request pays for the sweep.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{NotUntil, Quota};
use tokio::sync::watch;

use crate::config::RateLimit;

/// How often idle addresses are forgotten.
pub const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// The longest interval between two refilled requests a quota may ask for;
/// a smaller rate would only mean "practically never", and bounding it keeps
/// the period representable.
const LONGEST_PERIOD: Duration = Duration::from_secs(24 * 3600);

type Keyed<C> = governor::RateLimiter<
    IpAddr,
    HashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A request the limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// How long until the address may send its next request.
    pub retry_after: Duration,
}

/// Rate limits keyed by client address block ([`crate::net::rate_limit_key`]).
pub struct RateLimiter<C: Clock = MonotonicClock> {
    limiter: Keyed<C>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("tracked_addresses", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on the monotonic clock, with every address starting with
    /// its whole burst.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_clock(limit, MonotonicClock)
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// A limiter on `clock` (tests pass a clock they move by hand).
    pub fn with_clock(limit: RateLimit, clock: C) -> Self {
        Self {
            limiter: governor::RateLimiter::hashmap_with_clock(quota(limit), clock.clone()),
            clock,
        }
    }

    /// Counts one request from `key`; `Err` means "too many requests".
    pub fn check(&self, key: IpAddr) -> Result<(), Limited> {
        self.limiter
            .check_key(&key)
            .map_err(|not_until: NotUntil<C::Instant>| Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// Forgets every address whose allowance has refilled.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many addresses the limiter remembers now.
    pub fn tracked_addresses(&self) -> usize {
        self.limiter.len()
    }
}

impl RateLimiter {
    /// Calls [`sweep`](Self::sweep) every [`SWEEP_PERIOD`] until `shutdown`
    /// turns `true` (or its sender is gone).
    pub async fn run_sweeper(&self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(SWEEP_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.sweep(),
                changed = shutdown.wait_for(|stopped| *stopped) => {
                    let _ = changed;
                    return;
                }
            }
        }
    }
}

/// The GCRA quota of a token bucket of `burst` tokens refilled at
/// `per_second`: the same answers, without a bucket per address to update.
fn quota(limit: RateLimit) -> Quota {
    let period = Duration::try_from_secs_f64(1.0 / limit.per_second)
        .unwrap_or(LONGEST_PERIOD)
        .clamp(Duration::from_nanos(1), LONGEST_PERIOD);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

/// `Retry-After` in whole seconds, rounded up, at least one.
pub fn retry_after_secs(limited: Limited) -> u64 {
    let wait = limited.retry_after;
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(per_second: f64, burst: u32) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(RateLimit { per_second, burst }, clock.clone());
        (limiter, clock)
    }

    fn address(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn burst_then_refill() {
        let (limiter, clock) = limiter(2.0, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let refused = limiter.check(a).expect_err("burst exhausted");
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert!(limiter.check(b).is_ok(), "other addresses are unaffected");
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(a).is_ok(), "one token after 0.5 s");
        assert!(limiter.check(a).is_err());
    }

    #[test]
    fn a_limited_address_recovers_its_whole_burst() {
        let (limiter, clock) = limiter(10.0, 5);
        let a = address(1);
        while limiter.check(a).is_ok() {}
        clock.advance(Duration::from_millis(500));
        for n in 0..5 {
            assert!(limiter.check(a).is_ok(), "request {n} after a full refill");
        }
        assert!(limiter.check(a).is_err(), "and no more than the burst");
    }

    #[test]
    fn a_flood_of_addresses_is_forgotten_once_refilled() {
        let (limiter, clock) = limiter(20.0, 300);
        for n in 0..10_000 {
            assert!(limiter.check(address(n)).is_ok());
        }
        assert_eq!(limiter.tracked_addresses(), 10_000);
        // One request takes 50 ms of allowance: before it is back, every
        // address must be kept (forgetting it would hand out a fresh burst).
        clock.advance(Duration::from_millis(20));
        limiter.sweep();
        assert_eq!(limiter.tracked_addresses(), 10_000);
        // Once it is back (governor waits one more request's worth, to be
        // sure), remembering an address would change no answer.
        clock.advance(Duration::from_millis(100));
        limiter.sweep();
        assert_eq!(limiter.tracked_addresses(), 0);
    }

    #[test]
    fn a_sweep_keeps_addresses_that_are_still_limited() {
        let (limiter, clock) = limiter(1.0, 2);
        let busy = address(7);
        while limiter.check(busy).is_ok() {}
        clock.advance(Duration::from_millis(1500));
        limiter.sweep();
        assert_eq!(limiter.tracked_addresses(), 1);
        assert!(limiter.check(busy).is_ok(), "one token back after 1.5 s");
        assert!(limiter.check(busy).is_err(), "but not the whole burst");
    }

    #[test]
    fn extreme_rates_make_a_usable_quota() {
        for (per_second, burst) in [(1e-300, 1), (1e300, 1), (f64::MIN_POSITIVE, 0)] {
            let (limiter, _clock) = limiter(per_second, burst);
            assert!(limiter.check(address(1)).is_ok(), "{per_second}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let secs = |millis| {
            retry_after_secs(Limited {
                retry_after: Duration::from_millis(millis),
            })
        };
        assert_eq!(secs(0), 1);
        assert_eq!(secs(500), 1);
        assert_eq!(secs(1000), 1);
        assert_eq!(secs(1001), 2);
    }
}
