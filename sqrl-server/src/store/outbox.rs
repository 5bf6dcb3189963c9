//! The outbox of login events (`webhook_outbox`): one row per event and
//! endpoint, written in the transaction of the change the event reports, so
//! neither exists without the other. The delivery worker
//! ([`crate::webhooks`]) claims due rows under a lease, and marks each
//! delivered, due again later, or dead.
//!
//! A claim is a lease, not a lock held across the POST: a row claimed by an
//! instance that dies is claimed again once its lease has run out (so a
//! delivery may be repeated, with the same event id, never lost). Rows a
//! live lease covers are skipped by every other claimer (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`), so two instances never send a row at once.

use async_trait::async_trait;

use super::StoreError;

/// SQLite writing one outbox row: event id, endpoint, type, account, body,
/// now.
pub(super) const ENQUEUE_SQL_SQLITE: &str = "INSERT INTO webhook_outbox
    (event_id, endpoint, event_type, account_id, body, created_at, next_attempt_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";

/// A claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The outbox row.
    pub row: i64,
    /// The event id (`Webhook-Id`).
    pub event_id: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// The body to send.
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// What the outbox holds, for metrics and the operator API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxCounts {
    /// Rows not yet delivered that will be tried (again).
    pub pending: u64,
    /// Rows given up on after the last attempt.
    pub dead: u64,
}

/// The outbox. Every method is one transaction.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` due rows of `endpoint` (pending, due by `now`,
    /// not under a live lease): leases them until `lease_until` and counts
    /// the attempt. Oldest first.
    async fn claim_deliveries(
        &self,
        endpoint: &str,
        now: u64,
        lease_until: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Marks a row delivered: it is never claimed again.
    async fn mark_delivered(&self, row: i64, now: u64) -> Result<(), StoreError>;

    /// Records a failed attempt: the row is due again at `retry_at`, or dead
    /// when that is `None`. Leaves a delivered row as it is.
    async fn mark_failed(
        &self,
        row: i64,
        retry_at: Option<u64>,
        error: String,
    ) -> Result<(), StoreError>;

    /// Counts pending and dead rows.
    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
}

/// SQLite marking row `?1` delivered at `?2`.
pub(super) const MARK_DELIVERED_SQL: &str = "UPDATE webhook_outbox
    SET status = 'delivered', delivered_at = ?2, leased_until = NULL, last_error = NULL
    WHERE id = ?1";

/// SQLite recording a failed attempt of row `?1`: due again at `?2`, or
/// dead when it is NULL; `?3` is the error. A row another claimer delivered
/// meanwhile stays delivered.
pub(super) const MARK_FAILED_SQL: &str = "UPDATE webhook_outbox
    SET status = CASE WHEN ?2 IS NULL THEN 'dead' ELSE 'pending' END,
        next_attempt_at = COALESCE(?2, next_attempt_at),
        leased_until = NULL, last_error = ?3
    WHERE id = ?1 AND status = 'pending'";

/// SQL (both dialects) counting pending and dead rows.
pub(super) const OUTBOX_COUNTS_SQL: &str = "SELECT
    (SELECT count(*) FROM webhook_outbox WHERE status = 'pending'),
    (SELECT count(*) FROM webhook_outbox WHERE status = 'dead')";

/// How long delivered rows are kept (seconds) before pruning deletes them:
/// a week, so an operator can still see what was sent recently.
pub(super) const DELIVERED_KEPT: u64 = 7 * 24 * 3600;

/// SQLite deleting rows delivered before `?1`.
pub(super) const PRUNE_DELIVERED_SQL: &str =
    "DELETE FROM webhook_outbox WHERE status = 'delivered' AND delivered_at <= ?1";
