//! What keeps the store healthy: pruning what expired, and a liveness check.

use async_trait::async_trait;

use super::StoreError;

/// Housekeeping. Safe to run on every instance at once: pruning deletes only
/// rows past their expiry, so two instances pruning together delete each row
/// once between them.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Deletes expired conversations, attempts, links and sessions. Returns
    /// the number of rows deleted.
    async fn prune(&self, now: u64) -> Result<u64, StoreError>;

    /// Checks that the database answers.
    async fn health(&self) -> Result<(), StoreError>;
}
