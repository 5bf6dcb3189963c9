//! "Attempt changed" across instances: PostgreSQL `LISTEN/NOTIFY`.
//!
//! Each instance keeps one connection listening on [`CHANNEL`] and fans what
//! it hears into its own [`InProcessNotifier`], where the event streams of
//! its waiting pages are subscribed. Publishing wakes local subscribers at
//! once and sends `pg_notify` for the others; the payload names the sending
//! instance so it does not wake itself twice.
//!
//! A notification only says "read the attempt again" (see [`crate::notify`]),
//! so losing some is safe: while the listening connection is down (the
//! database restarted, the network dropped) pages fall back to their
//! periodic re-read, and on reconnecting every local subscriber is woken
//! once to catch up on what was missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures_util::StreamExt as _;
use rand_core::{OsRng, RngCore as _};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::PostgresStore;
use crate::notify::{InProcessNotifier, Notifier, Subscription};

/// The notification channel.
pub const CHANNEL: &str = "sqrl_attempt_changed";

/// Reconnection backoff bounds.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Publishes to and listens on [`CHANNEL`].
#[derive(Debug)]
pub struct PostgresNotifier {
    local: Arc<InProcessNotifier>,
    pool: Pool,
    instance: String,
    status: Arc<ListenerStatus>,
    listener: tokio::task::JoinHandle<()>,
}

/// What the listening connection is doing (tests and logs).
#[derive(Debug, Default)]
pub struct ListenerStatus {
    listening: AtomicBool,
    connections: AtomicU64,
    received: AtomicU64,
}

impl ListenerStatus {
    /// Whether the listening connection is up.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// How many times it (re)connected.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Notifications received from other instances.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl PostgresNotifier {
    /// Starts listening with `store`'s connection settings. Returns at once;
    /// the listener connects (and reconnects) in the background.
    pub fn start(store: &PostgresStore) -> Self {
        let local = Arc::new(InProcessNotifier::new());
        let instance = store.instance().to_owned();
        let status = Arc::new(ListenerStatus::default());
        let listener = tokio::spawn(listen(
            store.config().clone(),
            Arc::clone(&local),
            instance.clone(),
            Arc::clone(&status),
        ));
        Self {
            local,
            pool: store.pool.clone(),
            instance,
            status,
            listener,
        }
    }

    /// The listening connection's status.
    pub fn status(&self) -> &ListenerStatus {
        &self.status
    }
}

/// A new random name for this process's notifications.
pub(super) fn instance_name() -> String {
    let mut id = [0u8; 8];
    OsRng.fill_bytes(&mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload of a notification that `instance` changed `attempt`.
fn payload(instance: &str, attempt: &str) -> String {
    format!("{instance} {attempt}")
}

/// The notification statement, prepared once per connection.
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// Tells the other instances, from inside the transaction that changed
/// `attempt`, that it changed: PostgreSQL delivers the notification when,
/// and only if, that transaction commits.
pub(super) async fn publish<C: deadpool_postgres::GenericClient>(
    c: &C,
    instance: &str,
    attempt: &str,
) -> Result<(), super::StoreError> {
    let statement = c.prepare_cached(NOTIFY).await?;
    c.query(&statement, &[&CHANNEL, &payload(instance, attempt)])
        .await?;
    Ok(())
}

impl Drop for PostgresNotifier {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl Notifier for PostgresNotifier {
    async fn notify(&self, attempt: &str) {
        self.local.notify(attempt).await;
        let payload = payload(&self.instance, attempt);
        let sent = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            // Prepared once per connection, as the store's statements are:
            // a statement given as text is prepared anew, a round trip more.
            let statement = client
                .prepare_cached(NOTIFY)
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&statement, &[&CHANNEL, &payload])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = sent {
            // The other instances' pages still re-read on their own timer.
            tracing::warn!(%error, "could not publish a login update to other instances");
        }
    }

    async fn notify_here(&self, attempt: &str) {
        self.local.notify(attempt).await;
    }

    fn subscribe(&self, attempt: &str) -> Subscription {
        self.local.subscribe(attempt)
    }
}

/// Keeps one connection listening, reconnecting with backoff.
async fn listen(
    config: tokio_postgres::Config,
    local: Arc<InProcessNotifier>,
    instance: String,
    status: Arc<ListenerStatus>,
) {
    let mut backoff = RETRY_MIN;
    loop {
        match listen_once(&config, &local, &instance, &status).await {
            Ok(()) => tracing::warn!("listening connection closed; reconnecting"),
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "listening for other instances failed");
            }
        }
        let was_listening = status.listening.swap(false, Ordering::AcqRel);
        if was_listening {
            backoff = RETRY_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// One listening connection, until it fails.
async fn listen_once(
    config: &tokio_postgres::Config,
    local: &InProcessNotifier,
    instance: &str,
    status: &ListenerStatus,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection must be polled for `LISTEN` to complete and for
    // notifications to arrive; a task forwards them until it ends.
    let (sender, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if sender.send(notification.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        status.listening.store(true, Ordering::Release);
        status.connections.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            channel = CHANNEL,
            "listening for other instances' login updates"
        );
        // Whatever changed while no connection listened: every waiting page
        // reads its attempt again.
        local.notify_all();
        while let Some(payload) = received.recv().await {
            let Some((from, attempt)) = payload.split_once(' ') else {
                continue;
            };
            if from != instance {
                status.received.fetch_add(1, Ordering::Relaxed);
                local.notify(attempt).await;
            }
        }
        Ok(())
    }
    .await;
    driver.abort();
    match driver.await {
        Ok(Err(error)) => Err(error),
        _ => result,
    }
}
