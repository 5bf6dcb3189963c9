//! The PostgreSQL [`Store`](super::Store): one database shared by many
//! instances. A pool of tokio-postgres connections (deadpool) serves the
//! requests; [`listen::PostgresNotifier`] carries "attempt changed" between
//! instances with `LISTEN/NOTIFY`.
//!
//! Every method is one transaction (or one statement). Where two instances
//! may race, the database decides, never a read followed by a write that
//! assumes the read still holds:
//!
//! * a nut is taken with `DELETE … RETURNING`, so it is used once;
//! * a `/cli.sqrl` step (module `step`) is decided inside its transaction,
//!   on records it holds locked: the identity keys it names (an advisory
//!   lock, taken first, so that two creations of one new identity run one
//!   after the other) and the association rows it read (`FOR UPDATE`). If
//!   the database still aborts it, the whole step is decided again;
//! * attempt transitions are conditional `UPDATE`s on the current state;
//! * a link is spent by the `DELETE … RETURNING` that finds it;
//! * migrations run under an advisory lock, so instances starting together
//!   apply each one once; pruning takes another and is skipped by instances
//!   that find it held.
//!
//! Durability is PostgreSQL's: a commit that changed a durable row is
//! acknowledged once its WAL is flushed (`synchronous_commit` as the operator
//! configured the server). The logins in flight live in `UNLOGGED` tables,
//! which a crash empties; a transaction that touched only them writes no WAL
//! and waits for no flush, and a `/cli.sqrl` step that changed nothing
//! durable (a returning login: only row locks and its commit record are in
//! the WAL) commits with `synchronous_commit` off (module `step`).

pub mod listen;
mod oidc;
mod step;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use sha2::{Digest as _, Sha256};
use sqrl_core::keys::IdentityKey;
use sqrl_core::server::{Conversation, Nut};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::Outbox;
use super::housekeeping::IN_FLIGHT_SQL;
use super::migrations::postgres::MIGRATIONS;
use super::outbox::{DELIVERED_KEPT, Delivery, OutboxCounts};
use super::rows::{
    AnswerColumns, AttemptRow, ConversationRow, HistoryRow, IdentityViewRow, corrupt,
    from_sql_time, identity_key, ip_text, sql_time,
};
use super::{
    AccountView, Accounts, AskAnswer, Attempt, Attempts, BackendError, Conflict, Decide,
    Housekeeping, InFlight, LinkOutcome, LoginEvent, LoginMethod, NewAssociation, NewAttempt,
    NewSession, Redeemed, SessionInfo, Sessions, StepError, StepRequest, Stepped, StoreError,
};
use crate::token::TokenHash;
use crate::webhooks::{Event, EventRoutes, RemovedBy, RevokeReason, SessionEnd};

/// Sessions refresh `last_seen_at` at most this often (seconds), so reading a
/// session is not a write on every request.
const LAST_SEEN_GRANULARITY: u64 = 60;

/// How long a request waits for a pooled connection, or for a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Advisory lock keys (any constants unique to this schema): one serialises
/// migrations across instances, the other lets one instance prune at a time.
const MIGRATION_LOCK: i64 = 0x5351_524c_0001;
const PRUNE_LOCK: i64 = 0x5351_524c_0002;

/// The first half of the two-part advisory lock key of an identity (see
/// `lock_identity`); PostgreSQL keeps two-part keys apart from the one-part
/// keys above.
const IDENTITY_LOCK_CLASS: i32 = 0x5351_524c;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Which webhook endpoints get which login events (none by default).
    events: std::sync::Arc<EventRoutes>,
    /// This process's name in the notifications it publishes
    /// ([`listen::PostgresNotifier`]), so its own listener skips them.
    instance: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection config may hold a password: show the target only.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// `url` without its password, for logs.
pub fn redact(url: &str) -> String {
    let mut text = url.to_owned();
    // postgres://user:password@host/...
    if let Some(scheme_end) = text.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = text[authority_start..]
            .find(['/', '?'])
            .map_or(text.len(), |i| authority_start + i);
        if let Some(at) = text[authority_start..authority_end].rfind('@') {
            let userinfo = &text[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                text.replace_range(start..authority_start + at, "***");
            }
        }
    }
    // ...?password=secret&...
    if let Some(query) = text.find('?') {
        let (head, tail) = text.split_at(query + 1);
        let redacted: Vec<String> = tail
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        text = format!("{head}{}", redacted.join("&"));
    }
    text
}

// --- errors ----------------------------------------------------------------------

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        let code = error.code().cloned();
        let closed = error.is_closed();
        let source: BackendError = Box::new(error);
        let Some(code) = code else {
            // No SQLSTATE: the connection failed or was lost.
            return if closed {
                StoreError::Unavailable(source)
            } else {
                StoreError::Database(source)
            };
        };
        if code == SqlState::T_R_SERIALIZATION_FAILURE
            || code == SqlState::T_R_DEADLOCK_DETECTED
            || code == SqlState::LOCK_NOT_AVAILABLE
            || code == SqlState::QUERY_CANCELED
        {
            StoreError::Busy(source)
        } else if code == SqlState::DISK_FULL
            || code == SqlState::OUT_OF_MEMORY
            || code == SqlState::INSUFFICIENT_RESOURCES
            || code == SqlState::PROGRAM_LIMIT_EXCEEDED
        {
            StoreError::Full(source)
        } else if code == SqlState::IO_ERROR {
            StoreError::Io(source)
        } else if code == SqlState::ADMIN_SHUTDOWN
            || code == SqlState::CRASH_SHUTDOWN
            || code == SqlState::CANNOT_CONNECT_NOW
            || code == SqlState::TOO_MANY_CONNECTIONS
            || code == SqlState::CONNECTION_EXCEPTION
            || code == SqlState::CONNECTION_FAILURE
            || code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            StoreError::Unavailable(source)
        } else {
            StoreError::Database(source)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}

/// Whether `error` is PostgreSQL refusing a row that another transaction
/// wrote first (a unique key): a lost race, not a fault.
fn lost_race(error: &StoreError) -> bool {
    match error {
        StoreError::Busy(_) => true,
        StoreError::Database(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| {
                *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION
            }),
        _ => false,
    }
}

// --- statements -------------------------------------------------------------------

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

async fn exec<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.execute(&statement, params).await?)
}

async fn opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&statement, params).await?)
}

async fn all<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query(&statement, params).await?)
}

/// Column `index` of `row`; a type mismatch is an error, never a panic.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    Ok(row.try_get(index)?)
}

fn answer_of(
    row: &Row,
    first: usize,
    table: &'static str,
) -> Result<Option<AskAnswer>, StoreError> {
    AnswerColumns {
        button: get(row, first)?,
        label: get(row, first + 1)?,
        url: get(row, first + 2)?,
    }
    .into_answer(table)
}

// --- shared steps ---------------------------------------------------------------

/// Stores `conversation` under `nut`, in one statement: tied to its attempt
/// only while the attempt exists, and ending no later than it
/// ([`ConversationRow::of`]), as the statement finds the attempt row. The
/// foreign key's check then holds that row (key share) until the transaction
/// ends, so a concurrent prune cannot delete it under the insert; a prune
/// that deleted it first fails the check, a lost race (a step is decided
/// again).
async fn insert_conversation<C: GenericClient>(
    c: &C,
    nut: &Nut,
    conversation: &Conversation,
) -> Result<(), StoreError> {
    // Tied as if the attempt lived for ever; the statement applies its
    // expiry, or unties the row when the attempt is gone.
    let row = ConversationRow::of(conversation, Some(u64::MAX));
    exec(
        c,
        "INSERT INTO conversations
            (nut, attempt_id, browser_ip, expected_server, idk, sin, asked, expires_at)
         SELECT $1::text, a.id, CASE WHEN a.id IS NULL THEN NULL ELSE $3::text END,
                $4::bytea, $5::bytea, $6::text, $7::boolean,
                CASE WHEN a.id IS NULL THEN $8::bigint ELSE LEAST($8::bigint, a.expires_at) END
           FROM (VALUES (1)) AS one (x) LEFT JOIN login_attempts a ON a.id = $2::text",
        &conversation_params(&nut.as_str(), &row),
    )
    .await?;
    Ok(())
}

/// The parameters of a `conversations` row, in column order: `nut`,
/// `attempt_id`, `browser_ip`, `expected_server`, `idk`, `sin`, `asked`,
/// `expires_at`.
fn conversation_params<'a>(
    nut: &'a &'a str,
    row: &'a ConversationRow,
) -> [&'a (dyn ToSql + Sync); 8] {
    [
        nut,
        &row.attempt_id,
        &row.browser_ip,
        &row.expected_server,
        &row.idk,
        &row.sin,
        &row.asked,
        &row.expires_at,
    ]
}

async fn account_of<C: GenericClient>(c: &C, idk: &IdentityKey) -> Result<Option<i64>, StoreError> {
    opt(
        c,
        "SELECT account_id FROM sqrl_identities WHERE idk = $1",
        &[&idk.to_bytes().as_slice()],
    )
    .await?
    .map(|row| get(&row, 0))
    .transpose()
}

/// Writes `event` to the outbox for each endpoint that wants it (built only
/// when some endpoint is configured).
async fn record<C: GenericClient>(
    c: &C,
    routes: &EventRoutes,
    now: u64,
    event: impl FnOnce() -> Event,
) -> Result<(), StoreError> {
    if routes.is_empty() {
        return Ok(());
    }
    let event = event();
    for endpoint in routes.targets(event.kind) {
        exec(
            c,
            "INSERT INTO webhook_outbox
                (event_id, endpoint, event_type, account_id, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                &event.id,
                &endpoint,
                &event.kind.as_str(),
                &event.account_id,
                &event.body,
                &sql_time(now),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Ends every session of the account `idk` is associated with, recording a
/// `session.revoked` event for each.
async fn end_sessions_of<C: GenericClient>(
    c: &C,
    idk: &IdentityKey,
    routes: &EventRoutes,
    reason: RevokeReason,
    now: u64,
) -> Result<(), StoreError> {
    if let Some(account) = account_of(c, idk).await? {
        let ended = all(
            c,
            "DELETE FROM sessions WHERE account_id = $1 RETURNING id",
            &[&account],
        )
        .await?;
        for row in ended {
            let session: i64 = get(&row, 0)?;
            record(c, routes, now, || {
                Event::revoked(account, session, reason, now)
            })
            .await?;
        }
    }
    Ok(())
}

/// Reads a login attempt.
async fn read_attempt<C: GenericClient>(c: &C, id: &str) -> Result<Option<Attempt>, StoreError> {
    let Some(row) = opt(
        c,
        "SELECT pag_hash, browser_ip, state, created_at, expires_at, user_agent,
                confirmed_idk, device_on_browser_network
           FROM login_attempts WHERE id = $1",
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    attempt_from_row(&row, 0, id)
}

/// The attempt in the columns of `row` from `first` on (`pag_hash`,
/// `browser_ip`, `state`, `created_at`, `expires_at`, `user_agent`,
/// `confirmed_idk`, `device_on_browser_network`).
fn attempt_from_row(row: &Row, first: usize, id: &str) -> Result<Option<Attempt>, StoreError> {
    AttemptRow {
        pag_hash: get(row, first)?,
        browser_ip: get(row, first + 1)?,
        state: get(row, first + 2)?,
        created_at: get(row, first + 3)?,
        expires_at: get(row, first + 4)?,
        user_agent: get(row, first + 5)?,
        confirmed_idk: get(row, first + 6)?,
        device_on_browser_network: get(row, first + 7)?,
    }
    .into_attempt(id.to_owned())
    .map(Some)
}

/// Holds, until the transaction ends, the lock on identity key `idk`: every
/// transaction that may create or change the association of `idk` takes it
/// first, so they run one after the other even while no row exists to lock
/// (two creations of one new identity would otherwise both find it absent).
async fn lock_identity<C: GenericClient>(c: &C, idk: &IdentityKey) -> Result<(), StoreError> {
    exec(
        c,
        LOCK_IDENTITY,
        &[&IDENTITY_LOCK_CLASS, &identity_lock_key(idk)],
    )
    .await?;
    Ok(())
}

/// Waits for an identity's lock (held to the end of the transaction).
const LOCK_IDENTITY: &str = "SELECT pg_advisory_xact_lock($1, $2)";

/// The advisory lock key of an identity: 32 bits of its SHA-256. Two keys
/// sharing one only wait for each other.
fn identity_lock_key(idk: &IdentityKey) -> i32 {
    let digest = Sha256::digest(idk.to_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

async fn load_account<C: GenericClient>(
    c: &C,
    account_id: i64,
) -> Result<Option<AccountView>, StoreError> {
    let Some(row) = opt(
        c,
        "SELECT created_at FROM accounts WHERE id = $1",
        &[&account_id],
    )
    .await?
    else {
        return Ok(None);
    };
    let created_at: i64 = get(&row, 0)?;
    let identity = match opt(
        c,
        "SELECT idk, disabled, sqrl_only, hardlock, created_at
           FROM sqrl_identities WHERE account_id = $1",
        &[&account_id],
    )
    .await?
    {
        Some(row) => {
            let idk: Vec<u8> = get(&row, 0)?;
            let indexed_secrets = all(
                c,
                "SELECT sin FROM indexed_secrets WHERE idk = $1 ORDER BY sin",
                &[&idk],
            )
            .await?
            .iter()
            .map(|row| get::<String>(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
            Some(
                IdentityViewRow {
                    idk,
                    disabled: get(&row, 1)?,
                    sqrl_only: get(&row, 2)?,
                    hardlock: get(&row, 3)?,
                    created_at: get(&row, 4)?,
                }
                .into_view(indexed_secrets)?,
            )
        }
        None => None,
    };
    let superseded = all(
        c,
        "SELECT idk FROM superseded_identities WHERE account_id = $1 ORDER BY superseded_at",
        &[&account_id],
    )
    .await?
    .iter()
    .map(|row| identity_key(&get::<Vec<u8>>(row, 0)?, "superseded_identities"))
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(AccountView {
        id: account_id,
        created_at: from_sql_time(created_at),
        identity,
        superseded,
    }))
}

/// Inserts a session, its login-history row and its `login` event.
async fn start_session<C: GenericClient>(
    c: &C,
    routes: &EventRoutes,
    account_id: i64,
    method: LoginMethod,
    answer: Option<&AskAnswer>,
    session: &NewSession,
    now: u64,
) -> Result<(), StoreError> {
    let ip = ip_text(session.ip);
    let inserted = opt(
        c,
        "INSERT INTO sessions
            (token_hash, account_id, created_at, last_seen_at, expires_at, ip, user_agent, method)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7) RETURNING id",
        &[
            &session.token_hash.as_bytes().as_slice(),
            &account_id,
            &sql_time(session.created_at),
            &sql_time(session.expires_at),
            &ip,
            &session.user_agent,
            &method.as_str(),
        ],
    )
    .await?;
    if let Some(row) = inserted {
        let session_id: i64 = get(&row, 0)?;
        record(c, routes, now, || {
            Event::login(
                account_id,
                session_id,
                method,
                session.ip,
                &session.user_agent,
                now,
            )
        })
        .await?;
    }
    let answer = AnswerColumns::of(answer);
    exec(
        c,
        "INSERT INTO login_history
            (account_id, at, ip, user_agent, method, ask_button, ask_label, ask_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &account_id,
            &sql_time(now),
            &ip,
            &session.user_agent,
            &method.as_str(),
            &answer.button,
            &answer.label,
            &answer.url,
        ],
    )
    .await?;
    Ok(())
}

const SESSION_COLUMNS: &str =
    "id, account_id, created_at, last_seen_at, expires_at, ip, user_agent, method";

fn session_from_row(row: &Row) -> Result<SessionInfo, StoreError> {
    Ok(SessionInfo {
        id: get(row, 0)?,
        account_id: get(row, 1)?,
        created_at: from_sql_time(get(row, 2)?),
        last_seen_at: from_sql_time(get(row, 3)?),
        expires_at: from_sql_time(get(row, 4)?),
        ip: get(row, 5)?,
        user_agent: get(row, 6)?,
        method: get::<Option<String>>(row, 7)?
            .as_deref()
            .and_then(LoginMethod::parse),
    })
}

// --- the store ----------------------------------------------------------------------

impl PostgresStore {
    /// Connects to the database at `url` with a pool of up to `connections`
    /// connections, and applies pending migrations.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Open(format!("database URL {}: {e}", redact(url))))?;
        Self::connect_with(config, connections).await
    }

    /// Like [`PostgresStore::connect`], with the settings already parsed
    /// (tests set a schema search path this way).
    pub async fn connect_with(
        mut config: tokio_postgres::Config,
        connections: usize,
    ) -> Result<Self, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sqrl-server");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Open(format!("connection pool: {e}")))?;
        let store = Self {
            pool,
            config,
            events: std::sync::Arc::new(EventRoutes::none()),
            instance: listen::instance_name(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Records login events for `routes` in the outbox, each in the
    /// transaction of the change it reports.
    pub fn with_events(mut self, routes: EventRoutes) -> Self {
        self.events = std::sync::Arc::new(routes);
        self
    }

    /// The connection settings (the notifier's listening connection uses them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The name this process publishes its notifications under.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn client(&self) -> Result<Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies every migration newer than the database's version, each in
    /// its own transaction under a transaction-scoped advisory lock: an
    /// instance starting while another migrates waits, then finds the
    /// migration applied.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    BIGINT PRIMARY KEY,
                    name       TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )",
            )
            .await?;
            tx.commit().await?;
        }
        for (version, name, sql) in MIGRATIONS {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
            if !applied {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[version, name, &sql_time(crate::clock::unix_now())],
                )
                .await?;
                tracing::info!(version, name, "applied database migration");
            }
            tx.commit().await?;
        }
        Ok(())
    }

    async fn try_associate(
        &self,
        account_id: Option<i64>,
        association: &NewAssociation,
        now: i64,
    ) -> Result<Result<i64, Conflict>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // As a step that creates the identity would: one at a time.
        lock_identity(&tx, &association.idk).await?;
        let idk = association.idk.to_bytes();
        if account_of(&tx, &association.idk).await?.is_some() {
            return Ok(Err(Conflict::IdentityTaken));
        }
        if opt(
            &tx,
            "SELECT 1 FROM superseded_identities WHERE idk = $1",
            &[&idk.as_slice()],
        )
        .await?
        .is_some()
        {
            return Ok(Err(Conflict::IdentitySuperseded));
        }
        let account = match account_id {
            Some(id) => {
                // Locks the account so two associations cannot both find it bare.
                if opt(
                    &tx,
                    "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?
                .is_none()
                {
                    return Ok(Err(Conflict::NoAccount));
                }
                if opt(
                    &tx,
                    "SELECT 1 FROM sqrl_identities WHERE account_id = $1",
                    &[&id],
                )
                .await?
                .is_some()
                {
                    return Ok(Err(Conflict::AccountHasIdentity));
                }
                id
            }
            None => {
                let row = opt(
                    &tx,
                    "INSERT INTO accounts (created_at) VALUES ($1) RETURNING id",
                    &[&now],
                )
                .await?
                .ok_or(corrupt("accounts", "insert returned no id"))?;
                get(&row, 0)?
            }
        };
        exec(
            &tx,
            "INSERT INTO sqrl_identities
                (idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, created_at, updated_at)
             VALUES ($1, $2, $3, $4, FALSE, FALSE, FALSE, $5, $5)",
            &[
                &idk.as_slice(),
                &account,
                &association.suk.as_bytes().as_slice(),
                &association.vuk.to_bytes().as_slice(),
                &now,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(account))
    }
}

#[async_trait]
impl Attempts for PostgresStore {
    async fn create_attempt(
        &self,
        attempt: NewAttempt,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<(), StoreError> {
        // One statement, so one transaction with no BEGIN and COMMIT of its
        // own; the conversation's foreign key is checked at its end, with
        // the attempt in place.
        let client = self.client().await?;
        let row = ConversationRow::of(&conversation, Some(attempt.expires_at));
        let (pag, ip) = (
            attempt.pag_hash.as_bytes().as_slice(),
            ip_text(attempt.browser_ip),
        );
        let (created, expires) = (sql_time(attempt.created_at), sql_time(attempt.expires_at));
        let attempt_params: [&(dyn ToSql + Sync); 6] = [
            &attempt.id,
            &pag,
            &ip,
            &attempt.user_agent,
            &created,
            &expires,
        ];
        exec(
            &client,
            "WITH attempt AS (
                INSERT INTO login_attempts
                    (id, pag_hash, browser_ip, user_agent, state, created_at, updated_at, expires_at)
                VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6)
             )
             INSERT INTO conversations
                (nut, attempt_id, browser_ip, expected_server, idk, sin, asked, expires_at)
             VALUES ($7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                attempt_params.as_slice(),
                &conversation_params(&nut.as_str(), &row),
            ]
            .concat(),
        )
        .await?;
        Ok(())
    }

    async fn rotate_nut(
        &self,
        attempt: &str,
        now: u64,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Share-locked: the attempt cannot leave `pending` (nor be pruned)
        // until this nut is stored.
        let pending = opt(
            &tx,
            "SELECT 1 FROM login_attempts
              WHERE id = $1 AND state = 'pending' AND expires_at > $2 FOR SHARE",
            &[&attempt, &sql_time(now)],
        )
        .await?
        .is_some();
        if pending {
            insert_conversation(&tx, &nut, &conversation).await?;
            tx.commit().await?;
        }
        Ok(pending)
    }

    async fn attempt(&self, id: &str) -> Result<Option<Attempt>, StoreError> {
        let client = self.client().await?;
        read_attempt(&client, id).await
    }

    async fn step(&self, request: StepRequest, mut decide: Decide) -> Result<Stepped, StepError> {
        step::run(self, &request, &mut decide).await
    }
}

#[async_trait]
impl Sessions for PostgresStore {
    async fn collect_attempt(
        &self,
        attempt: &str,
        now: u64,
        session: NewSession,
    ) -> Result<Option<Redeemed>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = opt(
            &tx,
            "UPDATE login_attempts SET state = 'logged-in', updated_at = $1
              WHERE id = $2 AND state = 'confirmed' AND expires_at > $1
              RETURNING account_id, ask_button, ask_label, ask_url",
            &[&sql_time(now), &attempt],
        )
        .await?
        else {
            return Ok(None);
        };
        let Some(account_id) = get::<Option<i64>>(&row, 0)? else {
            return Ok(None);
        };
        let answer = answer_of(&row, 1, "login_attempts")?;
        let method = LoginMethod::CrossDevice;
        // The notification goes out with the session's writes (pipelined)
        // and is delivered with the commit.
        futures_util::future::try_join(
            start_session(
                &tx,
                &self.events,
                account_id,
                method,
                answer.as_ref(),
                &session,
                now,
            ),
            listen::publish(&tx, &self.instance, attempt),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Redeemed {
            account_id,
            method,
            attempt: Some(attempt.to_owned()),
            answer,
            published: true,
        }))
    }

    async fn redeem_link(
        &self,
        token_hash: TokenHash,
        now: u64,
        session: NewSession,
        presented: Vec<(String, TokenHash)>,
        confirmed: bool,
    ) -> Result<LinkOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let token = token_hash.as_bytes();
        // The link's page must be this browser's: it holds that attempt's
        // secret. Checked before the link is spent, so a link opened in the
        // wrong browser (login CSRF) burns nothing.
        let Some(link) = opt(
            &tx,
            "SELECT l.attempt_id, a.pag_hash, l.device_on_browser_network, i.idk
               FROM login_links l LEFT JOIN login_attempts a ON a.id = l.attempt_id
                    LEFT JOIN sqrl_identities i ON i.account_id = l.account_id
              WHERE l.token_hash = $1",
            &[&token.as_slice()],
        )
        .await?
        else {
            return Ok(LinkOutcome::Gone);
        };
        let attempt: Option<String> = get(&link, 0)?;
        let pag_hash: Option<Vec<u8>> = get(&link, 1)?;
        let on_network: bool = get(&link, 2)?;
        let idk: Option<Vec<u8>> = get(&link, 3)?;
        let holds_secret = match (attempt, pag_hash) {
            (Some(attempt), Some(pag_hash)) => {
                let stored = TokenHash::from_slice(&pag_hash)
                    .ok_or(corrupt("login_attempts", "pag_hash"))?;
                presented
                    .iter()
                    .any(|(id, hash)| *id == attempt && *hash == stored)
            }
            // Its page is gone (expired and pruned): nobody can prove it.
            _ => false,
        };
        if !holds_secret {
            return Ok(LinkOutcome::OtherBrowser);
        }
        if !on_network && !confirmed {
            let Some(idk) = idk else {
                return Ok(LinkOutcome::Gone);
            };
            return Ok(LinkOutcome::Confirm {
                idk: identity_key(&idk, "sqrl_identities")?,
            });
        }
        let Some(row) = opt(
            &tx,
            "DELETE FROM login_links WHERE token_hash = $1
             RETURNING account_id, attempt_id, method, expires_at, ask_button, ask_label, ask_url",
            &[&token.as_slice()],
        )
        .await?
        else {
            return Ok(LinkOutcome::Gone);
        };
        const T: &str = "login_links";
        let account_id: i64 = get(&row, 0)?;
        let attempt: Option<String> = get(&row, 1)?;
        let method: String = get(&row, 2)?;
        let expires_at: i64 = get(&row, 3)?;
        if from_sql_time(expires_at) <= now {
            // The spent, expired link is deleted either way.
            tx.commit().await?;
            return Ok(LinkOutcome::Gone);
        }
        let method = LoginMethod::parse(&method).ok_or(corrupt(T, "method"))?;
        let answer = answer_of(&row, 4, T)?;
        start_session(
            &tx,
            &self.events,
            account_id,
            method,
            answer.as_ref(),
            &session,
            now,
        )
        .await?;
        if let Some(attempt) = &attempt {
            futures_util::future::try_join(
                exec(
                    &tx,
                    "UPDATE login_attempts SET state = 'logged-in', updated_at = $1 WHERE id = $2",
                    &[&sql_time(now), attempt],
                ),
                listen::publish(&tx, &self.instance, attempt),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(LinkOutcome::Redeemed(Redeemed {
            account_id,
            method,
            published: attempt.is_some(),
            attempt,
            answer,
        }))
    }

    async fn session(
        &self,
        token_hash: TokenHash,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let client = self.client().await?;
        let Some(row) = opt(
            &client,
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 AND expires_at > $2"
            ),
            &[&token_hash.as_bytes().as_slice(), &sql_time(now)],
        )
        .await?
        else {
            return Ok(None);
        };
        let session = session_from_row(&row)?;
        if session.last_seen_at < idle_cutoff {
            // Timed out for want of use: end it for good, so that a later
            // change of the idle timeout cannot revive it.
            exec(
                &client,
                "DELETE FROM sessions WHERE id = $1",
                &[&session.id],
            )
            .await?;
            return Ok(None);
        }
        if session.last_seen_at + LAST_SEEN_GRANULARITY <= now {
            exec(
                &client,
                "UPDATE sessions SET last_seen_at = $1 WHERE id = $2",
                &[&sql_time(now), &session.id],
            )
            .await?;
        }
        Ok(Some(session))
    }

    async fn sessions(
        &self,
        account_id: i64,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let client = self.client().await?;
        all(
            &client,
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions
                  WHERE account_id = $1 AND expires_at > $2 AND last_seen_at >= $3
                  ORDER BY created_at DESC, id DESC"
            ),
            &[&account_id, &sql_time(now), &sql_time(idle_cutoff)],
        )
        .await?
        .iter()
        .map(session_from_row)
        .collect()
    }

    async fn revoke_session(
        &self,
        account_id: i64,
        session_id: i64,
        end: SessionEnd,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ended = exec(
            &tx,
            "DELETE FROM sessions WHERE id = $1 AND account_id = $2",
            &[&session_id, &account_id],
        )
        .await?
            == 1;
        if ended {
            record(&tx, &self.events, now, || {
                Event::session_ended(account_id, session_id, end, now)
            })
            .await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn login_history(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<LoginEvent>, StoreError> {
        let client = self.client().await?;
        all(
            &client,
            "SELECT at, ip, user_agent, method, ask_button, ask_label, ask_url
               FROM login_history
              WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            &[&account_id, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| {
            HistoryRow {
                at: get(row, 0)?,
                ip: get(row, 1)?,
                user_agent: get(row, 2)?,
                method: get(row, 3)?,
                answer: AnswerColumns {
                    button: get(row, 4)?,
                    label: get(row, 5)?,
                    url: get(row, 6)?,
                },
            }
            .into_event()
        })
        .collect()
    }
}

#[async_trait]
impl Accounts for PostgresStore {
    async fn account(&self, account_id: i64) -> Result<Option<AccountView>, StoreError> {
        let client = self.client().await?;
        load_account(&client, account_id).await
    }

    async fn account_by_identity(
        &self,
        idk: &IdentityKey,
    ) -> Result<Option<AccountView>, StoreError> {
        let client = self.client().await?;
        match account_of(&client, idk).await? {
            Some(account) => load_account(&client, account).await,
            None => Ok(None),
        }
    }

    async fn associate(
        &self,
        account_id: Option<i64>,
        association: NewAssociation,
        now: u64,
    ) -> Result<Result<i64, Conflict>, StoreError> {
        let now = sql_time(now);
        match self.try_associate(account_id, &association, now).await {
            // A concurrent association took the identity or the account
            // first: the checks, run again, say which.
            Err(error) if lost_race(&error) => {
                self.try_associate(account_id, &association, now).await
            }
            other => other,
        }
    }

    async fn account_handle(
        &self,
        account_id: i64,
        fresh: &str,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let Some(row) = opt(
            &client,
            "SELECT handle FROM accounts WHERE id = $1",
            &[&account_id],
        )
        .await?
        else {
            return Ok(None);
        };
        if let Some(handle) = get::<Option<String>>(&row, 0)? {
            return Ok(Some(handle));
        }
        // The first use: minted once, whichever request gets there first.
        opt(
            &client,
            "UPDATE accounts SET handle = COALESCE(handle, $2) WHERE id = $1 RETURNING handle",
            &[&account_id, &fresh],
        )
        .await?
        .map(|row| get::<Option<String>>(&row, 0))
        .transpose()
        .map(Option::flatten)
    }

    async fn remove_identity(&self, idk: &IdentityKey, now: u64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(account) = account_of(&tx, idk).await? else {
            return Ok(false);
        };
        end_sessions_of(&tx, idk, &self.events, RevokeReason::IdentityRemoved, now).await?;
        let removed = exec(
            &tx,
            "DELETE FROM sqrl_identities WHERE idk = $1",
            &[&idk.to_bytes().as_slice()],
        )
        .await?
            == 1;
        if removed {
            record(&tx, &self.events, now, || {
                Event::removed(account, RemovedBy::Operator, now)
            })
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn prune(&self, now: u64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One instance prunes at a time; the others find the lock taken and
        // leave the work to it.
        let row = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
            .await?;
        if !get::<bool>(&row, 0)? {
            return Ok(0);
        }
        let now = sql_time(now);
        let mut deleted = 0;
        for sql in [
            "DELETE FROM conversations WHERE expires_at <= $1",
            "DELETE FROM login_links WHERE expires_at <= $1",
            "DELETE FROM login_attempts WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
        ] {
            deleted += exec(&tx, sql, &[&now]).await?;
        }
        for sql in super::oidc::sql::PRUNE {
            deleted += exec(&tx, &super::oidc::sql::dollars(sql), &[&now]).await?;
        }
        deleted += exec(
            &tx,
            "DELETE FROM webhook_outbox WHERE status = 'delivered' AND delivered_at <= $1",
            &[&now.saturating_sub(sql_time(DELIVERED_KEPT))],
        )
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn active_sessions(&self, now: u64, idle_cutoff: u64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM sessions WHERE expires_at > $1 AND last_seen_at >= $2",
                &[&sql_time(now), &sql_time(idle_cutoff)],
            )
            .await?;
        Ok(u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
    }

    async fn in_flight(&self) -> Result<InFlight, StoreError> {
        let client = self.client().await?;
        let row = client.query_one(IN_FLIGHT_SQL, &[]).await?;
        let count = |index: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(get::<i64>(&row, index)?).unwrap_or(0))
        };
        Ok(InFlight {
            attempts: count(0)?,
            conversations: count(1)?,
            links: count(2)?,
        })
    }

    async fn health(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn claim_deliveries(
        &self,
        endpoint: &str,
        now: u64,
        lease_until: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        // SKIP LOCKED: a row another instance is claiming right now is left
        // to it; the lease keeps it from everyone until it is marked.
        let rows = all(
            &client,
            "UPDATE webhook_outbox SET leased_until = $1, attempts = attempts + 1
              WHERE id IN (SELECT id FROM webhook_outbox
                            WHERE endpoint = $2 AND status = 'pending'
                              AND next_attempt_at <= $3
                              AND (leased_until IS NULL OR leased_until <= $3)
                            ORDER BY id LIMIT $4
                            FOR UPDATE SKIP LOCKED)
          RETURNING id, event_id, endpoint, body, attempts",
            &[
                &sql_time(lease_until),
                &endpoint,
                &sql_time(now),
                &i64::from(limit),
            ],
        )
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Delivery {
                    row: get(row, 0)?,
                    event_id: get(row, 1)?,
                    endpoint: get(row, 2)?,
                    body: get(row, 3)?,
                    attempts: u32::try_from(get::<i32>(row, 4)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|delivery| delivery.row);
        Ok(claimed)
    }

    async fn mark_delivered(&self, row: i64, now: u64) -> Result<(), StoreError> {
        let client = self.client().await?;
        exec(
            &client,
            "UPDATE webhook_outbox
                SET status = 'delivered', delivered_at = $2, leased_until = NULL,
                    last_error = NULL
              WHERE id = $1",
            &[&row, &sql_time(now)],
        )
        .await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        row: i64,
        retry_at: Option<u64>,
        error: String,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        exec(
            &client,
            "UPDATE webhook_outbox
                SET status = CASE WHEN $2::BIGINT IS NULL THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = COALESCE($2, next_attempt_at),
                    leased_until = NULL, last_error = $3
              WHERE id = $1 AND status = 'pending'",
            &[&row, &retry_at.map(sql_time), &error],
        )
        .await?;
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM webhook_outbox WHERE status = 'pending'),
                        (SELECT count(*) FROM webhook_outbox WHERE status = 'dead')",
                &[],
            )
            .await?;
        let count = |index: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(get::<i64>(&row, index)?).unwrap_or(0))
        };
        Ok(OutboxCounts {
            pending: count(0)?,
            dead: count(1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://sqrl:s3cret@db.example:5432/sqrl"),
            "postgres://sqrl:***@db.example:5432/sqrl"
        );
        assert_eq!(
            redact("postgresql://db/sqrl?user=a&password=s3cret&sslmode=disable"),
            "postgresql://db/sqrl?user=a&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
    }
}
