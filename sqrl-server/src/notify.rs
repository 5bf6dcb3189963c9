//! Live updates to waiting login pages.
//!
//! A notification carries no data: it only says "login attempt X changed, read
//! it again". The state itself always lives in the [`crate::store::Store`], so a
//! notifier may drop or merge notifications without losing anything, and a
//! cross-instance implementation (e.g. PostgreSQL `LISTEN/NOTIFY`) only has to
//! fan remote notifications into the same local [`Subscription`]s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::watch;

/// Publishes and delivers "attempt changed" notifications.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Wakes everyone subscribed to `attempt`. Called after the change is
    /// committed, so a woken reader sees it.
    async fn notify(&self, attempt: &str);

    /// Wakes this process's subscribers to `attempt` only: the change's own
    /// commit already told the other instances (a PostgreSQL step publishes
    /// in its transaction). Where there are no other instances, the same as
    /// [`Notifier::notify`].
    async fn notify_here(&self, attempt: &str) {
        self.notify(attempt).await;
    }

    /// After a commit that changed `attempt`: wakes everyone, or only this
    /// process's subscribers when the commit `published` the change itself.
    async fn notify_committed(&self, attempt: &str, published: bool) {
        if published {
            self.notify_here(attempt).await;
        } else {
            self.notify(attempt).await;
        }
    }

    /// Subscribes to `attempt`. Subscribe *before* reading the state: a change
    /// committed between the read and the wait is then still delivered.
    fn subscribe(&self, attempt: &str) -> Subscription;
}

/// A subscription to one attempt's notifications. The channel carries the
/// time of the latest notification (when this process published or received
/// it), so the waiting side can measure its delivery latency.
#[derive(Debug)]
pub struct Subscription {
    receiver: watch::Receiver<Option<Instant>>,
}

impl Subscription {
    /// A subscription fed by `receiver` (for [`Notifier`] implementations).
    pub fn new(receiver: watch::Receiver<Option<Instant>>) -> Self {
        Self { receiver }
    }

    /// Waits for the next notification since the last call (or since
    /// subscribing). Returns `false` when no notification can come any more.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }

    /// When the latest notification was published, if any.
    pub fn last_notified(&self) -> Option<Instant> {
        *self.receiver.borrow()
    }
}

/// Notifications within one process: one `watch` channel per attempt with
/// live subscribers.
#[derive(Debug, Default)]
pub struct InProcessNotifier {
    channels: Mutex<Channels>,
}

#[derive(Debug, Default)]
struct Channels {
    by_attempt: HashMap<String, watch::Sender<Option<Instant>>>,
    /// Map size after the last sweep: sweeping again once it doubles keeps
    /// the cost amortised O(1) per subscription.
    swept_len: usize,
}

impl Channels {
    fn sweep_if_grown(&mut self) {
        if self.by_attempt.len() > 64 && self.by_attempt.len() > 2 * self.swept_len {
            self.by_attempt
                .retain(|_, sender| sender.receiver_count() > 0);
            self.swept_len = self.by_attempt.len();
        }
    }
}

impl InProcessNotifier {
    /// A notifier with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, Channels> {
        match self.channels.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Wakes every subscriber (after notifications may have been missed).
    pub fn notify_all(&self) {
        let now = Some(Instant::now());
        for sender in self.channels().by_attempt.values() {
            sender.send_replace(now);
        }
    }

    /// Number of attempts with a channel (tests).
    pub fn channel_count(&self) -> usize {
        self.channels().by_attempt.len()
    }
}

#[async_trait]
impl Notifier for InProcessNotifier {
    async fn notify(&self, attempt: &str) {
        let mut channels = self.channels();
        let drop_channel = match channels.by_attempt.get(attempt) {
            Some(sender) => {
                sender.send_replace(Some(Instant::now()));
                sender.receiver_count() == 0
            }
            None => false,
        };
        if drop_channel {
            channels.by_attempt.remove(attempt);
        }
    }

    fn subscribe(&self, attempt: &str) -> Subscription {
        let mut channels = self.channels();
        channels.sweep_if_grown();
        let receiver = match channels.by_attempt.get(attempt) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(None);
                channels.by_attempt.insert(attempt.to_owned(), sender);
                receiver
            }
        };
        Subscription::new(receiver)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_to_the_right_subscriber_only() {
        let notifier = InProcessNotifier::new();
        let mut a = notifier.subscribe("a");
        let mut b = notifier.subscribe("b");
        notifier.notify("a").await;
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .expect("a is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.changed())
                .await
                .is_err(),
            "b is not woken"
        );
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_lost() {
        let notifier = InProcessNotifier::new();
        let mut a = notifier.subscribe("a");
        notifier.notify("a").await;
        notifier.notify("a").await;
        assert!(a.changed().await);
        assert!(a.last_notified().is_some());
        drop(a);
        notifier.notify("a").await;
        assert_eq!(
            notifier.channel_count(),
            0,
            "channels without subscribers go"
        );
    }
}
