//! The SQLite [`Store`](super::Store): WAL journal, `synchronous=FULL`, foreign
//! keys on, schema migrations at open.
//!
//! Durable state (accounts, identities, sessions, history) is in the database
//! file, and a commit that changed it is synced before the reply that
//! acknowledges it: neither `kill -9` nor power loss takes it back. Logins in
//! flight (attempts, conversations, single-use links) are in the process's
//! memory (module `in_flight`): writing them costs no statement and no sync,
//! and a restart forgets them, so a pending login is scanned again — never
//! brought back in an older state.
//!
//! rusqlite is blocking: reads of durable state run on the blocking thread
//! pool with a connection from a small pool (WAL readers never wait for the
//! writer); writes go to the one writer thread (module `writer`), which runs
//! whatever is queued in one transaction with at most one fsync and
//! acknowledges each job only after that commit. A `/cli.sqrl` step (module
//! `step`) that writes is one writer job, its reads included: one trip, no
//! reader hand-off. A step that writes nothing durable (a `query`, a
//! returning login) is decided and applied on the calling thread with a
//! reader connection of its own pool; a page load, `/nut.sqrl` and
//! `/pag.sqrl` make no trip at all.
//! Write transactions take SQLite's write lock at the start (`BEGIN
//! IMMEDIATE`), so a read-then-write job can never fail half-way on a lock
//! upgrade. Statements are prepared once per connection and cached.

mod checkpoint;
mod in_flight;
mod oidc;
mod sharded;
mod step;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension as _, Params, Row, TransactionBehavior, params,
};
use sqrl_core::keys::IdentityKey;
use sqrl_core::server::{Conversation, Nut};
use tokio::sync::Semaphore;

use super::migrations::sqlite::MIGRATIONS;
use super::outbox::{DELIVERED_KEPT, PRUNE_DELIVERED_SQL};
use super::outbox::{
    Delivery, ENQUEUE_SQL_SQLITE, MARK_DELIVERED_SQL, MARK_FAILED_SQL, OUTBOX_COUNTS_SQL,
    OutboxCounts,
};
use super::rows::{
    AnswerColumns, HistoryRow, IdentityViewRow, from_sql_time, identity_key, ip_text, sql_time,
};
use super::{
    AccountView, AskAnswer, Attempt, Conflict, Decide, LinkOutcome, LoginEvent, LoginMethod,
    NewAssociation, NewAttempt, NewSession, Redeemed, SessionInfo, StepError, StepRequest, Stepped,
    StoreError,
};
use super::{Accounts, Attempts, Housekeeping, InFlight, Outbox, Sessions};
use crate::token::TokenHash;
use crate::webhooks::{Event, EventRoutes, RemovedBy, RevokeReason, SessionEnd};
use checkpoint::Checkpoints;
use in_flight::InFlightMemory;
pub use writer::BatchStats;
use writer::{Writer, Written};

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions refresh `last_seen_at` at most this often (seconds), so reading a
/// session is not a write on every request.
const LAST_SEEN_GRANULARITY: u64 = 60;

/// Prepared statements kept per connection (more than the store has).
const STATEMENT_CACHE: usize = 96;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: Arc<Pool>,
    /// Which webhook endpoints get which login events (none by default).
    events: Arc<EventRoutes>,
}

/// The writer thread and a few reader connections.
#[derive(Debug)]
struct Pool {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    /// Reader connections for read-only steps, used on the calling thread
    /// (module `step`): one per thread running such a step at once, opened
    /// when first needed.
    step_readers: Mutex<Vec<Connection>>,
    writer: Writer,
    /// Logins in flight (module `in_flight`).
    in_flight: Arc<InFlightMemory>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending
    /// migrations, and keeps `connections` connections (one writer, the rest
    /// readers; at least one of each), and one more that only checkpoints
    /// the WAL (module `checkpoint`).
    pub fn open(path: &Path, connections: usize) -> Result<Self, StoreError> {
        let readers_wanted = connections.max(2) - 1;
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        Checkpoints::start(&mut writer, open_connection(path)?)?;
        let mut readers = Vec::with_capacity(readers_wanted);
        for _ in 0..readers_wanted {
            readers.push(open_connection(path)?);
        }
        let in_flight = Arc::new(InFlightMemory::default());
        // A batch that could not be committed is a crash as far as the
        // logins in flight are concerned: none goes on from a state whose
        // durable half was not kept.
        let forget = Arc::clone(&in_flight);
        Ok(Self {
            pool: Arc::new(Pool {
                path: path.to_owned(),
                readers: Mutex::new(readers),
                read_permits: Semaphore::new(readers_wanted),
                step_readers: Mutex::new(Vec::new()),
                writer: Writer::start(writer, move || forget.forget_all())?,
                in_flight,
            }),
            events: Arc::new(EventRoutes::none()),
        })
    }

    /// Keeps at most `max` logins in flight (attempts) in memory; a new one
    /// beyond it fails with [`StoreError::TooManyInFlight`].
    pub fn with_max_logins_in_flight(self, max: usize) -> Self {
        self.pool.in_flight.limit_attempts(max);
        self
    }

    /// Records login events for `routes` in the outbox, each in the
    /// transaction of the change it reports.
    pub fn with_events(mut self, routes: EventRoutes) -> Self {
        self.events = Arc::new(routes);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    /// How the writer has grouped writes into commits since the store opened.
    pub fn batch_stats(&self) -> BatchStats {
        self.pool.writer.stats()
    }

    /// Runs `f` with a reader connection on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .pool
            .read_permits
            .acquire()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let pool = Arc::clone(&self.pool);
        tokio::task::spawn_blocking(move || lend(&pool.readers, &pool.path, f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` in a write transaction, committing its writes when it returns
    /// `Ok`; returns once they are on disk.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.pool
            .writer
            .write(move |conn| f(conn).map(Written::Commit))
            .await
    }

    /// Like [`SqliteStore::write`], but `f` decides whether its writes are
    /// kept ([`Written::Rollback`] undoes them).
    async fn write_or_roll_back<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<Written<T>, StoreError> + Send + 'static,
    {
        self.pool.writer.write(f).await
    }
}

/// Runs `f` with a connection lent from `pool` and returned after, opening
/// one when none is free (the first use, or one lost to a panic in `f`).
fn lend<T>(
    pool: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let taken = lock(pool).pop();
    let conn = match taken {
        Some(conn) => conn,
        None => open_connection(path)?,
    };
    let result = f(&conn);
    lock(pool).push(conn);
    result
}

/// Runs a cached statement; returns the number of rows changed.
fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// The first row of a cached query, if there is one.
fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row(params, f).optional()?)
}

/// Whether a cached query returns a row.
fn exists(conn: &Connection, sql: &str, params: impl Params) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached(sql)?.exists(params)?)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open(format!(
            "{}: journal mode is {mode}, WAL unavailable",
            path.display()
        )));
    }
    // FULL: the WAL is synced at every commit that changed the file, before
    // the commit returns, so what a reply acknowledges survives power loss
    // too. (A process kill alone loses no committed write in either mode: a
    // commit's WAL frames are in the operating system's cache once it
    // returns. NORMAL syncs only at checkpoints, so power loss could take
    // the last commits.) Logins in flight live in memory (module
    // `in_flight`) and cost no sync at all.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Applies every migration newer than the database's version.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )?;
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = exists(
            &tx,
            "SELECT 1 FROM schema_migrations WHERE version = ?1",
            [version],
        )?;
        if !applied {
            tx.execute_batch(sql)?;
            exec(
                &tx,
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![version, name, sql_time(crate::clock::unix_now())],
            )?;
            tracing::info!(version, name, "applied database migration");
        }
        tx.commit()?;
    }
    Ok(())
}

fn account_of(conn: &Connection, idk: &IdentityKey) -> Result<Option<i64>, StoreError> {
    first(
        conn,
        "SELECT account_id FROM sqrl_identities WHERE idk = ?1",
        [idk.to_bytes()],
        |row| row.get(0),
    )
}

/// Writes `event` to the outbox for each endpoint that wants it (built only
/// when some endpoint is configured).
fn record(
    tx: &Connection,
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
            tx,
            ENQUEUE_SQL_SQLITE,
            params![
                event.id,
                endpoint,
                event.kind.as_str(),
                event.account_id,
                event.body,
                sql_time(now)
            ],
        )?;
    }
    Ok(())
}

/// Ends every session of the account `idk` is associated with, recording a
/// `session.revoked` event for each.
fn end_sessions_of(
    tx: &Connection,
    idk: &IdentityKey,
    routes: &EventRoutes,
    reason: RevokeReason,
    now: u64,
) -> Result<(), StoreError> {
    if let Some(account) = account_of(tx, idk)? {
        let mut statement =
            tx.prepare_cached("DELETE FROM sessions WHERE account_id = ?1 RETURNING id")?;
        let ended = statement
            .query_map([account], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        drop(statement);
        for session in ended {
            record(tx, routes, now, || {
                Event::revoked(account, session, reason, now)
            })?;
        }
    }
    Ok(())
}

fn load_account(conn: &Connection, account_id: i64) -> Result<Option<AccountView>, StoreError> {
    let Some(created_at) = first(
        conn,
        "SELECT created_at FROM accounts WHERE id = ?1",
        [account_id],
        |row| row.get::<_, i64>(0),
    )?
    else {
        return Ok(None);
    };
    let identity = first(
        conn,
        "SELECT idk, disabled, sqrl_only, hardlock, created_at
               FROM sqrl_identities WHERE account_id = ?1",
        [account_id],
        |row| {
            Ok(IdentityViewRow {
                idk: row.get(0)?,
                disabled: row.get(1)?,
                sqrl_only: row.get(2)?,
                hardlock: row.get(3)?,
                created_at: row.get(4)?,
            })
        },
    )?
    .map(|identity| {
        let mut statement =
            conn.prepare_cached("SELECT sin FROM indexed_secrets WHERE idk = ?1 ORDER BY sin")?;
        let indexed_secrets = statement
            .query_map([&identity.idk], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        identity.into_view(indexed_secrets)
    })
    .transpose()?;
    let mut statement = conn.prepare_cached(
        "SELECT idk FROM superseded_identities WHERE account_id = ?1 ORDER BY superseded_at",
    )?;
    let superseded = statement
        .query_map([account_id], |row| row.get::<_, Vec<u8>>(0))?
        .map(|bytes| identity_key(&bytes?, "superseded_identities"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(AccountView {
        id: account_id,
        created_at: from_sql_time(created_at),
        identity,
        superseded,
    }))
}

/// The three `ask_*` columns starting at `first`.
fn answer_columns(row: &Row<'_>, first: usize) -> rusqlite::Result<AnswerColumns> {
    Ok(AnswerColumns {
        button: row.get(first)?,
        label: row.get(first + 1)?,
        url: row.get(first + 2)?,
    })
}

/// Inserts a session, its login-history row and its `login` event.
fn start_session(
    tx: &Connection,
    routes: &EventRoutes,
    account_id: i64,
    method: LoginMethod,
    answer: Option<&AskAnswer>,
    session: &NewSession,
    now: u64,
) -> Result<(), StoreError> {
    let ip = ip_text(session.ip);
    exec(
        tx,
        "INSERT INTO sessions
            (token_hash, account_id, created_at, last_seen_at, expires_at, ip, user_agent, method)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
        params![
            session.token_hash.as_bytes(),
            account_id,
            sql_time(session.created_at),
            sql_time(session.expires_at),
            ip,
            session.user_agent,
            method.as_str()
        ],
    )?;
    let session_id = tx.last_insert_rowid();
    record(tx, routes, now, || {
        Event::login(
            account_id,
            session_id,
            method,
            session.ip,
            &session.user_agent,
            now,
        )
    })?;
    let AnswerColumns { button, label, url } = AnswerColumns::of(answer);
    exec(
        tx,
        "INSERT INTO login_history
            (account_id, at, ip, user_agent, method, ask_button, ask_label, ask_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            account_id,
            sql_time(now),
            ip,
            session.user_agent,
            method.as_str(),
            button,
            label,
            url
        ],
    )?;
    Ok(())
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: row.get(0)?,
        account_id: row.get(1)?,
        created_at: from_sql_time(row.get(2)?),
        last_seen_at: from_sql_time(row.get(3)?),
        expires_at: from_sql_time(row.get(4)?),
        ip: row.get(5)?,
        user_agent: row.get(6)?,
        method: row
            .get::<_, Option<String>>(7)?
            .as_deref()
            .and_then(LoginMethod::parse),
    })
}

#[async_trait]
impl Attempts for SqliteStore {
    // Logins in flight are in memory (module `in_flight`): no trip to the
    // writer, no statement.
    async fn create_attempt(
        &self,
        attempt: NewAttempt,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<(), StoreError> {
        if self
            .pool
            .in_flight
            .create_attempt(attempt, &nut, &conversation)
        {
            Ok(())
        } else {
            Err(StoreError::TooManyInFlight)
        }
    }

    async fn rotate_nut(
        &self,
        attempt: &str,
        now: u64,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<bool, StoreError> {
        Ok(self
            .pool
            .in_flight
            .rotate_nut(attempt, now, &nut, &conversation))
    }

    async fn attempt(&self, id: &str) -> Result<Option<Attempt>, StoreError> {
        Ok(self.pool.in_flight.attempt(id))
    }

    async fn step(&self, request: StepRequest, mut decide: Decide) -> Result<Stepped, StepError> {
        if request.likely_read_only {
            // On this thread, with no await while the connection is lent.
            let outcome = lend(&self.pool.step_readers, &self.pool.path, |reader| {
                step::run_read_only(reader, &self.pool.in_flight, &request, &mut decide)
            });
            if let step::ReadOnly::Done(stepped) = outcome? {
                return Ok((*stepped)?);
            }
        }
        let routes = Arc::clone(&self.events);
        let memory = Arc::clone(&self.pool.in_flight);
        let stepped = self
            .write_or_roll_back(move |conn| {
                step::run(conn, &memory, &routes, &request, &mut decide)
            })
            .await?;
        Ok(stepped?)
    }
}

#[async_trait]
impl Sessions for SqliteStore {
    async fn collect_attempt(
        &self,
        attempt: &str,
        now: u64,
        session: NewSession,
    ) -> Result<Option<Redeemed>, StoreError> {
        let attempt = attempt.to_owned();
        let routes = Arc::clone(&self.events);
        let memory = Arc::clone(&self.pool.in_flight);
        // On the writer: jobs run one at a time, so two collections of one
        // attempt cannot both find it confirmed.
        self.write(move |tx| {
            let Some((account_id, answer)) = memory.confirmed(&attempt, now) else {
                return Ok(None);
            };
            let method = LoginMethod::CrossDevice;
            start_session(
                tx,
                &routes,
                account_id,
                method,
                answer.as_ref(),
                &session,
                now,
            )?;
            // Only once the session's SQL is done: a failed write leaves the
            // attempt confirmed.
            memory.mark_collected(&attempt);
            Ok(Some(Redeemed {
                account_id,
                method,
                attempt: Some(attempt),
                answer,
                published: false,
            }))
        })
        .await
    }

    async fn redeem_link(
        &self,
        token_hash: TokenHash,
        now: u64,
        session: NewSession,
        presented: Vec<(String, TokenHash)>,
        confirmed: bool,
    ) -> Result<LinkOutcome, StoreError> {
        let routes = Arc::clone(&self.events);
        let memory = Arc::clone(&self.pool.in_flight);
        self.write(move |tx| {
            // The link's page must be this browser's: it holds that
            // attempt's secret. Checked before the link is spent, so a link
            // opened in the wrong browser (login CSRF) burns nothing.
            let Some(link) = memory.check_link(&token_hash) else {
                return Ok(LinkOutcome::Gone);
            };
            let holds_secret = match &link.page {
                Some((attempt, stored)) => presented
                    .iter()
                    .any(|(id, hash)| id == attempt && hash == stored),
                // Its page is gone (expired and pruned): nobody can prove it.
                None => false,
            };
            if !holds_secret {
                return Ok(LinkOutcome::OtherBrowser);
            }
            if !link.device_on_browser_network && !confirmed {
                let idk: Option<Vec<u8>> = first(
                    tx,
                    "SELECT idk FROM sqrl_identities WHERE account_id = ?1",
                    [link.account_id],
                    |row| row.get(0),
                )?;
                let Some(idk) = idk else {
                    // The association is gone: the link can sign no one in.
                    return Ok(LinkOutcome::Gone);
                };
                return Ok(LinkOutcome::Confirm {
                    idk: identity_key(&idk, "sqrl_identities")?,
                });
            }
            let Some(spent) = memory.spend_link(&token_hash) else {
                return Ok(LinkOutcome::Gone);
            };
            if spent.expires_at <= now {
                return Ok(LinkOutcome::Gone);
            }
            let (account_id, method) = (spent.account_id, spent.method);
            let stored = start_session(
                tx,
                &routes,
                account_id,
                method,
                spent.answer.as_ref(),
                &session,
                now,
            );
            if let Err(error) = stored {
                // The link is not spent by a session that was not stored.
                memory.put_back_link(&token_hash, spent);
                return Err(error);
            }
            if let Some(attempt) = &spent.attempt_id {
                memory.mark_collected(attempt);
            }
            Ok(LinkOutcome::Redeemed(Redeemed {
                account_id,
                method,
                attempt: spent.attempt_id,
                answer: spent.answer,
                published: false,
            }))
        })
        .await
    }

    async fn session(
        &self,
        token_hash: TokenHash,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let session = self
            .read(move |conn| {
                first(
                    conn,
                    "SELECT id, account_id, created_at, last_seen_at, expires_at, ip, user_agent, method
                           FROM sessions WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash.as_bytes(), sql_time(now)],
                    session_from_row,
                )
            })
            .await?;
        if let Some(idle) = session.as_ref().filter(|s| s.last_seen_at < idle_cutoff) {
            // Timed out for want of use: end it for good, so that a later
            // change of the idle timeout cannot revive it.
            let id = idle.id;
            self.write(move |tx| {
                exec(tx, "DELETE FROM sessions WHERE id = ?1", [id])?;
                Ok(())
            })
            .await?;
            return Ok(None);
        }
        if let Some(session) = &session
            && session.last_seen_at + LAST_SEEN_GRANULARITY <= now
        {
            let id = session.id;
            self.write(move |tx| {
                exec(
                    tx,
                    "UPDATE sessions SET last_seen_at = ?1 WHERE id = ?2",
                    params![sql_time(now), id],
                )?;
                Ok(())
            })
            .await?;
        }
        Ok(session)
    }

    async fn sessions(
        &self,
        account_id: i64,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, account_id, created_at, last_seen_at, expires_at, ip, user_agent, method
                   FROM sessions WHERE account_id = ?1 AND expires_at > ?2 AND last_seen_at >= ?3
                  ORDER BY created_at DESC, id DESC",
            )?;
            let rows = statement
                .query_map(
                    params![account_id, sql_time(now), sql_time(idle_cutoff)],
                    session_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_session(
        &self,
        account_id: i64,
        session_id: i64,
        end: SessionEnd,
        now: u64,
    ) -> Result<bool, StoreError> {
        let routes = Arc::clone(&self.events);
        self.write(move |tx| {
            let ended = exec(
                tx,
                "DELETE FROM sessions WHERE id = ?1 AND account_id = ?2",
                params![session_id, account_id],
            )? == 1;
            if ended {
                record(tx, &routes, now, || {
                    Event::session_ended(account_id, session_id, end, now)
                })?;
            }
            Ok(ended)
        })
        .await
    }

    async fn login_history(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<LoginEvent>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT at, ip, user_agent, method, ask_button, ask_label, ask_url
                   FROM login_history
                  WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![account_id, limit], |row| {
                    Ok(HistoryRow {
                        at: row.get(0)?,
                        ip: row.get(1)?,
                        user_agent: row.get(2)?,
                        method: row.get(3)?,
                        answer: answer_columns(row, 4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(HistoryRow::into_event).collect()
        })
        .await
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn account(&self, account_id: i64) -> Result<Option<AccountView>, StoreError> {
        self.read(move |conn| load_account(conn, account_id)).await
    }

    async fn account_by_identity(
        &self,
        idk: &IdentityKey,
    ) -> Result<Option<AccountView>, StoreError> {
        let idk = *idk;
        self.read(move |conn| match account_of(conn, &idk)? {
            Some(account) => load_account(conn, account),
            None => Ok(None),
        })
        .await
    }

    async fn associate(
        &self,
        account_id: Option<i64>,
        association: NewAssociation,
        now: u64,
    ) -> Result<Result<i64, Conflict>, StoreError> {
        let NewAssociation { idk, suk, vuk } = association;
        self.write(move |tx| {
            if account_of(tx, &idk)?.is_some() {
                return Ok(Err(Conflict::IdentityTaken));
            }
            let superseded = exists(
                tx,
                "SELECT 1 FROM superseded_identities WHERE idk = ?1",
                [idk.to_bytes()],
            )?;
            if superseded {
                return Ok(Err(Conflict::IdentitySuperseded));
            }
            let account = match account_id {
                Some(id) => {
                    if load_account(tx, id)?.is_none() {
                        return Ok(Err(Conflict::NoAccount));
                    }
                    let has_identity = exists(
                        tx,
                        "SELECT 1 FROM sqrl_identities WHERE account_id = ?1",
                        [id],
                    )?;
                    if has_identity {
                        return Ok(Err(Conflict::AccountHasIdentity));
                    }
                    id
                }
                None => {
                    exec(
                        tx,
                        "INSERT INTO accounts (created_at) VALUES (?1)",
                        [sql_time(now)],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            exec(
                tx,
                "INSERT INTO sqrl_identities
                (idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, created_at, updated_at)
                VALUES (?1, ?2, ?3, ?4, 0, 0, 0, ?5, ?5)",
                params![
                    idk.to_bytes(),
                    account,
                    suk.as_bytes(),
                    vuk.to_bytes(),
                    sql_time(now)
                ],
            )?;
            Ok(Ok(account))
        })
        .await
    }

    async fn account_handle(
        &self,
        account_id: i64,
        fresh: &str,
    ) -> Result<Option<String>, StoreError> {
        const HANDLE: &str = "SELECT handle FROM accounts WHERE id = ?1";
        let stored = self
            .read(move |conn| {
                first(conn, HANDLE, [account_id], |row| {
                    row.get::<_, Option<String>>(0)
                })
            })
            .await?;
        match stored {
            None => Ok(None),
            Some(Some(handle)) => Ok(Some(handle)),
            // The first use: minted once, whichever request gets there first.
            Some(None) => {
                let fresh = fresh.to_owned();
                self.write(move |tx| {
                    exec(
                        tx,
                        "UPDATE accounts SET handle = ?2 WHERE id = ?1 AND handle IS NULL",
                        params![account_id, fresh],
                    )?;
                    Ok(first(tx, HANDLE, [account_id], |row| {
                        row.get::<_, Option<String>>(0)
                    })?
                    .flatten())
                })
                .await
            }
        }
    }

    async fn remove_identity(&self, idk: &IdentityKey, now: u64) -> Result<bool, StoreError> {
        let idk = *idk;
        let routes = Arc::clone(&self.events);
        self.write(move |tx| {
            let Some(account) = account_of(tx, &idk)? else {
                return Ok(false);
            };
            end_sessions_of(tx, &idk, &routes, RevokeReason::IdentityRemoved, now)?;
            exec(
                tx,
                "DELETE FROM sqrl_identities WHERE idk = ?1",
                [idk.to_bytes()],
            )?;
            record(tx, &routes, now, || {
                Event::removed(account, RemovedBy::Operator, now)
            })?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn prune(&self, now: u64) -> Result<u64, StoreError> {
        let in_flight = self.pool.in_flight.prune(now);
        let durable = self
            .write(move |tx| {
                let now = sql_time(now);
                let mut deleted = 0;
                for sql in ["DELETE FROM sessions WHERE expires_at <= ?1"]
                    .into_iter()
                    .chain(super::oidc::sql::PRUNE)
                {
                    deleted += exec(tx, sql, [now])?;
                }
                deleted += exec(
                    tx,
                    PRUNE_DELIVERED_SQL,
                    [now.saturating_sub(sql_time(DELIVERED_KEPT))],
                )?;
                Ok(deleted as u64)
            })
            .await?;
        Ok(in_flight + durable)
    }

    async fn active_sessions(&self, now: u64, idle_cutoff: u64) -> Result<u64, StoreError> {
        let count: i64 = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT count(*) FROM sessions WHERE expires_at > ?1 AND last_seen_at >= ?2",
                    )?
                    .query_row(params![sql_time(now), sql_time(idle_cutoff)], |row| {
                        row.get(0)
                    })?)
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn in_flight(&self) -> Result<InFlight, StoreError> {
        Ok(self.pool.in_flight.counts())
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_deliveries(
        &self,
        endpoint: &str,
        now: u64,
        lease_until: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let endpoint = endpoint.to_owned();
        self.write(move |tx| {
            let mut statement = tx.prepare_cached(
                "UPDATE webhook_outbox SET leased_until = ?1, attempts = attempts + 1
                  WHERE id IN (SELECT id FROM webhook_outbox
                                WHERE endpoint = ?2 AND status = 'pending'
                                  AND next_attempt_at <= ?3
                                  AND (leased_until IS NULL OR leased_until <= ?3)
                                ORDER BY id LIMIT ?4)
              RETURNING id, event_id, endpoint, body, attempts",
            )?;
            let mut claimed = statement
                .query_map(
                    params![sql_time(lease_until), endpoint, sql_time(now), limit],
                    |row| {
                        Ok(Delivery {
                            row: row.get(0)?,
                            event_id: row.get(1)?,
                            endpoint: row.get(2)?,
                            body: row.get(3)?,
                            attempts: row.get(4)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING gives no order: oldest first.
            claimed.sort_by_key(|delivery| delivery.row);
            Ok(claimed)
        })
        .await
    }

    async fn mark_delivered(&self, row: i64, now: u64) -> Result<(), StoreError> {
        self.write(move |tx| {
            exec(tx, MARK_DELIVERED_SQL, params![row, sql_time(now)])?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(
        &self,
        row: i64,
        retry_at: Option<u64>,
        error: String,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            exec(
                tx,
                MARK_FAILED_SQL,
                params![row, retry_at.map(sql_time), error],
            )?;
            Ok(())
        })
        .await
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(|conn| {
            let (pending, dead) = conn
                .prepare_cached(OUTBOX_COUNTS_SQL)?
                .query_row([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
            Ok(OutboxCounts {
                pending: u64::try_from(pending).unwrap_or(0),
                dead: u64::try_from(dead).unwrap_or(0),
            })
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use rand_core::OsRng;

    use super::*;
    use crate::token::Token;

    #[tokio::test]
    async fn a_batch_that_cannot_commit_forgets_the_logins_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), 2).unwrap();
        let nut = Nut::generate(&mut OsRng);
        let attempt = NewAttempt {
            id: nut.as_str().to_owned(),
            pag_hash: Token::generate(&mut OsRng).hash(),
            browser_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: "Test/1.0".to_owned(),
            created_at: 1_000,
            expires_at: 1_600,
        };
        let conversation = Conversation {
            expected_server: Vec::new(),
            browser: None,
            idk: None,
            sin: None,
            asked: false,
            expires_at: 1_120,
        };
        store
            .create_attempt(attempt, nut.clone(), conversation)
            .await
            .unwrap();
        assert_eq!(store.in_flight().await.unwrap().attempts, 1);
        // A job that ends the batch's transaction under the writer: the
        // batch cannot be committed.
        let failed = store.write(|tx| Ok(tx.execute_batch("ROLLBACK")?)).await;
        assert!(failed.is_err(), "{failed:?}");
        assert_eq!(store.in_flight().await.unwrap(), InFlight::default());
        assert!(store.attempt(nut.as_str()).await.unwrap().is_none());
    }
}
