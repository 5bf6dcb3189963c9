//! Why a storage operation failed, in terms a caller can act on.
//!
//! Each backend classifies its own errors into these kinds (SQLite result
//! codes, PostgreSQL SQLSTATEs) and keeps the original as the source, so a
//! log line says both what kind of failure it was and exactly what the
//! database said.

/// The database's own error, kept as the source of a [`StoreError`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another transaction held what this one needed (SQLite's busy or
    /// locked database; PostgreSQL's serialization failure, deadlock or lock
    /// timeout). Nothing was written; the same request may succeed later.
    #[error("database busy")]
    Busy(#[source] BackendError),
    /// The disk or a configured limit is full. Nothing was written.
    #[error("database full")]
    Full(#[source] BackendError),
    /// As many logins are in flight as the server keeps
    /// (`--max-logins-in-flight`); a new one may start once some expire.
    #[error("too many logins in flight")]
    TooManyInFlight,
    /// Reading or writing the database's files failed.
    #[error("database I/O failure")]
    Io(#[source] BackendError),
    /// The database could not be reached (connection refused or lost, pool
    /// exhausted, server shutting down).
    #[error("database unavailable")]
    Unavailable(#[source] BackendError),
    /// Any other error the database reported (a constraint, a bug in a query).
    #[error("database error")]
    Database(#[source] BackendError),
    /// A stored value does not decode (corruption or a foreign writer).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A blocking database task could not run to completion.
    #[error("database task failed: {0}")]
    Task(String),
    /// The database could not be opened or its schema brought up to date.
    #[error("opening database: {0}")]
    Open(String),
}

impl StoreError {
    /// Whether the failure is likely to pass on its own (the caller may tell
    /// the client to retry rather than report an outage).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Busy(_) | StoreError::Unavailable(_) | StoreError::TooManyInFlight
        )
    }

    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Busy(_) => "busy",
            StoreError::Full(_) => "full",
            StoreError::TooManyInFlight => "too_many_in_flight",
            StoreError::Io(_) => "io",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Database(_) => "database",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Task(_) => "task",
            StoreError::Open(_) => "open",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let code = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
            _ => None,
        };
        let source: BackendError = Box::new(error);
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(source),
            Some(ErrorCode::DiskFull | ErrorCode::TooBig) => StoreError::Full(source),
            // A damaged file is a file problem to the operator, like a failed read.
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase,
            ) => StoreError::Io(source),
            _ => StoreError::Database(source),
        }
    }
}
