//! [`Attempts::step`](super::super::Attempts::step) on PostgreSQL: one
//! transaction per try, the decision made inside it on locked records.
//!
//! Lock order, the same in every step: the identity keys (advisory locks,
//! in key order), then the conversation row (its `DELETE`), then the
//! association rows (`FOR UPDATE`). Requests for the same identity wait for
//! each other at the first lock, before they read anything, so each decides
//! on what the one before it committed.

use deadpool_postgres::GenericClient;
use sqrl_core::keys::IdentityKey;
use sqrl_core::server::{AccountRecord, Conversation, Lookups, Mutation, Nut, Records};
use sqrl_core::server::{SecretDigest, SecretWrite};

use super::super::rows::{AnswerColumns, ConversationRow, IdentityRow, corrupt, sql_time};
use super::super::step::{
    ConversationSource, Decide, MAX_STEP_TRIES, NextConversation, StepInput, StepRequest, Tried,
    applied, gave_up, keeps,
};
use super::super::{Attempt, AttemptUpdate, LoginMethod, StepError, Stepped, StoreError};
use super::{
    LOCK_IDENTITY, PostgresStore, account_of, all, attempt_from_row, end_sessions_of, exec, get,
    identity_lock_key, insert_conversation, listen, lock_identity, lost_race, opt, read_attempt,
    record,
};
use crate::webhooks::{Event, identity_event, revoke_reason};

/// Runs a step: up to [`MAX_STEP_TRIES`] transactions, until one commits.
pub(super) async fn run(
    store: &PostgresStore,
    request: &StepRequest,
    decide: &mut Decide,
) -> Result<Stepped, StepError> {
    let mut last = None;
    for _ in 0..MAX_STEP_TRIES {
        match try_step(store, request, decide).await {
            Ok(Tried::Applied(stepped)) => return Ok(*stepped),
            Ok(Tried::Unplanned(error)) => return Err(error.into()),
            Ok(Tried::NotApplied) => last = None,
            // Aborted for a lost race (a serialization failure, a deadlock,
            // a key taken first): nothing was written; decide again.
            Err(error) if lost_race(&error) => last = Some(error),
            Err(error) => return Err(error.into()),
        }
    }
    Err(gave_up(last).into())
}

/// One transaction: lock, take, read, decide, apply, commit. Returning
/// before the commit drops the transaction, which rolls it back.
async fn try_step(
    store: &PostgresStore,
    request: &StepRequest,
    decide: &mut Decide,
) -> Result<Tried, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    // The identity locks, the conversation's take and the association reads
    // go out together, in that order (the lock order above): tokio-postgres
    // pipelines them on the transaction's connection, and PostgreSQL runs
    // them one after another, so each still waits for the one before. A
    // statement's first use on a connection is a `Parse` round trip of its
    // own, after which it would run behind statements sent later; preparing
    // them all first (no round trip once cached) keeps the order.
    prepare(&tx, &FIRST_ROUND_TRIP).await?;
    let mut keys = Vec::new();
    if let Some(lookups) = &request.lookups {
        keys.push(lookups.idk);
        keys.extend(lookups.pidk);
        // One order for all, so two steps never wait for each other in a
        // circle.
        keys.sort_by_key(identity_lock_key);
        keys.dedup_by_key(|idk| identity_lock_key(idk));
    }
    let ((), (conversation, attempt), records) = futures_util::future::try_join3(
        lock_identities(&tx, &keys),
        async {
            match &request.conversation {
                ConversationSource::Stored(nut) => take_conversation(&tx, nut).await,
                ConversationSource::Taken(conversation) => {
                    let attempt = match &conversation.browser {
                        Some(browser) => read_attempt(&tx, &browser.attempt).await?,
                        None => None,
                    };
                    Ok((Some(Conversation::clone(conversation)), attempt))
                }
                ConversationSource::None => Ok((None, None)),
            }
        },
        async {
            match &request.lookups {
                Some(lookups) => read_records(&tx, lookups).await,
                None => Ok(Records::default()),
            }
        },
    )
    .await?;
    // A conversation that asked for an indexed secret (`sin`) shows the
    // digest kept under it: one more read, only for those.
    let records = match (
        &request.lookups,
        conversation.as_ref().and_then(|c| c.sin.as_deref()),
    ) {
        (Some(lookups), Some(sin)) => read_secrets(&tx, lookups, sin, records).await?,
        _ => records,
    };
    let plan = match decide(StepInput {
        conversation,
        records,
        attempt,
    }) {
        Ok(plan) => plan,
        Err(error) => return Ok(Tried::Unplanned(error)),
    };
    let now = sql_time(request.now);
    // The account is read before the change: a removed association no
    // longer names it.
    let event = match identity_event(&plan.issued.mutation) {
        Some((kind, idk)) => account_of(&tx, idk).await?.map(|account| (kind, account)),
        None => None,
    };
    let mut wrote = apply_mutation(&tx, &plan.issued.mutation, now).await?;
    if wrote == Wrote::Refused || !apply_attempt_update(&tx, &plan.attempt, now).await? {
        return Ok(Tried::NotApplied);
    }
    match keep_secret(&tx, plan.issued.secret_write.as_ref(), now).await? {
        Wrote::Refused => return Ok(Tried::NotApplied),
        kept => wrote = wrote.and(kept),
    }
    let routes = &store.events;
    if let Some((kind, account)) = event {
        record(&tx, routes, request.now, || {
            Event::identity_change(kind, account, request.now)
        })
        .await?;
        wrote = Wrote::Durable;
    }
    if plan.revoke_sessions
        && let Some(idk) = plan.issued.mutation.idk()
    {
        let reason = revoke_reason(&plan.issued.mutation);
        end_sessions_of(&tx, idk, routes, reason, request.now).await?;
        wrote = Wrote::Durable;
    }
    let next = keeps(&plan);
    let stored =
        (next == NextConversation::Stored).then_some((&plan.issued.nut, &plan.issued.conversation));
    // The other instances' pages hear of the change from this commit: a
    // `NOTIFY` is delivered when, and only if, its transaction commits.
    let notice = plan
        .attempt
        .attempt()
        .map(|attempt| (store.instance(), attempt));
    finish(&tx, wrote, stored, notice).await?;
    tx.commit().await?;
    Ok(Tried::Applied(Box::new(Stepped {
        published: notice.is_some(),
        ..applied(plan, next)
    })))
}

/// The last writes before the commit: the next conversation, if one is
/// kept; when the step changed nothing durable, the commit's leave not to
/// wait for a flush ([`relax_commit`]); and the notification of a changed
/// attempt (`notice`: this instance's name and the attempt). Sent together
/// (tokio-postgres pipelines them on the connection).
async fn finish<C: GenericClient>(
    c: &C,
    wrote: Wrote,
    next: Option<(&Nut, &Conversation)>,
    notice: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    futures_util::future::try_join3(
        async {
            if wrote == Wrote::NothingDurable {
                relax_commit(c).await?;
            }
            Ok::<_, StoreError>(())
        },
        async {
            if let Some((nut, conversation)) = next {
                insert_conversation(c, nut, conversation).await?;
            }
            Ok(())
        },
        async {
            if let Some((instance, attempt)) = notice {
                listen::publish(c, instance, attempt).await?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// What a step's write did to the durable tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrote {
    /// The stored state does not allow it: the step is rolled back and
    /// decided again (or a write this store does not know).
    Refused,
    /// No durable row changed (the logins in flight are `UNLOGGED`).
    NothingDurable,
    /// A durable row changed: the commit waits for its flush.
    Durable,
}

impl Wrote {
    fn and(self, other: Wrote) -> Wrote {
        match (self, other) {
            (Wrote::Refused, _) | (_, Wrote::Refused) => Wrote::Refused,
            (Wrote::Durable, _) | (_, Wrote::Durable) => Wrote::Durable,
            _ => Wrote::NothingDurable,
        }
    }
}

/// Lets the transaction commit without waiting for its WAL to be flushed.
/// Only for a transaction that changed nothing durable: a returning login's
/// step still writes WAL (the `FOR UPDATE` row locks on the associations,
/// and its commit record), and without this its commit would wait for a
/// flush (an fsync) that protects nothing: after a crash the locks are gone
/// and the `UNLOGGED` logins in flight are emptied, whether or not the
/// commit record reached the disk (the durability contract in the server's
/// README).
async fn relax_commit<C: GenericClient>(c: &C) -> Result<(), StoreError> {
    c.batch_execute("SET LOCAL synchronous_commit TO OFF")
        .await?;
    Ok(())
}

/// The statements [`try_step`] sends together, prepared before it sends any.
const FIRST_ROUND_TRIP: [&str; 3] = [LOCK_IDENTITY, TAKE_CONVERSATION, RECORDS];

const TAKE_CONVERSATION: &str = "WITH taken AS (
         DELETE FROM conversations WHERE nut = $1
         RETURNING attempt_id, browser_ip, expected_server, idk, sin, asked, expires_at)
     SELECT t.attempt_id, t.browser_ip, t.expected_server, t.idk, t.sin, t.asked,
            t.expires_at, a.id IS NOT NULL,
            a.pag_hash, a.browser_ip, a.state, a.created_at, a.expires_at, a.user_agent,
            a.confirmed_idk, a.device_on_browser_network
       FROM taken t LEFT JOIN login_attempts a ON a.id = t.attempt_id";

/// The associations of the keys in `$1`, locked, each row with whether
/// `$2` (the request's `idk`) is superseded; one row of NULLs and that flag
/// when neither key is associated. (`FOR UPDATE` may not lock the nullable
/// side of an outer join, so the locking read is a CTE of its own, kept
/// materialised so that it always runs.)
const RECORDS: &str = "WITH locked AS MATERIALIZED (
         SELECT idk, suk, vuk, disabled, sqrl_only, hardlock
           FROM sqrl_identities WHERE idk = ANY($1) FOR UPDATE)
     SELECT l.idk, l.suk, l.vuk, l.disabled, l.sqrl_only, l.hardlock,
            EXISTS (SELECT 1 FROM superseded_identities WHERE idk = $2)
       FROM (SELECT) AS one LEFT JOIN locked l ON true";

const SECRETS: &str = "SELECT idk, ins_hash FROM indexed_secrets WHERE idk = ANY($1) AND sin = $2";

/// Prepares `statements` on the connection (together, and only those not
/// prepared on it before).
async fn prepare<C: GenericClient>(c: &C, statements: &[&str]) -> Result<(), StoreError> {
    futures_util::future::try_join_all(statements.iter().map(|sql| c.prepare_cached(sql))).await?;
    Ok(())
}

/// Takes the identity locks of `keys`, in that order, all sent at once.
async fn lock_identities<C: GenericClient>(c: &C, keys: &[IdentityKey]) -> Result<(), StoreError> {
    // `try_join_all` polls its futures in order, so the requests are
    // written in the order of `keys`.
    futures_util::future::try_join_all(keys.iter().map(|idk| lock_identity(c, idk))).await?;
    Ok(())
}

/// Reads and deletes the conversation under `nut`, with the attempt of the
/// page behind it, in one statement. A nut is used once: of two concurrent
/// requests with the same nut, on any instances, one gets it (the other's
/// `DELETE` waits for the first transaction and then finds nothing).
async fn take_conversation<C: GenericClient>(
    c: &C,
    nut: &Nut,
) -> Result<(Option<Conversation>, Option<Attempt>), StoreError> {
    let Some(row) = opt(c, TAKE_CONVERSATION, &[&nut.as_str()]).await? else {
        return Ok((None, None));
    };
    let conversation = ConversationRow {
        attempt_id: get(&row, 0)?,
        browser_ip: get(&row, 1)?,
        expected_server: get(&row, 2)?,
        idk: get(&row, 3)?,
        sin: get(&row, 4)?,
        asked: get(&row, 5)?,
        expires_at: get(&row, 6)?,
    }
    .into_conversation()?;
    let attempt = match (&conversation.browser, get::<bool>(&row, 7)?) {
        (Some(browser), true) => attempt_from_row(&row, 8, &browser.attempt)?,
        _ => None,
    };
    Ok((Some(conversation), attempt))
}

/// The keys of `lookups` as the `bytea[]` the queries take.
fn lookup_keys(lookups: &Lookups) -> Vec<Vec<u8>> {
    let mut keys = vec![lookups.idk.to_bytes().to_vec()];
    keys.extend(lookups.pidk.map(|pidk| pidk.to_bytes().to_vec()));
    keys
}

/// The records a decision reads, without indexed secrets
/// ([`read_secrets`]). The association rows stay locked until the
/// transaction ends.
async fn read_records<C: GenericClient>(c: &C, lookups: &Lookups) -> Result<Records, StoreError> {
    let idk = lookups.idk.to_bytes();
    let keys = lookup_keys(lookups);
    let rows = all(c, RECORDS, &[&keys, &idk.as_slice()]).await?;
    let mut records = Records::default();
    for row in &rows {
        records.current_superseded = get(row, 6)?;
        let Some(key) = get::<Option<Vec<u8>>>(row, 0)? else {
            continue;
        };
        let account = account_of_row(row)?;
        if key == idk {
            records.current = Some(account);
        } else {
            records.previous = Some(account);
        }
    }
    Ok(records)
}

/// Adds to `records` the digests kept under `sin` for their associations
/// (a secret follows its identity, so one without an association is not
/// shown).
async fn read_secrets<C: GenericClient>(
    c: &C,
    lookups: &Lookups,
    sin: &str,
    mut records: Records,
) -> Result<Records, StoreError> {
    if records.current.is_none() && records.previous.is_none() {
        return Ok(records);
    }
    let idk = lookups.idk.to_bytes();
    for row in all(c, SECRETS, &[&lookup_keys(lookups), &sin]).await? {
        let key: Vec<u8> = get(&row, 0)?;
        let bytes: Vec<u8> = get(&row, 1)?;
        let digest =
            SecretDigest::from_slice(&bytes).ok_or(corrupt("indexed_secrets", "ins_hash"))?;
        if key == idk {
            if records.current.is_some() {
                records.current_secret = Some(digest);
            }
        } else if records.previous.is_some() {
            records.previous_secret = Some(digest);
        }
    }
    Ok(records)
}

/// The association in a row of `read_records`.
fn account_of_row(row: &tokio_postgres::Row) -> Result<AccountRecord, StoreError> {
    IdentityRow {
        suk: get(row, 1)?,
        vuk: get(row, 2)?,
        disabled: get(row, 3)?,
        sqrl_only: get(row, 4)?,
        hardlock: get(row, 5)?,
    }
    .into_record()
}

/// Keeps an indexed secret as the decision says. A secret is kept only for
/// an association that exists (it follows its identity).
async fn keep_secret<C: GenericClient>(
    c: &C,
    write: Option<&SecretWrite>,
    now: i64,
) -> Result<Wrote, StoreError> {
    const INSERT: &str = "INSERT INTO indexed_secrets (idk, sin, ins_hash, created_at)
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM sqrl_identities WHERE idk = $1)
         ON CONFLICT DO NOTHING";
    let insert = async |idk: &IdentityKey, sin: &str, digest: &SecretDigest| {
        let idk = idk.to_bytes();
        exec(
            c,
            INSERT,
            &[&idk.as_slice(), &sin, &digest.as_bytes().as_slice(), &now],
        )
        .await
    };
    match write {
        None => return Ok(Wrote::NothingDurable),
        // The first secret stays: a second one for the same sin is not
        // written over it.
        Some(SecretWrite::Remember { idk, sin, digest }) => {
            insert(idk, sin, digest).await?;
        }
        Some(SecretWrite::Establish { idk, sin, digest }) => {
            exec(
                c,
                "DELETE FROM indexed_secrets WHERE idk = $1",
                &[&idk.to_bytes().as_slice()],
            )
            .await?;
            insert(idk, sin, digest).await?;
        }
        Some(_) => return Ok(Wrote::Refused),
    }
    Ok(Wrote::Durable)
}

/// Applies a decision's mutation.
async fn apply_mutation<C: GenericClient>(
    c: &C,
    mutation: &Mutation,
    now: i64,
) -> Result<Wrote, StoreError> {
    let changed = match mutation {
        Mutation::None => return Ok(Wrote::NothingDurable),
        Mutation::Create {
            idk,
            suk,
            vuk,
            options,
        } => {
            let row = opt(
                c,
                "INSERT INTO accounts (created_at) VALUES ($1) RETURNING id",
                &[&now],
            )
            .await?
            .ok_or(corrupt("accounts", "insert returned no id"))?;
            let account: i64 = get(&row, 0)?;
            exec(
                c,
                "INSERT INTO sqrl_identities
                    (idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $7)
                 ON CONFLICT DO NOTHING",
                &[
                    &idk.to_bytes().as_slice(),
                    &account,
                    &suk.as_bytes().as_slice(),
                    &vuk.to_bytes().as_slice(),
                    &options.sqrl_only,
                    &options.hardlock,
                    &now,
                ],
            )
            .await?
        }
        Mutation::Replace {
            previous,
            idk,
            suk,
            vuk,
            options,
        } => {
            let Some(account) = account_of(c, previous).await? else {
                return Ok(Wrote::Refused);
            };
            // A replacement is a fresh association: enabled. The core never
            // replaces a disabled identity, and the guard keeps a race from
            // re-enabling one.
            let updated = exec(
                c,
                "UPDATE sqrl_identities
                    SET idk = $1, suk = $2, vuk = $3, sqrl_only = $4, hardlock = $5,
                        updated_at = $6, disabled = FALSE
                  WHERE idk = $7 AND NOT disabled",
                &[
                    &idk.to_bytes().as_slice(),
                    &suk.as_bytes().as_slice(),
                    &vuk.to_bytes().as_slice(),
                    &options.sqrl_only,
                    &options.hardlock,
                    &now,
                    &previous.to_bytes().as_slice(),
                ],
            )
            .await?;
            exec(
                c,
                "INSERT INTO superseded_identities (idk, account_id, superseded_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&previous.to_bytes().as_slice(), &account, &now],
            )
            .await?;
            updated
        }
        // A returning login mostly sets the options already stored: then no
        // row version (and no WAL record) is written, and only the
        // association's existence is checked (one row when it exists, with
        // the number of rows changed).
        Mutation::SetOptions { idk, options } => {
            let row = opt(
                c,
                "WITH changed AS (
                    UPDATE sqrl_identities SET sqrl_only = $1, hardlock = $2, updated_at = $3
                     WHERE idk = $4 AND (sqrl_only <> $1 OR hardlock <> $2)
                    RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM changed) FROM sqrl_identities WHERE idk = $4",
                &[
                    &options.sqrl_only,
                    &options.hardlock,
                    &now,
                    &idk.to_bytes().as_slice(),
                ],
            )
            .await?;
            return Ok(match row {
                None => Wrote::Refused,
                Some(row) if get::<i64>(&row, 0)? == 0 => Wrote::NothingDurable,
                Some(_) => Wrote::Durable,
            });
        }
        Mutation::Disable { idk, options } => {
            exec(
                c,
                "UPDATE sqrl_identities
                    SET disabled = TRUE, sqrl_only = $1, hardlock = $2, updated_at = $3
                  WHERE idk = $4",
                &[
                    &options.sqrl_only,
                    &options.hardlock,
                    &now,
                    &idk.to_bytes().as_slice(),
                ],
            )
            .await?
        }
        Mutation::Enable { idk, options } => {
            exec(
                c,
                "UPDATE sqrl_identities
                    SET disabled = FALSE, sqrl_only = $1, hardlock = $2, updated_at = $3
                  WHERE idk = $4",
                &[
                    &options.sqrl_only,
                    &options.hardlock,
                    &now,
                    &idk.to_bytes().as_slice(),
                ],
            )
            .await?
        }
        Mutation::Remove { idk } => {
            exec(
                c,
                "DELETE FROM sqrl_identities WHERE idk = $1",
                &[&idk.to_bytes().as_slice()],
            )
            .await?
        }
        // A mutation this driver does not know must not be acknowledged.
        _ => return Ok(Wrote::Refused),
    };
    Ok(if changed == 1 {
        Wrote::Durable
    } else {
        Wrote::Refused
    })
}

/// Applies the page update. `Ok(false)`: a login's account is not there.
async fn apply_attempt_update<C: GenericClient>(
    c: &C,
    update: &AttemptUpdate,
    now: i64,
) -> Result<bool, StoreError> {
    match update {
        AttemptUpdate::None => {}
        AttemptUpdate::Scanned { attempt } => {
            exec(
                c,
                "UPDATE login_attempts SET state = 'scanned', updated_at = $1
                  WHERE id = $2 AND state = 'pending' AND expires_at > $1",
                &[&now, attempt],
            )
            .await?;
        }
        AttemptUpdate::LogIn {
            attempt,
            idk,
            answer,
            device_on_browser_network,
        } => {
            // One statement: the identity's account, and the page confirmed
            // to it; no row when the identity has no account.
            let answer = AnswerColumns::of(answer.as_ref());
            let found = opt(
                c,
                "WITH identity AS (SELECT account_id FROM sqrl_identities WHERE idk = $6),
                      confirmed AS (
                        UPDATE login_attempts a
                           SET state = 'confirmed', account_id = identity.account_id,
                               updated_at = $1, ask_button = $3, ask_label = $4, ask_url = $5,
                               confirmed_idk = $6, device_on_browser_network = $7
                          FROM identity
                         WHERE a.id = $2 AND a.state IN ('pending', 'scanned')
                           AND a.expires_at > $1
                      )
                 SELECT account_id FROM identity",
                &[
                    &now,
                    attempt,
                    &answer.button,
                    &answer.label,
                    &answer.url,
                    &idk.to_bytes().as_slice(),
                    device_on_browser_network,
                ],
            )
            .await?;
            if found.is_none() {
                return Ok(false);
            }
        }
        AttemptUpdate::ClientSession {
            attempt,
            idk,
            token_hash,
            expires_at,
            answer,
            device_on_browser_network,
        } => {
            let Some(account) = account_of(c, idk).await? else {
                return Ok(false);
            };
            // The link stays bound to its page's browser even when the page
            // itself moved on: only the holder of that page's secret may
            // redeem it.
            if let Some(id) = attempt {
                exec(
                    c,
                    "UPDATE login_attempts SET state = 'client-session', updated_at = $1
                      WHERE id = $2 AND state IN ('pending', 'scanned') AND expires_at > $1",
                    &[&now, id],
                )
                .await?;
            }
            let answer = AnswerColumns::of(answer.as_ref());
            exec(
                c,
                "INSERT INTO login_links (token_hash, account_id, attempt_id, method, created_at,
                                          expires_at, ask_button, ask_label, ask_url,
                                          device_on_browser_network)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &token_hash.as_bytes().as_slice(),
                    &account,
                    attempt,
                    &LoginMethod::SameDevice.as_str(),
                    &now,
                    &sql_time(*expires_at),
                    &answer.button,
                    &answer.label,
                    &answer.url,
                    device_on_browser_network,
                ],
            )
            .await?;
        }
        AttemptUpdate::Rejected { attempt } => {
            exec(
                c,
                "UPDATE login_attempts SET state = 'rejected', updated_at = $1
                  WHERE id = $2 AND state IN ('pending', 'scanned')",
                &[&now, attempt],
            )
            .await?;
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use sqrl_core::keys::{IdentityUnlockKey, RandomLockKey};
    use sqrl_core::rand_core::{OsRng, RngCore as _};
    use sqrl_core::server::AccountOptions;
    use sqrl_core::url::SiteKeyString;
    use tokio_postgres::NoTls;

    use super::super::super::step::PlanError;
    use super::super::IDENTITY_LOCK_CLASS;
    use super::*;

    /// A store on a schema of its own in the database `SQRL_TEST_POSTGRES`
    /// names, and that schema's name.
    async fn store() -> (PostgresStore, String) {
        store_of(2).await
    }

    /// [`store`] with a pool of `connections`.
    async fn store_of(connections: usize) -> (PostgresStore, String) {
        let url = std::env::var("SQRL_TEST_POSTGRES").expect("SQRL_TEST_POSTGRES");
        let (admin, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let schema = format!("sqrl_unit_{:016x}", OsRng.next_u64());
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.options(format!("-c search_path={schema}"));
        (
            PostgresStore::connect_with(config, connections)
                .await
                .unwrap(),
            schema,
        )
    }

    async fn drop_schema(schema: &str) {
        let url = std::env::var("SQRL_TEST_POSTGRES").unwrap();
        let (admin, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }

    /// A session of its own on the schema of `store_of`, outside its pool.
    async fn session(schema: &str) -> tokio_postgres::Client {
        let url = std::env::var("SQRL_TEST_POSTGRES").unwrap();
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.options(format!("-c search_path={schema}"));
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// A step's first statements go out together, so they must reach
    /// PostgreSQL in lock order on any connection, including one that has
    /// used some of them before and not others (an unprepared statement
    /// runs behind a prepared one sent after it): while a step waits for its
    /// identity's lock it has not yet touched the conversation it will take.
    #[tokio::test]
    #[cfg_attr(
        no_postgres,
        ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
    )]
    async fn a_step_waiting_for_its_identity_has_not_touched_its_conversation() {
        let (store, schema) = store_of(1).await;
        let idk = *create(AccountOptions::default()).idk().unwrap();
        let nut = Nut::generate(&mut OsRng);
        {
            let client = store.client().await.unwrap();
            let conversation = Conversation {
                expected_server: Vec::new(),
                browser: None,
                idk: None,
                sin: None,
                asked: false,
                expires_at: u64::MAX / 4,
            };
            insert_conversation(&client, &nut, &conversation)
                .await
                .unwrap();
            // The pool's one connection has used the take, never the lock.
            client.prepare_cached(TAKE_CONVERSATION).await.unwrap();
        }
        let holder = session(&schema).await;
        holder.batch_execute("BEGIN").await.unwrap();
        let key = identity_lock_key(&idk);
        holder
            .execute(LOCK_IDENTITY, &[&IDENTITY_LOCK_CLASS, &key])
            .await
            .unwrap();

        let request = StepRequest {
            now: 1,
            conversation: ConversationSource::Stored(nut.clone()),
            lookups: Some(Lookups { idk, pidk: None }),
            likely_read_only: false,
        };
        // The decision sees what the step read, then ends it (rolled back).
        let (seen, saw) = tokio::sync::oneshot::channel();
        let step = tokio::spawn(async move {
            let mut seen = Some(seen);
            let mut decide: Decide = Box::new(move |input| {
                if let Some(seen) = seen.take() {
                    let _ = seen.send(input.conversation.is_some());
                }
                Err(PlanError(sqrl_core::msg::MessageError::TooLong {
                    field: "test",
                    max: 0,
                }))
            });
            run(&store, &request, &mut decide).await
        });
        let observer = session(&schema).await;
        let waiting = async {
            loop {
                let row = observer
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                           AND NOT granted AND objid = ($1::int4::int8 & 4294967295)::oid",
                        &[&key],
                    )
                    .await
                    .unwrap();
                if row.get::<_, i64>(0) > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the step waits for the identity's lock");
        // Give statements sent behind the lock time to run, were they not
        // behind it.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let untouched = observer
            .query_opt(
                "SELECT nut FROM conversations WHERE nut = $1 FOR UPDATE NOWAIT",
                &[&nut.as_str()],
            )
            .await;
        assert!(
            matches!(untouched, Ok(Some(_))),
            "the conversation is neither taken nor locked: {untouched:?}"
        );

        holder.batch_execute("ROLLBACK").await.unwrap();
        // Once the lock is free the step goes on and takes it.
        let stepped = step.await.unwrap();
        assert!(matches!(stepped, Err(StepError::Plan(_))), "{stepped:?}");
        assert_eq!(saw.await, Ok(true), "the step took the conversation");
        drop((holder, observer));
        drop_schema(&schema).await;
    }

    fn create(options: AccountOptions) -> Mutation {
        let iuk = IdentityUnlockKey::generate(&mut OsRng);
        let idk = iuk
            .master_key()
            .site_key(&SiteKeyString::new("example.com"))
            .public_key();
        let (suk, vuk) = RandomLockKey::generate(&mut OsRng)
            .lock(&iuk.lock_key())
            .unwrap();
        Mutation::Create {
            idk,
            suk,
            vuk,
            options,
        }
    }

    /// Only a step whose writes are all `NothingDurable` commits without
    /// waiting for its flush, so each write must say what it changed: a
    /// returning login's options already stored change nothing, anything
    /// else that changes an association (or keeps a secret) is durable.
    #[tokio::test]
    #[cfg_attr(
        no_postgres,
        ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
    )]
    async fn only_writes_to_durable_rows_count_as_durable() {
        let (store, schema) = store().await;
        let mut client = store.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let stored = AccountOptions {
            sqrl_only: false,
            hardlock: true,
        };
        let created = create(stored);
        let idk = *created.idk().unwrap();
        let wrote = async |mutation: &Mutation| apply_mutation(&tx, mutation, 1).await.unwrap();

        assert_eq!(wrote(&Mutation::None).await, Wrote::NothingDurable);
        assert_eq!(wrote(&created).await, Wrote::Durable);
        let same = Mutation::SetOptions {
            idk,
            options: stored,
        };
        assert_eq!(wrote(&same).await, Wrote::NothingDurable);
        let changed = Mutation::SetOptions {
            idk,
            options: AccountOptions {
                sqrl_only: true,
                hardlock: true,
            },
        };
        assert_eq!(wrote(&changed).await, Wrote::Durable);
        // Set again: now stored, so nothing changes.
        assert_eq!(wrote(&changed).await, Wrote::NothingDurable);
        let unknown = *create(stored).idk().unwrap();
        let missing = Mutation::SetOptions {
            idk: unknown,
            options: stored,
        };
        assert_eq!(wrote(&missing).await, Wrote::Refused);

        assert_eq!(
            keep_secret(&tx, None, 1).await.unwrap(),
            Wrote::NothingDurable
        );
        let remember = SecretWrite::Remember {
            idk,
            sin: "0".to_owned(),
            digest: SecretDigest::from_slice(&[7; 32]).unwrap(),
        };
        assert_eq!(
            keep_secret(&tx, Some(&remember), 1).await.unwrap(),
            Wrote::Durable
        );

        drop(tx);
        drop(client);
        drop(store);
        drop_schema(&schema).await;
    }

    /// The commit of a step that changed nothing durable does not wait for
    /// its flush; any other still does, as the server is configured.
    #[tokio::test]
    #[cfg_attr(
        no_postgres,
        ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
    )]
    async fn only_a_step_that_changed_nothing_durable_skips_the_flush() {
        let (store, schema) = store().await;
        let mut client = store.client().await.unwrap();
        let configured: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(configured, "off", "the test server commits synchronously");
        for (wrote, expected) in [
            (Wrote::NothingDurable, "off"),
            (Wrote::Durable, configured.as_str()),
        ] {
            let tx = client.transaction().await.unwrap();
            finish(&tx, wrote, None, None).await.unwrap();
            let setting: String = tx
                .query_one("SHOW synchronous_commit", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(setting, expected, "{wrote:?}");
            tx.commit().await.unwrap();
        }
        drop(client);
        drop(store);
        drop_schema(&schema).await;
    }

    #[test]
    fn a_step_is_durable_if_any_of_its_writes_is() {
        use Wrote::{Durable, NothingDurable, Refused};
        assert_eq!(NothingDurable.and(NothingDurable), NothingDurable);
        assert_eq!(NothingDurable.and(Durable), Durable);
        assert_eq!(Durable.and(NothingDurable), Durable);
        assert_eq!(Durable.and(Refused), Refused);
        assert_eq!(Refused.and(NothingDurable), Refused);
    }
}
