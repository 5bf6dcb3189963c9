//! Conversations with no login page behind them, kept in memory only.
//!
//! A request whose nut names no live conversation (unknown, used, expired,
//! or made up) still gets a fresh nut, so that a client may retry once (SPEC
//! 3.2): a `query`, or `disable`/`enable`/`remove` from a stale link. Such a
//! conversation has no browser behind it and can log no one in, so nothing is
//! lost if it is: it lives here, bounded, and never costs a durable write. A
//! stream of made-up nuts (one signature each, from anyone) therefore cannot
//! grow the database; at worst it evicts other retries, whose clients then
//! see a second transient error and tell their user to reload the page.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sqrl_core::server::{Conversation, Nut};

/// How many retry conversations are kept at most (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Browserless conversations by nut, oldest evicted first.
#[derive(Debug)]
pub struct RetryConversations {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_nut: HashMap<String, Conversation>,
    /// Insertion order, for eviction; entries already taken are skipped.
    order: VecDeque<String>,
}

impl RetryConversations {
    /// An empty set holding at most `capacity` conversations.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            // The maps stay consistent between statements: keep serving.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Keeps `conversation` under `nut`, evicting the oldest to stay within
    /// the capacity. All share one lifetime (the retry window), so the oldest
    /// are also the first to expire; an expired one that is still here is
    /// refused by the decision like any expired nut.
    pub fn insert(&self, nut: &Nut, conversation: Conversation) {
        let mut inner = self.lock();
        let Inner { by_nut, order } = &mut *inner;
        while by_nut.len() >= self.capacity || order.len() >= 2 * self.capacity {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            by_nut.remove(&oldest);
        }
        order.push_back(nut.as_str().to_owned());
        by_nut.insert(nut.as_str().to_owned(), conversation);
    }

    /// Takes (removes) the conversation under `nut`: a nut is used once.
    pub fn take(&self, nut: &Nut) -> Option<Conversation> {
        self.lock().by_nut.remove(nut.as_str())
    }

    /// How many are kept now.
    pub fn len(&self) -> usize {
        self.lock().by_nut.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn taken_once_and_bounded() {
        let retries = RetryConversations::new(3);
        let nuts: Vec<Nut> = (0..5).map(|_| Nut::generate(&mut OsRng)).collect();
        for nut in &nuts {
            retries.insert(nut, Conversation::for_urls([], None, 100));
        }
        assert_eq!(retries.len(), 3, "the oldest were evicted");
        assert!(retries.take(&nuts[0]).is_none());
        assert!(retries.take(&nuts[4]).is_some());
        assert!(retries.take(&nuts[4]).is_none(), "a nut is used once");
        // Taking and inserting many times never grows the order queue past
        // its bound.
        for _ in 0..100 {
            let nut = Nut::generate(&mut OsRng);
            retries.insert(&nut, Conversation::for_urls([], None, 100));
            retries.take(&nut);
        }
        assert!(retries.lock().order.len() <= 6);
    }
}
