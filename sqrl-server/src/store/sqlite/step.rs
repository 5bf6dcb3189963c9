//! [`Attempts::step`](super::super::Attempts::step) on SQLite: one job of
//! the single writer, so the step's reads come from the writer's connection
//! inside its transaction, nothing else writes between them and the commit,
//! and no read is handed to another thread. A step the driver expects to
//! write nothing durable is first tried on a reader on the calling thread
//! ([`run_read_only`]), and reaches the writer only if its plan writes.
//!
//! The login in flight (the conversation, the waiting page) is in memory
//! ([`super::in_flight`]): the job takes the conversation from there, and
//! changes the page and stores the next conversation once its SQL is done.

use rusqlite::{Connection, ErrorCode, params};
use sqrl_core::keys::IdentityKey;
use sqrl_core::server::{
    AccountRecord, Conversation, Lookups, Mutation, Nut, Records, SecretDigest, SecretWrite,
};

use super::super::rows::{IdentityRow, corrupt, sql_time};
use super::super::step::{
    ConversationSource, Decide, MAX_STEP_TRIES, NextConversation, PlanError, StepInput,
    StepRequest, Stepped, Tried, applied, gave_up, keeps, stepped,
};
use super::super::{AttemptUpdate, Confirmation, LoginMethod, StoreError};
use super::in_flight::{InFlightMemory, LinkEntry, PageChange};
use super::writer::Written;
use super::{account_of, end_sessions_of, exec, exists, first, record};
use crate::webhooks::{EventRoutes, identity_event};

/// The in-memory half of an applied try, made once its SQL is released.
#[derive(Default)]
struct Effects {
    page: Option<PageChange>,
    next: Option<(Nut, Conversation)>,
}

/// The writer job of one step: tries it up to [`MAX_STEP_TRIES`] times, each
/// try in a savepoint of its own, so a try that does not apply leaves
/// nothing behind. The writer commits the job's batch; the result is handed
/// back once that commit is on disk. A step that applies nothing puts its
/// conversation back: the nut is still unused.
pub(super) fn run(
    conn: &Connection,
    memory: &InFlightMemory,
    routes: &EventRoutes,
    request: &StepRequest,
    decide: &mut Decide,
) -> Result<Written<Result<Stepped, PlanError>>, StoreError> {
    let (taken_from, conversation) = take(memory, request);
    let tried = try_all(conn, memory, routes, request, conversation.as_ref(), decide);
    match tried {
        Ok(Written::Commit(Ok(stepped))) => Ok(Written::Commit(Ok(stepped))),
        other => {
            put_back(memory, taken_from, conversation);
            other
        }
    }
}

/// What a read-only step came to on the calling thread.
pub(super) enum ReadOnly {
    /// Decided and applied (memory only), or refused by the plan's builder.
    Done(Box<Result<Stepped, PlanError>>),
    /// The plan writes after all: its conversation is back in memory and the
    /// step must run on the writer, decided again there.
    NeedsWriter,
}

/// A step that likely changes nothing durable ([`StepRequest::likely_read_only`]:
/// a `query`, a returning identity's `ident`), on a reader connection on the
/// calling thread. Its reads are a few indexed rows in one read transaction,
/// cheaper than the hand-off to the writer thread and back. When its plan
/// writes nothing durable, the step is applied here, in memory: with nothing
/// to commit, it is ordered where it read (a login confirmed here is as if
/// confirmed on the writer just before any later change to the identity).
/// The conversation is taken from memory once, as on the writer.
pub(super) fn run_read_only(
    conn: &Connection,
    memory: &InFlightMemory,
    request: &StepRequest,
    decide: &mut Decide,
) -> Result<ReadOnly, StoreError> {
    let (taken_from, conversation) = take(memory, request);
    let sin = conversation.as_ref().and_then(|c| c.sin.as_deref());
    // Every read must see one snapshot. A login's usual reads (its identity
    // alone, no previous identity, no indexed secret) are one statement,
    // which is its own snapshot: no transaction to open and close.
    let one_statement = request
        .lookups
        .is_none_or(|lookups| lookups.pidk.is_none() && sin.is_none());
    let decided = if one_statement {
        decide_read_only(conn, memory, request, conversation.clone(), decide)
    } else {
        // Rolled back (it wrote nothing) when dropped.
        conn.unchecked_transaction()
            .map_err(StoreError::from)
            .and_then(|_snapshot| {
                decide_read_only(conn, memory, request, conversation.clone(), decide)
            })
    };
    if !matches!(&decided, Ok(ReadOnly::Done(done)) if done.is_ok()) {
        put_back(memory, taken_from, conversation);
    }
    decided
}

fn decide_read_only(
    conn: &Connection,
    memory: &InFlightMemory,
    request: &StepRequest,
    conversation: Option<Conversation>,
    decide: &mut Decide,
) -> Result<ReadOnly, StoreError> {
    let (input, current_account) = read_input(conn, memory, request, conversation)?;
    let stored = input.records.current.as_ref().map(|record| record.options);
    let plan = match decide(input) {
        Ok(plan) => plan,
        Err(error) => return Ok(ReadOnly::Done(Box::new(Err(error)))),
    };
    let unchanged = match &plan.issued.mutation {
        Mutation::None => true,
        // What `apply_mutation` would find already stored: no write.
        Mutation::SetOptions { idk, options } => {
            request.lookups.is_some_and(|lookups| lookups.idk == *idk) && stored == Some(*options)
        }
        _ => false,
    };
    // A link is written on the writer, where its token is checked new.
    let links = matches!(plan.attempt, AttemptUpdate::ClientSession { .. });
    if !unchanged || plan.issued.secret_write.is_some() || plan.revoke_sessions || links {
        return Ok(ReadOnly::NeedsWriter);
    }
    // Nothing was written: the account a login signs in is the one read
    // with its identity, in the same snapshot.
    let read = request
        .lookups
        .as_ref()
        .zip(current_account)
        .map(|(lookups, account)| (&lookups.idk, account));
    let Some(page) = page_change(conn, &plan.attempt, AccountOf::ReadWith(read))? else {
        // The login's account is gone (or is not the one read): the writer
        // decides again.
        return Ok(ReadOnly::NeedsWriter);
    };
    if let Some(change) = page {
        memory.change_page(change, request.now);
    }
    let next = keeps(&plan);
    if next == NextConversation::Stored {
        memory.insert_conversation(&plan.issued.nut, &plan.issued.conversation);
    }
    Ok(ReadOnly::Done(Box::new(Ok(applied(plan, next)))))
}

/// Takes the request's conversation: from memory under its nut (noted, to
/// be put back if the step applies nothing), or as the driver handed it.
fn take<'a>(
    memory: &InFlightMemory,
    request: &'a StepRequest,
) -> (Option<&'a Nut>, Option<Conversation>) {
    match &request.conversation {
        ConversationSource::Stored(nut) => (Some(nut), memory.take_conversation(nut)),
        ConversationSource::Taken(conversation) => (None, Some(Conversation::clone(conversation))),
        ConversationSource::None => (None, None),
    }
}

/// Puts a conversation taken from memory back: its step applied nothing,
/// so its nut is still unused.
fn put_back(memory: &InFlightMemory, taken_from: Option<&Nut>, conversation: Option<Conversation>) {
    if let (Some(nut), Some(conversation)) = (taken_from, conversation) {
        memory.put_back_conversation(nut, conversation);
    }
}

fn try_all(
    conn: &Connection,
    memory: &InFlightMemory,
    routes: &EventRoutes,
    request: &StepRequest,
    conversation: Option<&Conversation>,
    decide: &mut Decide,
) -> Result<Written<Result<Stepped, PlanError>>, StoreError> {
    let mut last = None;
    for _ in 0..MAX_STEP_TRIES {
        exec(conn, "SAVEPOINT step", [])?;
        let tried = try_step(conn, memory, routes, request, conversation.cloned(), decide);
        if let Ok((Tried::Applied(_), _)) = &tried {
            exec(conn, "RELEASE step", [])?;
        } else {
            exec(conn, "ROLLBACK TO step", [])?;
            exec(conn, "RELEASE step", [])?;
        }
        match tried {
            Ok((Tried::Applied(stepped), effects)) => {
                if let Some(change) = effects.page {
                    memory.change_page(change, request.now);
                }
                if let Some((nut, next)) = &effects.next {
                    memory.insert_conversation(nut, next);
                }
                return Ok(Written::Commit(Ok(*stepped)));
            }
            Ok((Tried::Unplanned(error), _)) => return Ok(Written::Rollback(Err(error))),
            Ok((Tried::NotApplied, _)) => last = None,
            Err(error) if lost_race(&error) => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(gave_up(last))
}

/// One try: read, decide, apply the SQL; the memory changes are returned.
fn try_step(
    conn: &Connection,
    memory: &InFlightMemory,
    routes: &EventRoutes,
    request: &StepRequest,
    conversation: Option<Conversation>,
    decide: &mut Decide,
) -> Result<(Tried, Effects), StoreError> {
    let not_applied = || Ok((Tried::NotApplied, Effects::default()));
    let plan = match decide(read_input(conn, memory, request, conversation)?.0) {
        Ok(plan) => plan,
        Err(error) => return Ok((Tried::Unplanned(error), Effects::default())),
    };
    let now = request.now;
    // The account is read before the change: a removed association no
    // longer names it.
    let event = match identity_event(&plan.issued.mutation) {
        Some((kind, idk)) => account_of(conn, idk)?.map(|account| (kind, account)),
        None => None,
    };
    if !apply_mutation(conn, &plan.issued.mutation, now)?
        || !keep_secret(conn, plan.issued.secret_write.as_ref(), now)?
    {
        return not_applied();
    }
    // Read after the change: the mutation may have made the account.
    let Some(page) = page_change(conn, &plan.attempt, AccountOf::Database)? else {
        return not_applied();
    };
    // Links are written by steps alone, on this thread: checked here, the
    // token is still new when the change is made.
    if let Some(PageChange::ClientSession { token_hash, .. }) = &page
        && memory.has_link(token_hash)
    {
        return not_applied();
    }
    if let Some((kind, account)) = event {
        record(conn, routes, now, || {
            crate::webhooks::Event::identity_change(kind, account, now)
        })?;
    }
    if plan.revoke_sessions
        && let Some(idk) = plan.issued.mutation.idk()
    {
        let reason = crate::webhooks::revoke_reason(&plan.issued.mutation);
        end_sessions_of(conn, idk, routes, reason, now)?;
    }
    let next = keeps(&plan);
    let effects = Effects {
        page,
        next: (next == NextConversation::Stored)
            .then(|| (plan.issued.nut.clone(), plan.issued.conversation.clone())),
    };
    Ok((stepped(plan, next), effects))
}

/// What a decision is shown: the conversation, the records for the
/// request's keys (indexed secrets under the conversation's `sin`) and the
/// waiting page's attempt; with them, the account of the request's `idk`.
fn read_input(
    conn: &Connection,
    memory: &InFlightMemory,
    request: &StepRequest,
    conversation: Option<Conversation>,
) -> Result<(StepInput, Option<i64>), StoreError> {
    let sin = conversation.as_ref().and_then(|c| c.sin.as_deref());
    let (records, current_account) = match &request.lookups {
        Some(lookups) => read_records(conn, lookups, sin)?,
        None => (Records::default(), None),
    };
    let attempt = conversation
        .as_ref()
        .and_then(|c| c.browser.as_ref())
        .and_then(|browser| memory.attempt(&browser.attempt));
    let input = StepInput {
        conversation,
        records,
        attempt,
    };
    Ok((input, current_account))
}

/// Whether the database refused a write because of the state another write
/// left (a key already taken, a row gone): the step is decided again.
fn lost_race(error: &StoreError) -> bool {
    let StoreError::Database(source) = error else {
        return matches!(error, StoreError::Busy(_));
    };
    match source.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(failure, _)) => {
            failure.code == ErrorCode::ConstraintViolation
                && matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        | rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
                )
        }
        _ => false,
    }
}

/// The records a decision reads, indexed-secret digests under `sin`, and
/// the account of `idk`.
fn read_records(
    conn: &Connection,
    lookups: &Lookups,
    sin: Option<&str>,
) -> Result<(Records, Option<i64>), StoreError> {
    let current = identity(conn, &lookups.idk)?;
    let secret = |idk: &IdentityKey| match sin {
        Some(sin) => kept_secret(conn, idk, sin),
        None => Ok(None),
    };
    let (previous, previous_secret) = match &lookups.pidk {
        Some(pidk) => (identity(conn, pidk)?.record, secret(pidk)?),
        None => (None, None),
    };
    let records = Records {
        current: current.record,
        current_superseded: current.superseded,
        previous,
        current_secret: secret(&lookups.idk)?,
        previous_secret,
    };
    Ok((records, current.account))
}

/// What is kept under one identity key.
struct Identity {
    record: Option<AccountRecord>,
    account: Option<i64>,
    superseded: bool,
}

/// An identity's association, its account and whether it is superseded, in
/// one statement (one row whether or not the key is known).
fn identity(conn: &Connection, idk: &IdentityKey) -> Result<Identity, StoreError> {
    let row = first(
        conn,
        // The key as a one-row table joined on, not `?1` twice: written
        // with the parameter in the join, SQLite plans the statement anew on
        // every run (5x the time of this form).
        "SELECT i.suk, i.vuk, i.disabled, i.sqrl_only, i.hardlock, i.account_id,
                EXISTS (SELECT 1 FROM superseded_identities s WHERE s.idk = k.idk)
         FROM (SELECT ?1 AS idk) k LEFT JOIN sqrl_identities i ON i.idk = k.idk",
        [idk.to_bytes()],
        |row| {
            let account: Option<i64> = row.get(5)?;
            let identity = match account {
                Some(_) => Some(IdentityRow {
                    suk: row.get(0)?,
                    vuk: row.get(1)?,
                    disabled: row.get(2)?,
                    sqrl_only: row.get(3)?,
                    hardlock: row.get(4)?,
                }),
                None => None,
            };
            Ok((identity, account, row.get::<_, bool>(6)?))
        },
    )?;
    let Some((identity, account, superseded)) = row else {
        return Err(corrupt("sqrl_identities", "lookup returned no row"));
    };
    Ok(Identity {
        record: identity.map(IdentityRow::into_record).transpose()?,
        account,
        superseded,
    })
}

/// The indexed-secret digest kept for `idk` and `sin`, if any.
fn kept_secret(
    conn: &Connection,
    idk: &IdentityKey,
    sin: &str,
) -> Result<Option<SecretDigest>, StoreError> {
    let row: Option<Vec<u8>> = first(
        conn,
        "SELECT ins_hash FROM indexed_secrets WHERE idk = ?1 AND sin = ?2",
        params![idk.to_bytes(), sin],
        |row| row.get(0),
    )?;
    row.map(|bytes| SecretDigest::from_slice(&bytes).ok_or(corrupt("indexed_secrets", "ins_hash")))
        .transpose()
}

/// Keeps an indexed secret as the decision says. A secret is kept only for
/// an association that exists (it follows its identity). `Ok(false)`: a
/// write this store does not know.
fn keep_secret(tx: &Connection, write: Option<&SecretWrite>, now: u64) -> Result<bool, StoreError> {
    const INSERT: &str = "INSERT INTO indexed_secrets (idk, sin, ins_hash, created_at)
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM sqrl_identities WHERE idk = ?1)
         ON CONFLICT DO NOTHING";
    match write {
        None => {}
        // The first secret stays: a second one for the same sin is not
        // written over it.
        Some(SecretWrite::Remember { idk, sin, digest }) => {
            exec(
                tx,
                INSERT,
                params![idk.to_bytes(), sin, digest.as_bytes(), sql_time(now)],
            )?;
        }
        Some(SecretWrite::Establish { idk, sin, digest }) => {
            exec(
                tx,
                "DELETE FROM indexed_secrets WHERE idk = ?1",
                [idk.to_bytes()],
            )?;
            exec(
                tx,
                INSERT,
                params![idk.to_bytes(), sin, digest.as_bytes(), sql_time(now)],
            )?;
        }
        Some(_) => return Ok(false),
    }
    Ok(true)
}

/// Applies a decision's mutation. `Ok(false)`: the stored state does not
/// allow it (the step is rolled back and decided again).
fn apply_mutation(tx: &Connection, mutation: &Mutation, now: u64) -> Result<bool, StoreError> {
    let now = sql_time(now);
    let changed = match mutation {
        Mutation::None => return Ok(true),
        Mutation::Create {
            idk,
            suk,
            vuk,
            options,
        } => {
            exec(tx, "INSERT INTO accounts (created_at) VALUES (?1)", [now])?;
            let account = tx.last_insert_rowid();
            exec(
                tx,
                "INSERT INTO sqrl_identities
                    (idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?7)
                 ON CONFLICT DO NOTHING",
                params![
                    idk.to_bytes(),
                    account,
                    suk.as_bytes(),
                    vuk.to_bytes(),
                    options.sqrl_only,
                    options.hardlock,
                    now
                ],
            )?
        }
        Mutation::Replace {
            previous,
            idk,
            suk,
            vuk,
            options,
        } => {
            let Some(account) = account_of(tx, previous)? else {
                return Ok(false);
            };
            let updated = exec(
                tx,
                // A replacement is a fresh association: enabled. The core never
                // replaces a disabled identity (TIF 0x08 instead), and the
                // `disabled = 0` guard keeps a race from re-enabling one.
                "UPDATE sqrl_identities
                    SET idk = ?1, suk = ?2, vuk = ?3, sqrl_only = ?4, hardlock = ?5, updated_at = ?6,
                        disabled = 0
                  WHERE idk = ?7 AND disabled = 0",
                params![
                    idk.to_bytes(),
                    suk.as_bytes(),
                    vuk.to_bytes(),
                    options.sqrl_only,
                    options.hardlock,
                    now,
                    previous.to_bytes()
                ],
            )?;
            // PITFALLS 25: the old key answers 0x200/0x240 from now on.
            exec(
                tx,
                "INSERT INTO superseded_identities (idk, account_id, superseded_at)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![previous.to_bytes(), account, now],
            )?;
            updated
        }
        // A returning login mostly sets the options already stored: then
        // nothing is written (no WAL frame, no sync at the commit), and only
        // the association's existence is checked.
        Mutation::SetOptions { idk, options } => {
            let updated = exec(
                tx,
                "UPDATE sqrl_identities SET sqrl_only = ?1, hardlock = ?2, updated_at = ?3
                  WHERE idk = ?4 AND (sqrl_only IS NOT ?1 OR hardlock IS NOT ?2)",
                params![options.sqrl_only, options.hardlock, now, idk.to_bytes()],
            )?;
            if updated == 0 {
                usize::from(exists(
                    tx,
                    "SELECT 1 FROM sqrl_identities WHERE idk = ?1",
                    [idk.to_bytes()],
                )?)
            } else {
                updated
            }
        }
        Mutation::Disable { idk, options } => exec(
            tx,
            "UPDATE sqrl_identities SET disabled = 1, sqrl_only = ?1, hardlock = ?2, updated_at = ?3
              WHERE idk = ?4",
            params![options.sqrl_only, options.hardlock, now, idk.to_bytes()],
        )?,
        Mutation::Enable { idk, options } => exec(
            tx,
            "UPDATE sqrl_identities SET disabled = 0, sqrl_only = ?1, hardlock = ?2, updated_at = ?3
              WHERE idk = ?4",
            params![options.sqrl_only, options.hardlock, now, idk.to_bytes()],
        )?,
        Mutation::Remove { idk } => exec(
            tx,
            "DELETE FROM sqrl_identities WHERE idk = ?1",
            [idk.to_bytes()],
        )?,
        // A mutation this driver does not know must not be acknowledged.
        _ => return Ok(false),
    };
    Ok(changed == 1)
}

/// Where [`page_change`] finds the account a login signs in.
#[derive(Clone, Copy)]
enum AccountOf<'a> {
    /// Read it now (after the step's writes).
    Database,
    /// The account read with the request's identity (`None`: not
    /// associated), taken as the only one known: a login of another key is
    /// treated as not there, so the step goes to the writer.
    ReadWith(Option<(&'a IdentityKey, i64)>),
}

/// The page's change a plan asks for, with the account a login signs in
/// read from the database. `Ok(None)`: the login's account is not there
/// (the step is decided again); `Ok(Some(None))`: no change.
fn page_change(
    conn: &Connection,
    update: &AttemptUpdate,
    accounts: AccountOf<'_>,
) -> Result<Option<Option<PageChange>>, StoreError> {
    let account_of = |conn: &Connection, idk: &IdentityKey| match accounts {
        AccountOf::Database => account_of(conn, idk),
        AccountOf::ReadWith(read) => {
            Ok(read.and_then(|(read_idk, account)| (read_idk == idk).then_some(account)))
        }
    };
    let change = match update {
        AttemptUpdate::None => None,
        AttemptUpdate::Scanned { attempt } => Some(PageChange::Scanned {
            attempt: attempt.clone(),
        }),
        AttemptUpdate::LogIn {
            attempt,
            idk,
            answer,
            device_on_browser_network,
        } => {
            let Some(account_id) = account_of(conn, idk)? else {
                return Ok(None);
            };
            Some(PageChange::Confirmed {
                attempt: attempt.clone(),
                account_id,
                confirmation: Confirmation {
                    idk: *idk,
                    device_on_browser_network: *device_on_browser_network,
                },
                answer: answer.clone(),
            })
        }
        AttemptUpdate::ClientSession {
            attempt,
            idk,
            token_hash,
            expires_at,
            answer,
            device_on_browser_network,
        } => {
            let Some(account_id) = account_of(conn, idk)? else {
                return Ok(None);
            };
            // The link stays bound to its page's browser even when the
            // page itself moved on (another device confirmed first): only
            // the holder of that page's secret may redeem it.
            Some(PageChange::ClientSession {
                attempt: attempt.clone(),
                token_hash: *token_hash,
                link: LinkEntry {
                    account_id,
                    attempt_id: attempt.clone(),
                    method: LoginMethod::SameDevice,
                    expires_at: *expires_at,
                    device_on_browser_network: *device_on_browser_network,
                    answer: answer.clone(),
                },
            })
        }
        AttemptUpdate::Rejected { attempt } => Some(PageChange::Rejected {
            attempt: attempt.clone(),
        }),
    };
    Ok(Some(change))
}
