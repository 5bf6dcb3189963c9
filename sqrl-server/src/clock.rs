//! The service's clock: Unix seconds, with an offset tests can move forward
//! to expire nuts and attempts without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The clock every handler reads. Cloning shares the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicU64>,
}

impl Clock {
    /// The system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Now, in Unix seconds, plus any offset.
    pub fn now(&self) -> u64 {
        unix_now().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone) forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}
