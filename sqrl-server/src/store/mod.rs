//! All durable state, behind four small interfaces by concern:
//!
//! * [`Attempts`]: login attempts (the waiting browser) and conversations
//!   (nuts), advanced by each `/cli.sqrl` request in one [`step`];
//! * [`Sessions`]: confirmed attempts and single-use links becoming browser
//!   sessions, their lookup and end, and the login history;
//! * [`Accounts`]: accounts and SQRL associations for the account page and
//!   the operator API;
//! * [`Housekeeping`]: pruning and health;
//! * [`Outbox`]: login events waiting for delivery to webhook endpoints,
//!   each written in the transaction of the change it reports;
//! * [`OidcStore`]: the OpenID Connect provider's keys, grants, codes and
//!   tokens, which live only as long as the session they came from.
//!
//! A [`Store`] is all six. [`sqlite::SqliteStore`] is the embedded default;
//! [`postgres::PostgresStore`] is shared by many instances. Both run the same
//! contract tests (`tests/server/store_contract.rs`). Nothing about a login lives
//! only in one process's memory (except conversations with no login page
//! behind them, see [`crate::retry`]), so requests of one login may land on
//! different instances.

mod accounts;
mod attempts;
mod error;
mod housekeeping;
pub mod migrations;
pub mod oidc;
mod outbox;
pub mod postgres;
mod rows;
mod sessions;
pub mod sqlite;
pub mod step;

pub use accounts::{AccountView, Accounts, Conflict, IdentityView, NewAssociation};
pub use attempts::{
    AskAnswer, Attempt, AttemptState, AttemptUpdate, Attempts, Confirmation, NewAttempt,
};
pub use error::{BackendError, StoreError};
pub use housekeeping::{Housekeeping, InFlight};
pub use oidc::OidcStore;
pub use outbox::{Delivery, Outbox, OutboxCounts};
pub use sessions::{
    LinkOutcome, LoginEvent, LoginMethod, NewSession, Redeemed, SessionInfo, Sessions,
};
pub use step::{
    ConversationSource, Decide, NextConversation, PlanError, StepError, StepInput, StepPlan,
    StepRequest, Stepped,
};

/// The whole storage interface: every concern. Implemented for any type that
/// implements the five.
pub trait Store: Attempts + Sessions + Accounts + Housekeeping + Outbox + OidcStore {}

impl<T: Attempts + Sessions + Accounts + Housekeeping + Outbox + OidcStore> Store for T {}

/// Where the store lives, as the operator names it with `--db`: a
/// `postgres://` (or `postgresql://`) URL, or else the path of a SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL. It may hold a password, so it is never
    /// printed whole (see the `Debug` implementation).
    Postgres(String),
}

impl Database {
    /// Reads `--db`.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text.to_owned())
        } else {
            Database::Sqlite(text.into())
        }
    }

    /// A description for logs: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => postgres::redact(url),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("empty database name"));
        }
        Ok(Database::parse(&text))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(_) => f.debug_tuple("Postgres").field(&self.describe()).finish(),
        }
    }
}
