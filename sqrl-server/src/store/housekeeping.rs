//! What keeps the store healthy: pruning what expired, and a liveness check.

use async_trait::async_trait;

use super::StoreError;

/// Logins in flight: the rows a crash may lose (the durability contract in
/// the server's README), counted for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    /// Login attempts (waiting login pages and SSP-API logins).
    pub attempts: u64,
    /// Live nuts with their conversation state.
    pub conversations: u64,
    /// Single-use links not yet turned into a session.
    pub links: u64,
}

/// The query both backends count [`InFlight`] with.
pub(super) const IN_FLIGHT_SQL: &str = "SELECT (SELECT count(*) FROM login_attempts), \
     (SELECT count(*) FROM conversations), (SELECT count(*) FROM login_links)";

/// Housekeeping. Safe to run on every instance at once: pruning deletes only
/// rows past their expiry, so two instances pruning together delete each row
/// once between them.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Deletes expired conversations, attempts, links and sessions. Returns
    /// the number of rows deleted.
    async fn prune(&self, now: u64) -> Result<u64, StoreError>;

    /// Counts the logins in flight.
    async fn in_flight(&self) -> Result<InFlight, StoreError>;

    /// Counts the sessions live at `now`: not expired, and used at or after
    /// `idle_cutoff`.
    async fn active_sessions(&self, now: u64, idle_cutoff: u64) -> Result<u64, StoreError>;

    /// Checks that the database answers.
    async fn health(&self) -> Result<(), StoreError>;
}
