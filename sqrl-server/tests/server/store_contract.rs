//! The store contract: every [`Store`] implementation runs the same
//! scenarios beneath HTTP, races included, so the SQLite and PostgreSQL
//! stores cannot come to disagree.
//!
//! Each scenario is an `async fn(Arc<dyn Store>)` in [`scenarios`]; the
//! `contract!` macro makes one test per scenario and backend. The PostgreSQL
//! tests use a fresh schema of the database named by `SQRL_TEST_POSTGRES`
//! (see `common/postgres.rs`).
//!
//! A step's decision is the driver's (`sqrl_core` in the server); here it is
//! a closure that records what the store showed it and plans whatever the
//! scenario needs, including plans the core would never make, so that the
//! store's own guards are tested too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestDatabase;
use sqrl_core::keys::{IdentityKey, RandomLockKey, ServerUnlockKey, VerifyUnlockKey};
use sqrl_core::msg::{MessageError, ServerReply, Tif};
use sqrl_core::rand_core::OsRng;
use sqrl_core::server::{
    AccountOptions, AccountRecord, Conversation, Issued, Lookups, Mutation, Nut, Records,
    SecretDigest, SecretWrite, ServerValueDigest, WaitingBrowser,
};
use sqrl_server::notify::Notifier as _;
use sqrl_server::store::Sessions as _;
use sqrl_server::store::oidc::{ConnectedApp, NewCode, NewGrant, NewTokens, Rotation};
use sqrl_server::store::postgres::PostgresStore;
use sqrl_server::store::postgres::listen::PostgresNotifier;
use sqrl_server::store::sqlite::SqliteStore;
use sqrl_server::store::step::MAX_STEP_TRIES;
use sqrl_server::store::{
    AttemptState, AttemptUpdate, Conflict, ConversationSource, Decide, LinkOutcome, LoginMethod,
    NewAssociation, NewAttempt, NewSession, NextConversation, PlanError, StepError, StepInput,
    StepPlan, StepRequest, Stepped, Store,
};
use sqrl_server::token::{Token, TokenHash};
use sqrl_server::webhooks::{EventKind, EventRoutes, SessionEnd};

const NOW: u64 = 1_800_000_000;

macro_rules! contract {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteStore::open(&dir.path().join("sqrl.db"), 4).unwrap();
                    super::scenarios::$scenario(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(no_postgres, ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db")]
                async fn $scenario() {
                    let database = super::TestDatabase::create().await;
                    let store = super::PostgresStore::connect_with(database.config(), 8)
                        .await
                        .unwrap();
                    super::scenarios::$scenario(std::sync::Arc::new(store)).await;
                    database.drop().await;
                }
            )*
        }
    };
}

contract!(
    an_attempt_moves_forward_only,
    a_nut_is_taken_once,
    a_failed_step_writes_nothing_and_leaves_the_nut,
    a_new_identity_logs_the_page_in,
    a_plan_that_does_not_apply_is_decided_again,
    a_read_only_step_that_plans_a_write_still_writes,
    a_refused_write_is_decided_again,
    records_stay_as_decided_until_the_commit,
    a_replacement_supersedes_and_is_enabled,
    a_disabled_identity_is_never_replaced,
    disabling_ends_the_sessions,
    indexed_secrets_are_read_under_the_conversations_sin,
    a_link_signs_in_only_its_own_browser,
    sessions_time_out_and_can_be_revoked,
    the_operator_associates_and_removes,
    pruning_removes_only_what_expired,
    racing_steps_get_a_nut_once,
    racing_creations_of_one_identity_make_one_account,
    racing_collections_make_one_session,
    racing_redemptions_make_one_session,
    an_account_keeps_its_handle,
    connected_apps_say_whether_they_hold_tokens,
    disconnecting_an_app_revokes_every_grant_of_it_for_the_account_only,
);

/// The outbox contract: the same scenarios on stores that record login
/// events for two endpoints, [`ALL`] (every event) and [`LOGOUTS`] (only
/// `logout`).
macro_rules! outbox_contract {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite_outbox {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteStore::open(&dir.path().join("sqrl.db"), 4)
                        .unwrap()
                        .with_events(super::routes());
                    super::outbox::$scenario(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres_outbox {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(no_postgres, ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db")]
                async fn $scenario() {
                    let database = super::TestDatabase::create().await;
                    let store = super::PostgresStore::connect_with(database.config(), 8)
                        .await
                        .unwrap()
                        .with_events(super::routes());
                    super::outbox::$scenario(std::sync::Arc::new(store)).await;
                    database.drop().await;
                }
            )*
        }
    };
}

outbox_contract!(
    a_login_and_its_event_are_committed_together,
    a_change_rolled_back_leaves_no_event,
    session_ends_are_events,
    identity_changes_are_events_with_their_revoked_sessions,
    the_operators_removal_is_an_event,
    two_claimers_never_get_the_same_row,
    a_lease_that_runs_out_is_claimed_again,
    failures_are_retried_when_due_then_dead,
    delivered_rows_are_never_claimed_again,
);

const ALL: &str = "http://receiver.test/all";
const LOGOUTS: &str = "http://receiver.test/logouts";

fn routes() -> EventRoutes {
    EventRoutes::none()
        .with(ALL, None)
        .with(LOGOUTS, Some(vec![EventKind::Logout]))
}

// --- fixtures ----------------------------------------------------------------------

fn ip() -> IpAddr {
    "203.0.113.7".parse().unwrap()
}

/// A valid identity key with unlock keys.
fn identity() -> (IdentityKey, ServerUnlockKey, VerifyUnlockKey) {
    let iuk = sqrl_core::keys::IdentityUnlockKey::generate(&mut OsRng);
    let idk = iuk
        .master_key()
        .site_key(&sqrl_core::url::SiteKeyString::new("example.com"))
        .public_key();
    let (suk, vuk) = RandomLockKey::generate(&mut OsRng)
        .lock(&iuk.lock_key())
        .unwrap();
    (idk, suk, vuk)
}

fn nut() -> Nut {
    Nut::generate(&mut OsRng)
}

fn conversation(attempt: Option<&str>, expires_at: u64) -> Conversation {
    Conversation {
        expected_server: vec![ServerValueDigest::of("ver=1\r\nnut=x\r\n")],
        browser: attempt.map(|attempt| WaitingBrowser {
            ip: ip(),
            attempt: attempt.to_owned(),
        }),
        idk: None,
        sin: Some("0".to_owned()),
        asked: false,
        expires_at,
    }
}

/// A page's attempt; returns its id (its first nut) and secret.
async fn start_attempt(store: &dyn Store) -> (String, Token) {
    let first = nut();
    let pag = Token::generate(&mut OsRng);
    let id = first.as_str().to_owned();
    store
        .create_attempt(
            NewAttempt {
                id: id.clone(),
                pag_hash: pag.hash(),
                browser_ip: ip(),
                user_agent: "Test/1.0".to_owned(),
                created_at: NOW,
                expires_at: NOW + 600,
            },
            first,
            conversation(Some(&id), NOW + 120),
        )
        .await
        .unwrap();
    (id, pag)
}

/// A finished decision as the core hands it over: a reply under a fresh
/// nut, `next` as the next conversation, `mutation` and `secret_write` to
/// apply.
fn issued(
    mutation: Mutation,
    secret_write: Option<SecretWrite>,
    next: Option<Conversation>,
) -> Issued {
    let nut = nut();
    let qry = format!("/cli.sqrl?nut={}", nut.as_str());
    Issued {
        reply: ServerReply::builder(nut.as_str(), Tif::CURRENT_ID_MATCH, qry)
            .build()
            .unwrap(),
        nut,
        // No page behind it unless the scenario says so: kept in memory.
        conversation: next.unwrap_or_else(|| conversation(None, NOW + 120)),
        mutation,
        secret_write,
        command: None,
        failure: None,
        button: None,
    }
}

/// A plan to apply `mutation` and `attempt`, with no conversation to store.
fn plan(mutation: Mutation, attempt: AttemptUpdate) -> StepPlan {
    StepPlan {
        issued: issued(mutation, None, None),
        attempt,
        revoke_sessions: false,
    }
}

/// A plan that changes nothing.
fn nothing() -> StepPlan {
    plan(Mutation::None, AttemptUpdate::None)
}

fn create(idk: IdentityKey, suk: ServerUnlockKey, vuk: VerifyUnlockKey) -> Mutation {
    Mutation::Create {
        idk,
        suk,
        vuk,
        options: AccountOptions::default(),
    }
}

fn request(nut: Option<&Nut>, lookups: Option<Lookups>) -> StepRequest {
    StepRequest {
        now: NOW,
        conversation: match nut {
            Some(nut) => ConversationSource::Stored(nut.clone()),
            None => ConversationSource::None,
        },
        lookups,
        likely_read_only: false,
    }
}

/// A step the driver knows changes nothing durable (a `query`).
fn read_only(nut: Option<&Nut>, lookups: Option<Lookups>) -> StepRequest {
    StepRequest {
        likely_read_only: true,
        ..request(nut, lookups)
    }
}

fn lookup(idk: IdentityKey) -> Option<Lookups> {
    Some(Lookups { idk, pidk: None })
}

/// What a step's decision was shown, each time it was asked.
type Shown = Arc<Mutex<Vec<StepInput>>>;

/// A decision that records its input and plans with `planner`.
fn deciding(
    mut planner: impl FnMut(&StepInput) -> Result<StepPlan, PlanError> + Send + 'static,
) -> (Decide, Shown) {
    let shown = Shown::default();
    let record = Arc::clone(&shown);
    let decide: Decide = Box::new(move |input: StepInput| {
        let plan = planner(&input);
        record.lock().unwrap().push(input);
        plan
    });
    (decide, shown)
}

fn taken(shown: &Shown) -> Vec<StepInput> {
    shown.lock().unwrap().clone()
}

/// Runs a step that plans a copy of `plan` whatever it is shown, and
/// expects it to commit.
async fn commit(store: &dyn Store, lookups: Option<Lookups>, plan: StepPlan) -> Stepped {
    let (decide, _) = deciding(move |_| Ok(plan.clone()));
    store.step(request(None, lookups), decide).await.unwrap()
}

/// What a step for `nut` and `lookups` shows its decision (the conversation
/// is taken: the nut is used up). Writes nothing.
async fn inspect(store: &dyn Store, nut: Option<&Nut>, lookups: Option<Lookups>) -> StepInput {
    let (decide, shown) = deciding(|_| Ok(nothing()));
    let stepped = store.step(read_only(nut, lookups), decide).await.unwrap();
    assert_eq!(stepped.next, NextConversation::Unstored);
    let mut shown = taken(&shown);
    assert_eq!(shown.len(), 1, "decided once");
    shown.remove(0)
}

/// An `ident` of `idk` from `attempt`'s first nut, as the driver sends a
/// returning login (likely read-only), setting `options`; what its
/// decisions were shown.
async fn returning_login(
    store: &dyn Store,
    idk: IdentityKey,
    attempt: &str,
    options: AccountOptions,
) -> Vec<StepInput> {
    let first = Nut::parse(attempt).unwrap();
    let page = attempt.to_owned();
    let (decide, shown) = deciding(move |_| {
        Ok(plan(
            Mutation::SetOptions { idk, options },
            log_in(&page, idk),
        ))
    });
    store
        .step(read_only(Some(&first), lookup(idk)), decide)
        .await
        .unwrap();
    taken(&shown)
}

async fn record(store: &dyn Store, idk: IdentityKey) -> Records {
    inspect(store, None, lookup(idk)).await.records
}

/// Associates a new identity through a committed step (as `ident` does).
async fn associated(store: &dyn Store) -> (IdentityKey, ServerUnlockKey, VerifyUnlockKey) {
    let (idk, suk, vuk) = identity();
    commit(
        store,
        lookup(idk),
        plan(create(idk, suk, vuk), AttemptUpdate::None),
    )
    .await;
    (idk, suk, vuk)
}

fn session(token: &Token) -> NewSession {
    NewSession {
        token_hash: token.hash(),
        ip: ip(),
        user_agent: "Test/1.0".to_owned(),
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

fn log_in(attempt: &str, idk: IdentityKey) -> AttemptUpdate {
    AttemptUpdate::LogIn {
        attempt: attempt.to_owned(),
        idk,
        answer: None,
        device_on_browser_network: true,
    }
}

/// A confirmed attempt of a new identity, ready to collect.
async fn confirmed_attempt(store: &dyn Store) -> (String, IdentityKey) {
    let (attempt, _) = start_attempt(store).await;
    let (idk, suk, vuk) = identity();
    let stepped = commit(
        store,
        lookup(idk),
        plan(create(idk, suk, vuk), log_in(&attempt, idk)),
    )
    .await;
    assert_eq!(stepped.changed_attempt.as_deref(), Some(attempt.as_str()));
    (attempt, idk)
}

/// A same-device link for a new identity, tied to a page; returns the link's
/// token and the page's id and secret.
async fn client_session_link(
    store: &dyn Store,
    device_on_browser_network: bool,
) -> (Token, String, Token, IdentityKey) {
    let (attempt, pag) = start_attempt(store).await;
    let (idk, suk, vuk) = identity();
    let link = Token::generate(&mut OsRng);
    commit(
        store,
        lookup(idk),
        plan(
            create(idk, suk, vuk),
            AttemptUpdate::ClientSession {
                attempt: Some(attempt.clone()),
                idk,
                token_hash: link.hash(),
                expires_at: NOW + 60,
                answer: None,
                device_on_browser_network,
            },
        ),
    )
    .await;
    (link, attempt, pag, idk)
}

async fn state(store: &dyn Store, attempt: &str) -> AttemptState {
    store.attempt(attempt).await.unwrap().unwrap().state
}

/// The durability contract on PostgreSQL: logins in flight are in UNLOGGED
/// tables (emptied after a crash, never synced), everything else is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn postgres_keeps_only_logins_in_flight_unlogged() {
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect_with(database.config(), 2)
        .await
        .unwrap();
    let client = database.client().await;
    let rows = client
        .query(
            "SELECT c.relname, c.relpersistence::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname",
            &[&database.schema],
        )
        .await
        .unwrap();
    let unlogged: Vec<String> = rows
        .iter()
        .filter(|row| row.get::<_, String>(1) == "u")
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        unlogged,
        ["conversations", "login_attempts", "login_links"],
        "{:?}",
        rows.iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect::<Vec<_>>()
    );
    assert!(
        rows.len() > unlogged.len(),
        "the durable tables are there, logged"
    );
    drop(store);
    database.drop().await;
}

/// A step or a collection on one instance tells the other instances' pages
/// itself: its transaction publishes the page's change (delivered at its
/// commit), and the driver has only its own pages left to wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn postgres_steps_publish_page_changes_in_their_commit() {
    let database = TestDatabase::create().await;
    let here = PostgresStore::connect_with(database.config(), 2)
        .await
        .unwrap();
    let there = PostgresStore::connect_with(database.config(), 2)
        .await
        .unwrap();
    let listening = PostgresNotifier::start(&there);
    common::eventually(
        "the other instance listens",
        Duration::from_secs(15),
        || listening.status().is_listening(),
    )
    .await;
    let (attempt, _) = start_attempt(&here).await;
    let mut page_there = listening.subscribe(&attempt);

    let stepped = commit(&here, None, nothing()).await;
    assert_eq!(stepped.changed_attempt, None);
    assert!(!stepped.published, "no page changed, nothing published");

    let scanned = AttemptUpdate::Scanned {
        attempt: attempt.clone(),
    };
    let stepped = commit(&here, None, plan(Mutation::None, scanned)).await;
    assert_eq!(stepped.changed_attempt.as_deref(), Some(attempt.as_str()));
    assert!(stepped.published);
    // Nobody called the notifier: the commit's own notification arrives.
    let heard = tokio::time::timeout(Duration::from_secs(5), page_there.changed()).await;
    assert_eq!(heard.ok(), Some(true), "the other instance's page is told");

    // The confirmation, then the collection of the session: each commit
    // tells the other instance itself (notifications arrive in commit
    // order, each wait below is for the next one).
    let (idk, suk, vuk) = identity();
    let stepped = commit(
        &here,
        lookup(idk),
        plan(create(idk, suk, vuk), log_in(&attempt, idk)),
    )
    .await;
    assert!(stepped.published);
    let heard = tokio::time::timeout(Duration::from_secs(5), page_there.changed()).await;
    assert_eq!(heard.ok(), Some(true), "told of the confirmation");
    let token = Token::generate(&mut OsRng);
    let redeemed = here
        .collect_attempt(&attempt, NOW, session(&token))
        .await
        .unwrap()
        .expect("collected");
    assert!(redeemed.published);
    let heard = tokio::time::timeout(Duration::from_secs(5), page_there.changed()).await;
    assert_eq!(heard.ok(), Some(true), "told of the collection");
    drop(listening);
    drop((here, there));
    database.drop().await;
}

mod scenarios {
    use super::*;

    pub async fn an_attempt_moves_forward_only(store: Arc<dyn Store>) {
        let (attempt, pag) = start_attempt(&*store).await;
        let stored = store.attempt(&attempt).await.unwrap().unwrap();
        assert_eq!(stored.state, AttemptState::Pending);
        assert_eq!(stored.pag_hash, pag.hash());
        assert_eq!(stored.browser_ip, ip());
        assert_eq!(stored.user_agent, "Test/1.0");
        assert_eq!((stored.created_at, stored.expires_at), (NOW, NOW + 600));
        assert!(stored.confirmed_by.is_none());

        // A pending page may rotate its code.
        let rotated = nut();
        assert!(
            store
                .rotate_nut(
                    &attempt,
                    NOW,
                    rotated.clone(),
                    conversation(Some(&attempt), NOW + 120)
                )
                .await
                .unwrap()
        );
        assert!(
            inspect(&*store, Some(&rotated), None)
                .await
                .conversation
                .is_some()
        );

        let scanned = AttemptUpdate::Scanned {
            attempt: attempt.clone(),
        };
        commit(&*store, None, plan(Mutation::None, scanned.clone())).await;
        assert_eq!(state(&*store, &attempt).await, AttemptState::Scanned);
        // Once scanned, no new code, and no way back to pending.
        assert!(
            !store
                .rotate_nut(
                    &attempt,
                    NOW,
                    nut(),
                    conversation(Some(&attempt), NOW + 120)
                )
                .await
                .unwrap()
        );
        let rejected = AttemptUpdate::Rejected {
            attempt: attempt.clone(),
        };
        commit(&*store, None, plan(Mutation::None, rejected)).await;
        let now = state(&*store, &attempt).await;
        assert_eq!(now, AttemptState::Rejected);
        assert!(now.is_terminal());
        // A terminal attempt is not scanned again.
        commit(&*store, None, plan(Mutation::None, scanned)).await;
        assert_eq!(state(&*store, &attempt).await, AttemptState::Rejected);
        // An expired attempt does not rotate.
        let (late, _) = start_attempt(&*store).await;
        assert!(
            !store
                .rotate_nut(
                    &late,
                    NOW + 600,
                    nut(),
                    conversation(Some(&late), NOW + 700)
                )
                .await
                .unwrap()
        );
    }

    pub async fn a_nut_is_taken_once(store: Arc<dyn Store>) {
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        let input = inspect(&*store, Some(&first), None).await;
        // What was stored comes back whole, with the page's attempt.
        assert_eq!(
            input.conversation,
            Some(conversation(Some(&attempt), NOW + 120))
        );
        let page = input.attempt.unwrap();
        assert_eq!(
            (page.id.as_str(), page.browser_ip, page.user_agent.as_str()),
            (attempt.as_str(), ip(), "Test/1.0")
        );
        assert_eq!(page.created_at, NOW);
        let again = inspect(&*store, Some(&first), None).await;
        assert!(again.conversation.is_none());
        assert!(again.attempt.is_none());

        // The next conversation of a page is stored under the reply's nut...
        let mut next = plan(Mutation::None, AttemptUpdate::None);
        next.issued = issued(
            Mutation::None,
            None,
            Some(conversation(Some(&attempt), NOW + 10_000)),
        );
        let capped = next.issued.nut.clone();
        let stepped = commit(&*store, None, next).await;
        assert_eq!(stepped.next, NextConversation::Stored);
        assert_eq!(stepped.issued.nut, capped);
        // ...and outlives neither its attempt's expiry...
        let back = inspect(&*store, Some(&capped), None).await;
        assert_eq!(back.conversation.unwrap().expires_at, NOW + 600);
        // ...nor the attempt: without it, the conversation has no browser.
        let mut orphan = nothing();
        orphan.issued = issued(
            Mutation::None,
            None,
            Some(conversation(Some("no-such-attempt"), NOW + 60)),
        );
        let orphan_nut = orphan.issued.nut.clone();
        commit(&*store, None, orphan).await;
        let back = inspect(&*store, Some(&orphan_nut), None).await;
        assert!(back.conversation.unwrap().browser.is_none());
        assert!(back.attempt.is_none());

        // One with no page behind it is not stored: the driver keeps it.
        let unstored = commit(&*store, None, nothing()).await;
        assert_eq!(unstored.next, NextConversation::Unstored);
        assert!(
            inspect(&*store, Some(&unstored.issued.nut), None)
                .await
                .conversation
                .is_none()
        );
        // A conversation the driver took from its memory is shown as given,
        // and nothing is taken from the store.
        let (decide, shown) = deciding(|_| Ok(nothing()));
        let kept = conversation(None, NOW + 30);
        let request = StepRequest {
            now: NOW,
            conversation: ConversationSource::Taken(Box::new(kept.clone())),
            lookups: None,
            likely_read_only: true,
        };
        store.step(request, decide).await.unwrap();
        assert_eq!(taken(&shown)[0].conversation, Some(kept));
    }

    pub async fn a_failed_step_writes_nothing_and_leaves_the_nut(store: Arc<dyn Store>) {
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        let (idk, _, _) = identity();
        // A decision whose reply cannot be built.
        let (decide, shown) = deciding(|_| {
            Err(PlanError(MessageError::InvalidValue {
                name: "url",
                reason: "test",
            }))
        });
        let failed = store.step(request(Some(&first), lookup(idk)), decide).await;
        assert!(matches!(failed, Err(StepError::Plan(_))), "{failed:?}");
        assert_eq!(taken(&shown).len(), 1);
        // Nothing was written, and the client may send its request again.
        let input = inspect(&*store, Some(&first), lookup(idk)).await;
        assert!(input.conversation.is_some(), "the nut is still unused");
        assert!(input.records.current.is_none());
        assert_eq!(state(&*store, &attempt).await, AttemptState::Pending);
    }

    pub async fn a_new_identity_logs_the_page_in(store: Arc<dyn Store>) {
        let (attempt, idk) = confirmed_attempt(&*store).await;
        let stored = store.attempt(&attempt).await.unwrap().unwrap();
        assert_eq!(stored.state, AttemptState::Confirmed);
        let confirmation = stored.confirmed_by.unwrap();
        assert_eq!(confirmation.idk, idk);
        assert!(confirmation.device_on_browser_network);
        let records = record(&*store, idk).await;
        let current = records.current.unwrap();
        assert!(!current.disabled);

        let token = Token::generate(&mut OsRng);
        let redeemed = store
            .collect_attempt(&attempt, NOW + 1, session(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(redeemed.method, LoginMethod::CrossDevice);
        assert_eq!(redeemed.attempt.as_deref(), Some(attempt.as_str()));
        let account = store.account_by_identity(&idk).await.unwrap().unwrap();
        assert_eq!(redeemed.account_id, account.id);
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Collected
        );
        // Collected once.
        let again = Token::generate(&mut OsRng);
        assert!(
            store
                .collect_attempt(&attempt, NOW + 2, session(&again))
                .await
                .unwrap()
                .is_none()
        );
        let live = store
            .session(token.hash(), NOW + 2, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.account_id, account.id);
        let history = store.login_history(account.id, 10).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].method, LoginMethod::CrossDevice);
        assert_eq!(history[0].ip, ip().to_string());
    }

    pub async fn a_plan_that_does_not_apply_is_decided_again(store: Arc<dyn Store>) {
        let (idk, _, _) = associated(&*store).await;
        let account = store.account_by_identity(&idk).await.unwrap().unwrap().id;
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        // The first plan is made as if the identity were new (as a decision
        // on records that changed before its commit would be): it must not
        // apply, not even in part.
        let (_, suk, vuk) = identity();
        let mut stale = plan(create(idk, suk, vuk), log_in(&attempt, idk));
        stale.issued = issued(
            create(idk, suk, vuk),
            None,
            Some(conversation(Some(&attempt), NOW + 120)),
        );
        let stale_nut = stale.issued.nut.clone();
        let options = AccountOptions {
            sqrl_only: true,
            hardlock: false,
        };
        let mut fresh = plan(Mutation::SetOptions { idk, options }, log_in(&attempt, idk));
        fresh.issued = issued(
            Mutation::SetOptions { idk, options },
            None,
            Some(conversation(Some(&attempt), NOW + 120)),
        );
        let fresh_nut = fresh.issued.nut.clone();
        let mut calls = 0;
        let (decide, shown) = deciding(move |_| {
            calls += 1;
            Ok(if calls == 1 {
                stale.clone()
            } else {
                fresh.clone()
            })
        });
        let stepped = store
            .step(request(Some(&first), lookup(idk)), decide)
            .await
            .unwrap();
        let shown = taken(&shown);
        assert_eq!(shown.len(), 2, "decided again after the first try");
        for input in &shown {
            // The first try's take was undone with the rest of it.
            assert_eq!(
                input.conversation,
                Some(conversation(Some(&attempt), NOW + 120))
            );
            assert!(input.records.current.is_some());
        }
        assert_eq!(stepped.issued.nut, fresh_nut);
        assert_eq!(stepped.next, NextConversation::Stored);
        // Only the second plan's writes are there.
        let current = record(&*store, idk).await.current.unwrap();
        assert_eq!(current.options, options);
        assert_eq!(
            store.account_by_identity(&idk).await.unwrap().unwrap().id,
            account
        );
        assert!(
            store.account(account + 1).await.unwrap().is_none(),
            "the first plan's new account was undone"
        );
        assert!(
            inspect(&*store, Some(&stale_nut), None)
                .await
                .conversation
                .is_none()
        );
        assert!(
            inspect(&*store, Some(&fresh_nut), None)
                .await
                .conversation
                .is_some()
        );
        let confirmed = store.attempt(&attempt).await.unwrap().unwrap();
        assert_eq!(confirmed.state, AttemptState::Confirmed);
        assert_eq!(confirmed.confirmed_by.unwrap().idk, idk);
    }

    pub async fn a_refused_write_is_decided_again(store: Arc<dyn Store>) {
        // A link token another link already holds: the database refuses the
        // insert (its key is taken), the try is undone and decided again.
        let (taken_link, _, _, idk) = client_session_link(&*store, true).await;
        let (attempt, pag) = start_attempt(&*store).await;
        let fresh = Token::generate(&mut OsRng).hash();
        let page = attempt.clone();
        let mut calls = 0;
        let (decide, shown) = deciding(move |_| {
            calls += 1;
            let token_hash = if calls == 1 { taken_link.hash() } else { fresh };
            Ok(plan(
                Mutation::None,
                AttemptUpdate::ClientSession {
                    attempt: Some(page.clone()),
                    idk,
                    token_hash,
                    expires_at: NOW + 60,
                    answer: None,
                    device_on_browser_network: true,
                },
            ))
        });
        let stepped = store
            .step(request(None, lookup(idk)), decide)
            .await
            .unwrap();
        assert_eq!(taken(&shown).len(), 2);
        assert_eq!(stepped.changed_attempt.as_deref(), Some(attempt.as_str()));
        assert_eq!(state(&*store, &attempt).await, AttemptState::ClientSession);
        let token = Token::generate(&mut OsRng);
        assert!(matches!(
            store
                .redeem_link(
                    fresh,
                    NOW,
                    session(&token),
                    vec![(attempt, pag.hash())],
                    false
                )
                .await
                .unwrap(),
            LinkOutcome::Redeemed(_)
        ));
    }

    pub async fn a_read_only_step_that_plans_a_write_still_writes(store: Arc<dyn Store>) {
        // A driver's promise that a step changes nothing is a shortcut,
        // never a filter: a plan that writes is applied in full.
        let (idk, _, _) = associated(&*store).await;
        let (attempt, _) = start_attempt(&*store).await;
        let options = AccountOptions {
            sqrl_only: true,
            hardlock: false,
        };
        for input in returning_login(&*store, idk, &attempt, options).await {
            assert!(
                input.conversation.is_some(),
                "every decision saw the nut's conversation"
            );
        }
        assert_eq!(record(&*store, idk).await.current.unwrap().options, options);
        assert_eq!(state(&*store, &attempt).await, AttemptState::Confirmed);
    }

    pub async fn records_stay_as_decided_until_the_commit(store: Arc<dyn Store>) {
        // The operator removes the identity while a step decides on it: the
        // removal waits for the step's commit, so the records the decision
        // was shown still hold when its plan is applied.
        let (idk, _, _) = associated(&*store).await;
        let (attempt, _) = start_attempt(&*store).await;
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let remover = Arc::clone(&store);
        // Its own thread, so that it runs while the decision holds its
        // thread (SQLite's writer, or a runtime worker).
        let removal = std::thread::spawn(move || {
            wait.recv().unwrap();
            runtime
                .block_on(remover.remove_identity(&idk, NOW))
                .unwrap()
        });
        let mut first = true;
        let page = attempt.clone();
        let (decide, shown) = deciding(move |_| {
            if first {
                first = false;
                go.send(()).unwrap();
                // Time for the removal to reach the association's row.
                std::thread::sleep(Duration::from_millis(300));
            }
            let options = AccountOptions::default();
            Ok(plan(
                Mutation::SetOptions { idk, options },
                log_in(&page, idk),
            ))
        });
        store
            .step(request(None, lookup(idk)), decide)
            .await
            .unwrap();
        let shown = taken(&shown);
        assert_eq!(shown.len(), 1, "decided once: nothing changed under it");
        assert!(shown[0].records.current.is_some());
        assert_eq!(state(&*store, &attempt).await, AttemptState::Confirmed);
        let removed = tokio::task::spawn_blocking(move || removal.join().unwrap())
            .await
            .unwrap();
        assert!(removed, "the removal went ahead after the step");
        assert!(record(&*store, idk).await.current.is_none());
    }

    pub async fn a_replacement_supersedes_and_is_enabled(store: Arc<dyn Store>) {
        let (previous, previous_suk, _) = associated(&*store).await;
        let account = store.account_by_identity(&previous).await.unwrap().unwrap();
        let (idk, suk, vuk) = identity();
        let options = AccountOptions {
            sqrl_only: true,
            hardlock: false,
        };
        let replace = Mutation::Replace {
            previous,
            idk,
            suk,
            vuk,
            options,
        };
        let (decide, shown) = deciding(move |_| Ok(plan(replace.clone(), AttemptUpdate::None)));
        let lookups = Some(Lookups {
            idk,
            pidk: Some(previous),
        });
        store.step(request(None, lookups), decide).await.unwrap();
        // The decision was shown the previous identity's association.
        let shown = taken(&shown);
        assert!(shown[0].records.current.is_none());
        assert_eq!(
            shown[0].records.previous.as_ref().unwrap().suk,
            previous_suk
        );

        // SPEC 3.1, PITFALLS 25: the new identity holds the same account,
        // enabled, with its own unlock keys; the old one is superseded.
        let now = store.account_by_identity(&idk).await.unwrap().unwrap();
        assert_eq!(now.id, account.id);
        assert_eq!(now.superseded, vec![previous]);
        let current = record(&*store, idk).await.current.unwrap();
        assert_eq!(
            current,
            AccountRecord {
                suk,
                vuk,
                disabled: false,
                options,
            }
        );
        let old = record(&*store, previous).await;
        assert!(old.current.is_none());
        assert!(old.current_superseded);
        // A superseded identity cannot be associated again.
        let (_, suk, vuk) = identity();
        assert_eq!(
            store
                .associate(
                    None,
                    NewAssociation {
                        idk: previous,
                        suk,
                        vuk
                    },
                    NOW
                )
                .await
                .unwrap(),
            Err(Conflict::IdentitySuperseded)
        );
    }

    pub async fn a_disabled_identity_is_never_replaced(store: Arc<dyn Store>) {
        let (previous, _, _) = associated(&*store).await;
        let disable = Mutation::Disable {
            idk: previous,
            options: AccountOptions::default(),
        };
        commit(
            &*store,
            lookup(previous),
            plan(disable, AttemptUpdate::None),
        )
        .await;
        assert!(record(&*store, previous).await.current.unwrap().disabled);
        // A decision that replaces it anyway (the core answers TIF 0x08
        // instead): only `enable` with the unlock key may turn a disabled
        // identity into an enabled one. Every try is refused; the store gives
        // up with a transient error, and nothing changed.
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        let (idk, suk, vuk) = identity();
        let page = attempt.clone();
        let (decide, shown) = deciding(move |_| {
            let replace = Mutation::Replace {
                previous,
                idk,
                suk,
                vuk,
                options: AccountOptions::default(),
            };
            Ok(plan(replace, log_in(&page, idk)))
        });
        let lookups = Some(Lookups {
            idk,
            pidk: Some(previous),
        });
        match store.step(request(Some(&first), lookups), decide).await {
            Err(StepError::Store(error)) => assert!(error.is_transient(), "{error}"),
            other => panic!("expected a transient failure, got {other:?}"),
        }
        assert_eq!(taken(&shown).len(), MAX_STEP_TRIES);
        assert!(record(&*store, previous).await.current.unwrap().disabled);
        assert!(record(&*store, idk).await.current.is_none());
        assert!(!record(&*store, previous).await.current_superseded);
        assert_eq!(state(&*store, &attempt).await, AttemptState::Pending);
        assert!(
            inspect(&*store, Some(&first), None)
                .await
                .conversation
                .is_some(),
            "the nut is still unused"
        );
    }

    pub async fn disabling_ends_the_sessions(store: Arc<dyn Store>) {
        let (attempt, idk) = confirmed_attempt(&*store).await;
        let token = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        // Options change: sessions stay.
        let options = AccountOptions {
            sqrl_only: true,
            hardlock: true,
        };
        commit(
            &*store,
            lookup(idk),
            plan(Mutation::SetOptions { idk, options }, AttemptUpdate::None),
        )
        .await;
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_some()
        );
        let current = record(&*store, idk).await.current.unwrap();
        assert!(current.options.sqrl_only && current.options.hardlock);

        let mut disable = plan(
            Mutation::Disable {
                idk,
                options: AccountOptions::default(),
            },
            AttemptUpdate::None,
        );
        disable.revoke_sessions = true;
        commit(&*store, lookup(idk), disable).await;
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
        );
        let enable = Mutation::Enable {
            idk,
            options: AccountOptions::default(),
        };
        commit(&*store, lookup(idk), plan(enable, AttemptUpdate::None)).await;
        assert!(!record(&*store, idk).await.current.unwrap().disabled);
    }

    pub async fn indexed_secrets_are_read_under_the_conversations_sin(store: Arc<dyn Store>) {
        // What the decision is shown for `lookups` when its conversation
        // asked `sin`.
        async fn shown(store: &dyn Store, lookups: Option<Lookups>, sin: Option<&str>) -> Records {
            let mut asked = conversation(None, NOW + 60);
            asked.sin = sin.map(str::to_owned);
            let (decide, shown) = deciding(|_| Ok(nothing()));
            let request = StepRequest {
                now: NOW,
                conversation: ConversationSource::Taken(Box::new(asked)),
                lookups,
                likely_read_only: true,
            };
            store.step(request, decide).await.unwrap();
            taken(&shown).remove(0).records
        }
        let keep = |mutation: Mutation, write: SecretWrite| StepPlan {
            issued: issued(mutation, Some(write), None),
            attempt: AttemptUpdate::None,
            revoke_sessions: false,
        };
        let (idk, suk, vuk) = identity();
        let first = SecretDigest::from_slice(&[1; 32]).unwrap();
        let other = SecretDigest::from_slice(&[2; 32]).unwrap();
        // A new association keeps its secret.
        let establish = |idk, digest| SecretWrite::Establish {
            idk,
            sin: "0".to_owned(),
            digest,
        };
        commit(
            &*store,
            lookup(idk),
            keep(create(idk, suk, vuk), establish(idk, first)),
        )
        .await;
        // A stored conversation's sin ("0") selects the digest shown.
        let (attempt, _) = start_attempt(&*store).await;
        let page = Nut::parse(&attempt).unwrap();
        let records = inspect(&*store, Some(&page), lookup(idk)).await.records;
        assert_eq!(records.current_secret, Some(first));
        assert_eq!(
            shown(&*store, lookup(idk), Some("0")).await.current_secret,
            Some(first)
        );
        assert_eq!(
            shown(&*store, lookup(idk), Some("1")).await.current_secret,
            None
        );
        assert_eq!(shown(&*store, lookup(idk), None).await.current_secret, None);

        // The first secret stays: remembering another is no overwrite.
        let remember = |sin: &str, digest| SecretWrite::Remember {
            idk,
            sin: sin.to_owned(),
            digest,
        };
        let options = Mutation::SetOptions {
            idk,
            options: AccountOptions::default(),
        };
        commit(
            &*store,
            lookup(idk),
            keep(options.clone(), remember("0", other)),
        )
        .await;
        assert_eq!(
            shown(&*store, lookup(idk), Some("0")).await.current_secret,
            Some(first)
        );
        // Another sin's first secret is kept beside it.
        commit(&*store, lookup(idk), keep(options, remember("1", other))).await;
        assert_eq!(
            shown(&*store, lookup(idk), Some("1")).await.current_secret,
            Some(other)
        );
        let view = store.account_by_identity(&idk).await.unwrap().unwrap();
        assert_eq!(
            view.identity.unwrap().indexed_secrets,
            vec!["0".to_owned(), "1".to_owned()]
        );

        // A replacement is shown the previous identity's digest, and its
        // secret write leaves the account holding the new identity's only.
        let (new, suk, vuk) = identity();
        let lookups = Some(Lookups {
            idk: new,
            pidk: Some(idk),
        });
        let records = shown(&*store, lookups, Some("0")).await;
        assert_eq!(
            (records.current_secret, records.previous_secret),
            (None, Some(first))
        );
        let replace = Mutation::Replace {
            previous: idk,
            idk: new,
            suk,
            vuk,
            options: AccountOptions::default(),
        };
        commit(&*store, lookups, keep(replace, establish(new, other))).await;
        assert_eq!(
            shown(&*store, lookup(new), Some("0")).await.current_secret,
            Some(other)
        );
        assert_eq!(
            shown(&*store, lookup(new), Some("1")).await.current_secret,
            None
        );
        assert_eq!(
            shown(&*store, lookup(idk), Some("0")).await.current_secret,
            None
        );

        // Removing the association removes its secrets.
        commit(
            &*store,
            lookup(new),
            plan(Mutation::Remove { idk: new }, AttemptUpdate::None),
        )
        .await;
        let records = shown(&*store, lookup(new), Some("0")).await;
        assert_eq!((records.current, records.current_secret), (None, None));
    }

    pub async fn a_link_signs_in_only_its_own_browser(store: Arc<dyn Store>) {
        let (link, attempt, pag, idk) = client_session_link(&*store, false).await;
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::ClientSession
        );
        let token = Token::generate(&mut OsRng);
        // Another browser (it holds another page's secret): nothing spent.
        let stranger = vec![(attempt.clone(), Token::generate(&mut OsRng).hash())];
        assert_eq!(
            store
                .redeem_link(link.hash(), NOW, session(&token), stranger, true)
                .await
                .unwrap(),
            LinkOutcome::OtherBrowser
        );
        let mine = vec![(attempt.clone(), pag.hash())];
        // Confirmed from another network: the identity is shown first.
        assert_eq!(
            store
                .redeem_link(link.hash(), NOW, session(&token), mine.clone(), false)
                .await
                .unwrap(),
            LinkOutcome::Confirm { idk }
        );
        match store
            .redeem_link(link.hash(), NOW, session(&token), mine.clone(), true)
            .await
            .unwrap()
        {
            LinkOutcome::Redeemed(redeemed) => {
                assert_eq!(redeemed.method, LoginMethod::SameDevice);
                assert_eq!(redeemed.attempt.as_deref(), Some(attempt.as_str()));
            }
            other => panic!("expected a session, got {other:?}"),
        }
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Collected
        );
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_some()
        );
        // Single use.
        let again = Token::generate(&mut OsRng);
        assert_eq!(
            store
                .redeem_link(link.hash(), NOW, session(&again), mine, true)
                .await
                .unwrap(),
            LinkOutcome::Gone
        );
        // An expired link signs no one in.
        let (late, attempt, pag, _) = client_session_link(&*store, true).await;
        assert_eq!(
            store
                .redeem_link(
                    late.hash(),
                    NOW + 61,
                    session(&again),
                    vec![(attempt, pag.hash())],
                    true
                )
                .await
                .unwrap(),
            LinkOutcome::Gone
        );
        assert!(
            store
                .session(again.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn sessions_time_out_and_can_be_revoked(store: Arc<dyn Store>) {
        let (attempt, idk) = confirmed_attempt(&*store).await;
        let first = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&first))
            .await
            .unwrap()
            .unwrap();
        let account = store.account_by_identity(&idk).await.unwrap().unwrap().id;
        let live = store.sessions(account, NOW, NOW).await.unwrap();
        assert_eq!(live.len(), 1);
        // The count operators see follows the same rules as the list.
        assert_eq!(store.active_sessions(NOW, NOW).await.unwrap(), 1);
        assert_eq!(store.active_sessions(NOW, NOW + 1).await.unwrap(), 0);
        assert_eq!(store.active_sessions(NOW + 3600, 0).await.unwrap(), 0);
        // Used within the idle window: alive. Its use is recorded at most
        // once a minute, so a read is not a write on every request.
        let used = store
            .session(first.hash(), NOW + 30, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used.last_seen_at, NOW);
        store
            .session(first.hash(), NOW + 100, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.sessions(account, NOW + 100, NOW).await.unwrap()[0].last_seen_at,
            NOW + 100
        );
        // Not used since before the cutoff: not listed.
        assert!(
            store
                .sessions(account, NOW + 300, NOW + 150)
                .await
                .unwrap()
                .is_empty()
        );
        // Idle past the cutoff: ended for good.
        assert!(
            store
                .session(first.hash(), NOW + 300, NOW + 150)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .session(first.hash(), NOW + 300, 0)
                .await
                .unwrap()
                .is_none()
        );
        // Past its expiry: gone.
        assert!(
            store
                .sessions(account, NOW + 3600, 0)
                .await
                .unwrap()
                .is_empty()
        );

        // Revocation: only by the account that owns the session.
        let (attempt, other_idk) = confirmed_attempt(&*store).await;
        let second = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&second))
            .await
            .unwrap()
            .unwrap();
        let other = store
            .account_by_identity(&other_idk)
            .await
            .unwrap()
            .unwrap()
            .id;
        let id = store.sessions(other, NOW, NOW).await.unwrap()[0].id;
        assert!(
            !store
                .revoke_session(account, id, SessionEnd::Revoked, NOW)
                .await
                .unwrap()
        );
        assert!(
            store
                .session(second.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .revoke_session(other, id, SessionEnd::Revoked, NOW)
                .await
                .unwrap()
        );
        assert!(
            store
                .session(second.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn an_account_keeps_its_handle(store: Arc<dyn Store>) {
        let (idk, suk, vuk) = identity();
        let account = store
            .associate(None, NewAssociation { idk, suk, vuk }, NOW)
            .await
            .unwrap()
            .unwrap();
        let (other_idk, other_suk, other_vuk) = identity();
        let other = store
            .associate(
                None,
                NewAssociation {
                    idk: other_idk,
                    suk: other_suk,
                    vuk: other_vuk,
                },
                NOW,
            )
            .await
            .unwrap()
            .unwrap();
        // Minted on first use, then kept whatever is offered.
        let first = store.account_handle(account, "h-one").await.unwrap();
        assert_eq!(first.as_deref(), Some("h-one"));
        let again = store.account_handle(account, "h-two").await.unwrap();
        assert_eq!(again.as_deref(), Some("h-one"));
        // Each account its own.
        let second = store.account_handle(other, "h-three").await.unwrap();
        assert_eq!(second.as_deref(), Some("h-three"));
        // Two accounts cannot share one: the second keeps none of it.
        let (idk3, suk3, vuk3) = identity();
        let third = store
            .associate(
                None,
                NewAssociation {
                    idk: idk3,
                    suk: suk3,
                    vuk: vuk3,
                },
                NOW,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(store.account_handle(third, "h-one").await.is_err());
        assert_eq!(
            store
                .account_handle(third, "h-four")
                .await
                .unwrap()
                .as_deref(),
            Some("h-four")
        );
        // The identity goes and another comes: the account, and its handle, stay.
        assert!(store.remove_identity(&idk, NOW).await.unwrap());
        let (new_idk, new_suk, new_vuk) = identity();
        store
            .associate(
                Some(account),
                NewAssociation {
                    idk: new_idk,
                    suk: new_suk,
                    vuk: new_vuk,
                },
                NOW,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store
                .account_handle(account, "h-five")
                .await
                .unwrap()
                .as_deref(),
            Some("h-one")
        );
        assert_eq!(
            store.account_handle(account + 1000, "h-six").await.unwrap(),
            None
        );
    }

    pub async fn the_operator_associates_and_removes(store: Arc<dyn Store>) {
        let (idk, suk, vuk) = identity();
        let account = store
            .associate(None, NewAssociation { idk, suk, vuk }, NOW)
            .await
            .unwrap()
            .unwrap();
        let view = store.account(account).await.unwrap().unwrap();
        assert_eq!(view.identity.as_ref().unwrap().idk, idk);
        assert_eq!(
            store
                .associate(None, NewAssociation { idk, suk, vuk }, NOW)
                .await
                .unwrap(),
            Err(Conflict::IdentityTaken)
        );
        let (other, suk2, vuk2) = identity();
        assert_eq!(
            store
                .associate(
                    Some(account),
                    NewAssociation {
                        idk: other,
                        suk: suk2,
                        vuk: vuk2
                    },
                    NOW
                )
                .await
                .unwrap(),
            Err(Conflict::AccountHasIdentity)
        );
        assert_eq!(
            store
                .associate(
                    Some(account + 1000),
                    NewAssociation {
                        idk: other,
                        suk: suk2,
                        vuk: vuk2
                    },
                    NOW
                )
                .await
                .unwrap(),
            Err(Conflict::NoAccount)
        );

        // Removal ends the account's sessions and keeps the account.
        let (attempt, _) = start_attempt(&*store).await;
        commit(&*store, None, plan(Mutation::None, log_in(&attempt, idk))).await;
        let token = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        assert!(store.remove_identity(&idk, NOW).await.unwrap());
        assert!(!store.remove_identity(&idk, NOW).await.unwrap());
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
        );
        let view = store.account(account).await.unwrap().unwrap();
        assert!(view.identity.is_none());
        // The bare account takes a new identity.
        assert_eq!(
            store
                .associate(
                    Some(account),
                    NewAssociation {
                        idk: other,
                        suk: suk2,
                        vuk: vuk2
                    },
                    NOW
                )
                .await
                .unwrap(),
            Ok(account)
        );
    }

    pub async fn pruning_removes_only_what_expired(store: Arc<dyn Store>) {
        let (attempt, _) = start_attempt(&*store).await;
        let kept = nut();
        assert!(
            store
                .rotate_nut(
                    &attempt,
                    NOW,
                    kept.clone(),
                    conversation(Some(&attempt), NOW + 500)
                )
                .await
                .unwrap()
        );
        let deleted = store.prune(NOW + 200).await.unwrap();
        // The attempt's first conversation (expiring at NOW + 120) went.
        assert_eq!(deleted, 1);
        assert!(store.attempt(&attempt).await.unwrap().is_some());
        assert!(
            inspect(&*store, Some(&kept), None)
                .await
                .conversation
                .is_some()
        );
        store.prune(NOW + 600).await.unwrap();
        assert!(store.attempt(&attempt).await.unwrap().is_none());
        store.health().await.unwrap();
    }

    pub async fn racing_steps_get_a_nut_once(store: Arc<dyn Store>) {
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        let racers: Vec<_> = (0..16)
            .map(|racer| {
                let store = Arc::clone(&store);
                let nut = first.clone();
                let (decide, shown) = deciding(|_| Ok(nothing()));
                // Read-only steps and writing ones race for the same nut.
                let step = if racer % 2 == 0 {
                    read_only(Some(&nut), None)
                } else {
                    request(Some(&nut), None)
                };
                tokio::spawn(async move {
                    store.step(step, decide).await.unwrap();
                    taken(&shown)
                })
            })
            .collect();
        let mut got = 0;
        for racer in racers {
            let shown = racer.await.unwrap();
            assert_eq!(shown.len(), 1);
            got += usize::from(shown[0].conversation.is_some());
        }
        assert_eq!(got, 1);
    }

    pub async fn racing_creations_of_one_identity_make_one_account(store: Arc<dyn Store>) {
        let (idk, suk, vuk) = identity();
        let mut pages = Vec::new();
        for _ in 0..8 {
            pages.push(start_attempt(&*store).await.0);
        }
        let racers: Vec<_> = pages
            .iter()
            .map(|attempt| {
                let store = Arc::clone(&store);
                let first = Nut::parse(attempt).unwrap();
                let page = attempt.clone();
                // As the core decides: a new identity is created, a known
                // one logs in.
                let (decide, shown) = deciding(move |input| {
                    let mutation = match &input.records.current {
                        None => create(idk, suk, vuk),
                        Some(_) => Mutation::SetOptions {
                            idk,
                            options: AccountOptions::default(),
                        },
                    };
                    Ok(plan(mutation, log_in(&page, idk)))
                });
                tokio::spawn(async move {
                    // Every racer gets its reply, none an error.
                    store
                        .step(request(Some(&first), lookup(idk)), decide)
                        .await
                        .unwrap();
                    taken(&shown)
                })
            })
            .collect();
        let mut decisions = 0;
        let mut created = 0;
        for racer in racers {
            let shown = racer.await.unwrap();
            decisions += shown.len();
            created += shown
                .iter()
                .filter(|input| input.records.current.is_none())
                .count();
        }
        assert_eq!(created, 1, "one decision found the identity new");
        assert_eq!(
            decisions, 8,
            "each racer decided once, on records nobody changed before its commit"
        );
        let account = store.account_by_identity(&idk).await.unwrap().unwrap();
        for attempt in &pages {
            let confirmed = store.attempt(attempt).await.unwrap().unwrap();
            assert_eq!(confirmed.state, AttemptState::Confirmed);
            assert_eq!(confirmed.confirmed_by.unwrap().idk, idk);
        }
        let token = Token::generate(&mut OsRng);
        let redeemed = store
            .collect_attempt(&pages[7], NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(redeemed.account_id, account.id);
    }

    pub async fn racing_collections_make_one_session(store: Arc<dyn Store>) {
        let (attempt, idk) = confirmed_attempt(&*store).await;
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let attempt = attempt.clone();
                tokio::spawn(async move {
                    let token = Token::generate(&mut OsRng);
                    store
                        .collect_attempt(&attempt, NOW, session(&token))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut collected = 0;
        for racer in racers {
            collected += usize::from(racer.await.unwrap().is_some());
        }
        assert_eq!(collected, 1);
        let account = store.account_by_identity(&idk).await.unwrap().unwrap().id;
        assert_eq!(store.sessions(account, NOW, NOW).await.unwrap().len(), 1);
        assert_eq!(store.login_history(account, 10).await.unwrap().len(), 1);
    }

    pub async fn racing_redemptions_make_one_session(store: Arc<dyn Store>) {
        let (link, attempt, pag, idk) = client_session_link(&*store, true).await;
        let hash: TokenHash = link.hash();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let presented = vec![(attempt.clone(), pag.hash())];
                tokio::spawn(async move {
                    let token = Token::generate(&mut OsRng);
                    store
                        .redeem_link(hash, NOW, session(&token), presented, false)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut redeemed = 0;
        for racer in racers {
            match racer.await.unwrap() {
                LinkOutcome::Redeemed(_) => redeemed += 1,
                LinkOutcome::Gone => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(redeemed, 1);
        let account = store.account_by_identity(&idk).await.unwrap().unwrap().id;
        assert_eq!(store.sessions(account, NOW, NOW).await.unwrap().len(), 1);
    }

    /// A new account signed in: its id and its session's.
    async fn signed_in(store: &dyn Store) -> (i64, i64) {
        let (attempt, idk) = confirmed_attempt(store).await;
        let token = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        let account = store.account_by_identity(&idk).await.unwrap().unwrap().id;
        let sessions = store.sessions(account, NOW, NOW).await.unwrap();
        (account, sessions[0].id)
    }

    /// A grant of `client` in `session` with an access token (live for 600
    /// s) and a refresh token (3000 s): their hashes.
    async fn granted(
        store: &dyn Store,
        account: i64,
        session: i64,
        client: &str,
    ) -> (TokenHash, TokenHash) {
        let grant = NewGrant {
            client_id: client.to_owned(),
            account_id: account,
            session_id: session,
            scope: "openid".to_owned(),
            nonce: None,
            auth_time: NOW,
            amr: "sqrl".to_owned(),
            subject: format!("subject-of-{account}"),
            sid: format!("sid-of-{session}"),
            logout_uri: None,
        };
        let code = NewCode {
            code_hash: Token::generate(&mut OsRng).hash(),
            redirect_uri: "https://app.example/cb".to_owned(),
            code_challenge: None,
            expires_at: NOW + 60,
        };
        let grant = store.issue_code(grant, code, NOW).await.unwrap().unwrap();
        let access = Token::generate(&mut OsRng).hash();
        let refresh = Token::generate(&mut OsRng).hash();
        let tokens = NewTokens {
            access,
            access_expires_at: NOW + 600,
            refresh,
            refresh_expires_at: NOW + 3000,
        };
        assert!(store.issue_tokens(grant, tokens, NOW).await.unwrap());
        (access, refresh)
    }

    /// Fresh tokens, both expiring at `expires_at`.
    fn tokens_until(expires_at: u64) -> NewTokens {
        NewTokens {
            access: Token::generate(&mut OsRng).hash(),
            access_expires_at: expires_at,
            refresh: Token::generate(&mut OsRng).hash(),
            refresh_expires_at: expires_at,
        }
    }

    fn app(client: &str, scope: &str, allowed_at: u64, holds_tokens: bool) -> ConnectedApp {
        ConnectedApp {
            client_id: client.to_owned(),
            scope: scope.to_owned(),
            allowed_at,
            holds_tokens,
        }
    }

    pub async fn connected_apps_say_whether_they_hold_tokens(store: Arc<dyn Store>) {
        let (account, session) = signed_in(&*store).await;
        assert!(store.connected_apps(account, NOW).await.unwrap().is_empty());
        store
            .give_consent(account, "wiki", "openid sqrl", NOW)
            .await
            .unwrap();
        store
            .give_consent(account, "chat", "openid", NOW + 5)
            .await
            .unwrap();
        let (_, refresh) = granted(&*store, account, session, "wiki").await;
        // The latest allowed first; only the wiki holds tokens.
        assert_eq!(
            store.connected_apps(account, NOW + 10).await.unwrap(),
            [
                app("chat", "openid", NOW + 5, false),
                app("wiki", "openid sqrl", NOW, true),
            ]
        );
        // Its access token expired, its refresh token still live.
        assert!(store.connected_apps(account, NOW + 700).await.unwrap()[1].holds_tokens);
        // Both expired.
        assert!(!store.connected_apps(account, NOW + 3000).await.unwrap()[1].holds_tokens);
        // A spent refresh token is no token: once the ones it was spent
        // for expire, nothing is left, though it has not expired itself.
        let short = tokens_until(NOW + 800);
        let rotated = store
            .rotate_refresh(refresh, "wiki", short.clone(), NOW + 700)
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated(_)));
        assert!(store.connected_apps(account, NOW + 750).await.unwrap()[1].holds_tokens);
        assert!(!store.connected_apps(account, NOW + 1200).await.unwrap()[1].holds_tokens);
        // No token outlives its session (which expires at NOW + 3600).
        let rotated = store
            .rotate_refresh(short.refresh, "wiki", tokens_until(NOW + 9000), NOW + 750)
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated(_)));
        assert!(store.connected_apps(account, NOW + 3500).await.unwrap()[1].holds_tokens);
        assert!(!store.connected_apps(account, NOW + 3700).await.unwrap()[1].holds_tokens);
        // Allowed again: the new scope and time.
        store
            .give_consent(account, "wiki", "openid", NOW + 20)
            .await
            .unwrap();
        assert_eq!(
            store.connected_apps(account, NOW + 30).await.unwrap()[0],
            app("wiki", "openid", NOW + 20, true)
        );
        // The session ended: its tokens with it.
        store
            .revoke_session(account, session, SessionEnd::Revoked, NOW + 40)
            .await
            .unwrap();
        assert!(!store.connected_apps(account, NOW + 50).await.unwrap()[0].holds_tokens);
        // Another account has none of them.
        let (other, _) = signed_in(&*store).await;
        assert!(store.connected_apps(other, NOW).await.unwrap().is_empty());
    }

    pub async fn disconnecting_an_app_revokes_every_grant_of_it_for_the_account_only(
        store: Arc<dyn Store>,
    ) {
        let (account, session) = signed_in(&*store).await;
        let (other, other_session) = signed_in(&*store).await;
        for (who, client) in [(account, "wiki"), (account, "chat"), (other, "wiki")] {
            store
                .give_consent(who, client, "openid", NOW)
                .await
                .unwrap();
        }
        // Two authorizations of the wiki, each its own grant.
        let wiki = [
            granted(&*store, account, session, "wiki").await,
            granted(&*store, account, session, "wiki").await,
        ];
        let chat = granted(&*store, account, session, "chat").await;
        let others_wiki = granted(&*store, other, other_session, "wiki").await;

        assert!(!store.disconnect(account, "nobody").await.unwrap());
        assert!(store.disconnect(account, "wiki").await.unwrap());
        for (access, refresh) in wiki {
            assert!(store.token(access, NOW).await.unwrap().is_none());
            assert!(store.token(refresh, NOW).await.unwrap().is_none());
            let rotated = store
                .rotate_refresh(refresh, "wiki", tokens_until(NOW + 600), NOW)
                .await
                .unwrap();
            assert_eq!(rotated, Rotation::Unknown);
        }
        // Asked again next time.
        assert_eq!(store.consent(account, "wiki").await.unwrap(), None);
        // The account's other app, and the other account's wiki, untouched.
        assert!(store.token(chat.0, NOW).await.unwrap().is_some());
        assert!(store.consent(account, "chat").await.unwrap().is_some());
        assert!(store.token(others_wiki.0, NOW).await.unwrap().is_some());
        assert!(store.consent(other, "wiki").await.unwrap().is_some());
        assert_eq!(
            store.connected_apps(account, NOW).await.unwrap(),
            [app("chat", "openid", NOW, true)]
        );
        // Nothing left to disconnect.
        assert!(!store.disconnect(account, "wiki").await.unwrap());

        // A grant whose consent is already gone is still found and revoked.
        let (late, _) = granted(&*store, account, session, "wiki").await;
        assert!(store.disconnect(account, "wiki").await.unwrap());
        assert!(store.token(late, NOW).await.unwrap().is_none());
        // So is a consent without a grant.
        store
            .give_consent(account, "wiki", "openid", NOW)
            .await
            .unwrap();
        assert!(store.disconnect(account, "wiki").await.unwrap());
        assert_eq!(store.consent(account, "wiki").await.unwrap(), None);
    }
}

mod outbox {
    use super::*;
    use serde_json::Value;
    use sqrl_server::store::{Delivery, OutboxCounts};

    /// Far enough ahead that every retry is due, and every lease over.
    const LATER: u64 = NOW + 10 * 24 * 3600;

    /// Claims (and leases) everything due at `now` for `endpoint`.
    async fn claim(store: &dyn Store, endpoint: &str, now: u64) -> Vec<Delivery> {
        store
            .claim_deliveries(endpoint, now, now + 30, 100)
            .await
            .unwrap()
    }

    fn body(delivery: &Delivery) -> Value {
        let body: Value = serde_json::from_str(&delivery.body).unwrap();
        assert_eq!(body["id"], delivery.event_id.as_str());
        body
    }

    /// The types of the events claimed for `endpoint`, oldest first.
    async fn types(store: &dyn Store, endpoint: &str, now: u64) -> Vec<String> {
        claim(store, endpoint, now)
            .await
            .iter()
            .map(|delivery| body(delivery)["type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A logged-in browser: its token, account and session id.
    async fn logged_in(store: &dyn Store) -> (Token, IdentityKey, i64, i64) {
        let (attempt, idk) = confirmed_attempt(store).await;
        let token = Token::generate(&mut OsRng);
        let redeemed = store
            .collect_attempt(&attempt, NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        let account = redeemed.account_id;
        let id = store.sessions(account, NOW, NOW).await.unwrap()[0].id;
        (token, idk, account, id)
    }

    pub async fn a_login_and_its_event_are_committed_together(store: Arc<dyn Store>) {
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts::default()
        );
        let (_, _, account, session_id) = logged_in(&*store).await;
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        let login = body(&claimed[0]);
        assert_eq!(login["type"], "login");
        assert_eq!(login["account"], account.to_string());
        assert_eq!(login["data"]["session"], session_id);
        assert_eq!(login["data"]["method"], "cross-device");
        assert_eq!(login["data"]["ip"], "203.0.113.7");
        assert_eq!(login["data"]["user_agent"], "Test/1.0");
        assert_eq!(claimed[0].attempts, 1);
        // Filtered out for the endpoint that wants only logouts.
        assert!(claim(&*store, LOGOUTS, NOW).await.is_empty());

        // A same-device link: the same, with its method.
        let (link, attempt, pag, _) = client_session_link(&*store, true).await;
        let token = Token::generate(&mut OsRng);
        let outcome = store
            .redeem_link(
                link.hash(),
                NOW,
                session(&token),
                vec![(attempt, pag.hash())],
                false,
            )
            .await
            .unwrap();
        assert!(matches!(outcome, LinkOutcome::Redeemed(_)));
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 1);
        assert_eq!(body(&claimed[0])["data"]["method"], "same-device");
        // Collected twice: one session, one event.
        assert_eq!(store.outbox_counts().await.unwrap().pending, 2);
    }

    pub async fn a_change_rolled_back_leaves_no_event(store: Arc<dyn Store>) {
        // A disable of an identity nobody has never applies: the step gives
        // up, and neither the change nor an event is written.
        let (idk, _, _) = identity();
        let (decide, _) = deciding(move |_| {
            let mut disable = plan(
                Mutation::Disable {
                    idk,
                    options: AccountOptions::default(),
                },
                AttemptUpdate::None,
            );
            disable.revoke_sessions = true;
            Ok(disable)
        });
        assert!(
            store
                .step(request(None, lookup(idk)), decide)
                .await
                .is_err()
        );
        // An attempt that was never confirmed makes no session, and no event.
        let (attempt, _) = start_attempt(&*store).await;
        let token = Token::generate(&mut OsRng);
        assert!(
            store
                .collect_attempt(&attempt, NOW, session(&token))
                .await
                .unwrap()
                .is_none()
        );
        // Revoking a session that is not the account's ends nothing.
        let (_, _, account, session_id) = logged_in(&*store).await;
        claim(&*store, ALL, NOW).await;
        assert!(
            !store
                .revoke_session(account + 1, session_id, SessionEnd::Revoked, NOW)
                .await
                .unwrap()
        );
        assert_eq!(
            store.outbox_counts().await.unwrap().pending,
            1,
            "the login only"
        );
        assert_eq!(
            claim(&*store, ALL, LATER).await.len(),
            1,
            "the login, again"
        );
    }

    pub async fn session_ends_are_events(store: Arc<dyn Store>) {
        let (_, _, account, first) = logged_in(&*store).await;
        claim(&*store, ALL, NOW).await;
        assert!(
            store
                .revoke_session(account, first, SessionEnd::Logout, NOW)
                .await
                .unwrap()
        );
        for endpoint in [ALL, LOGOUTS] {
            let claimed = claim(&*store, endpoint, NOW).await;
            assert_eq!(claimed.len(), 1, "{endpoint}");
            let logout = body(&claimed[0]);
            assert_eq!(logout["type"], "logout");
            assert_eq!(logout["data"]["session"], first);
            assert_eq!(logout["account"], account.to_string());
        }
        let (_, _, other, second) = logged_in(&*store).await;
        claim(&*store, ALL, NOW).await;
        assert!(
            store
                .revoke_session(other, second, SessionEnd::Revoked, NOW)
                .await
                .unwrap()
        );
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 1);
        let revoked = body(&claimed[0]);
        assert_eq!(revoked["type"], "session.revoked");
        assert_eq!(revoked["data"]["reason"], "user");
        assert!(claim(&*store, LOGOUTS, NOW).await.is_empty());
    }

    pub async fn identity_changes_are_events_with_their_revoked_sessions(store: Arc<dyn Store>) {
        let (_, idk, account, session_id) = logged_in(&*store).await;
        claim(&*store, ALL, NOW).await;
        let options = AccountOptions::default();

        let mut disable = plan(Mutation::Disable { idk, options }, AttemptUpdate::None);
        disable.revoke_sessions = true;
        commit(&*store, lookup(idk), disable).await;
        let claimed = claim(&*store, ALL, NOW).await;
        let events: Vec<Value> = claimed.iter().map(body).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["type"], "identity.disabled");
        assert_eq!(events[0]["account"], account.to_string());
        assert_eq!(events[1]["type"], "session.revoked");
        assert_eq!(events[1]["data"]["session"], session_id);
        assert_eq!(events[1]["data"]["reason"], "identity-disabled");

        commit(
            &*store,
            lookup(idk),
            plan(Mutation::Enable { idk, options }, AttemptUpdate::None),
        )
        .await;
        assert_eq!(types(&*store, ALL, NOW).await, ["identity.enabled"]);

        // Options only: no event.
        commit(
            &*store,
            lookup(idk),
            plan(Mutation::SetOptions { idk, options }, AttemptUpdate::None),
        )
        .await;
        assert!(types(&*store, ALL, NOW).await.is_empty());

        let (new_idk, suk, vuk) = identity();
        let mut replace = plan(
            Mutation::Replace {
                previous: idk,
                idk: new_idk,
                suk,
                vuk,
                options,
            },
            AttemptUpdate::None,
        );
        replace.revoke_sessions = true;
        commit(
            &*store,
            Some(Lookups {
                idk: new_idk,
                pidk: Some(idk),
            }),
            replace,
        )
        .await;
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 1, "no session left to revoke");
        let replaced = body(&claimed[0]);
        assert_eq!(replaced["type"], "identity.replaced");
        assert_eq!(replaced["account"], account.to_string());

        commit(
            &*store,
            lookup(new_idk),
            plan(Mutation::Remove { idk: new_idk }, AttemptUpdate::None),
        )
        .await;
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 1);
        let removed = body(&claimed[0]);
        assert_eq!(removed["type"], "identity.removed");
        assert_eq!(removed["data"]["by"], "user");
        assert_eq!(removed["account"], account.to_string());
        assert!(claim(&*store, LOGOUTS, NOW).await.is_empty());
    }

    pub async fn the_operators_removal_is_an_event(store: Arc<dyn Store>) {
        let (_, idk, account, session_id) = logged_in(&*store).await;
        claim(&*store, ALL, NOW).await;
        assert!(store.remove_identity(&idk, NOW).await.unwrap());
        let events: Vec<Value> = claim(&*store, ALL, NOW).await.iter().map(body).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["type"], "session.revoked");
        assert_eq!(events[0]["data"]["session"], session_id);
        assert_eq!(events[0]["data"]["reason"], "identity-removed");
        assert_eq!(events[1]["type"], "identity.removed");
        assert_eq!(events[1]["data"]["by"], "operator");
        assert_eq!(events[1]["account"], account.to_string());
        // Nothing to remove: nothing recorded.
        assert!(!store.remove_identity(&idk, NOW).await.unwrap());
        assert_eq!(
            store.outbox_counts().await.unwrap().pending,
            3,
            "the login and the two"
        );
    }

    pub async fn two_claimers_never_get_the_same_row(store: Arc<dyn Store>) {
        for _ in 0..12 {
            logged_in(&*store).await;
        }
        let claimers = (0..4).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_deliveries(ALL, NOW, NOW + 30, 2).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|delivery| delivery.row));
                }
            })
        });
        let mut rows: Vec<i64> = futures_util::future::join_all(claimers)
            .await
            .into_iter()
            .flat_map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 12, "every row claimed: {rows:?}");
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 12, "no row claimed twice");
    }

    pub async fn a_lease_that_runs_out_is_claimed_again(store: Arc<dyn Store>) {
        logged_in(&*store).await;
        let first = store
            .claim_deliveries(ALL, NOW, NOW + 30, 10)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        // Under its lease, nobody else gets it.
        assert!(claim(&*store, ALL, NOW + 29).await.is_empty());
        // The claimer died: once the lease is over it is claimed again, the
        // same event (same id), one more attempt counted.
        let again = claim(&*store, ALL, NOW + 30).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].row, first[0].row);
        assert_eq!(again[0].event_id, first[0].event_id);
        assert_eq!(again[0].body, first[0].body);
        assert_eq!(again[0].attempts, 2);
    }

    pub async fn failures_are_retried_when_due_then_dead(store: Arc<dyn Store>) {
        logged_in(&*store).await;
        let claimed = claim(&*store, ALL, NOW).await;
        let row = claimed[0].row;
        store
            .mark_failed(row, Some(NOW + 60), "HTTP 500".to_owned())
            .await
            .unwrap();
        // Not before it is due, although its lease is over.
        assert!(claim(&*store, ALL, NOW + 59).await.is_empty());
        let retried = claim(&*store, ALL, NOW + 60).await;
        assert_eq!(retried.len(), 1);
        assert_eq!((retried[0].row, retried[0].attempts), (row, 2));
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                pending: 1,
                dead: 0
            }
        );
        // Given up: dead, never claimed again, counted.
        store
            .mark_failed(row, None, "HTTP 500".to_owned())
            .await
            .unwrap();
        assert!(claim(&*store, ALL, LATER).await.is_empty());
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts {
                pending: 0,
                dead: 1
            }
        );
    }

    pub async fn delivered_rows_are_never_claimed_again(store: Arc<dyn Store>) {
        logged_in(&*store).await;
        logged_in(&*store).await;
        let claimed = claim(&*store, ALL, NOW).await;
        assert_eq!(claimed.len(), 2);
        store.mark_delivered(claimed[0].row, NOW).await.unwrap();
        // A late failure report (another claimer's, after a lease ran out)
        // does not undo the delivery.
        store
            .mark_failed(claimed[0].row, Some(NOW + 1), "timeout".to_owned())
            .await
            .unwrap();
        let later = claim(&*store, ALL, LATER).await;
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].row, claimed[1].row);
        assert_eq!(store.outbox_counts().await.unwrap().pending, 1);
        store.mark_delivered(claimed[1].row, NOW).await.unwrap();
        assert_eq!(
            store.outbox_counts().await.unwrap(),
            OutboxCounts::default()
        );
    }
}

/// What the SQLite store does for speed, beneath the contract.
mod sqlite_costs {
    use sqrl_server::store::Attempts as _;

    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("sqrl.db"), 4).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_step_makes_no_trip_to_the_writer() {
        let (_dir, store) = open();
        let (idk, _, _) = associated(&store).await;
        let (attempt, _) = start_attempt(&store).await;
        let first = Nut::parse(&attempt).unwrap();
        let before = store.batch_stats().jobs;
        let page = attempt.clone();
        let (decide, shown) = deciding(move |_| {
            Ok(plan(
                Mutation::None,
                AttemptUpdate::Scanned {
                    attempt: page.clone(),
                },
            ))
        });
        store
            .step(read_only(Some(&first), lookup(idk)), decide)
            .await
            .unwrap();
        let shown = taken(&shown);
        assert_eq!(shown.len(), 1);
        assert!(shown[0].conversation.is_some());
        assert!(shown[0].records.current.is_some(), "read on a reader");
        assert_eq!(store.batch_stats().jobs, before, "no writer job");
        assert_eq!(state(&store, &attempt).await, AttemptState::Scanned);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_returning_login_makes_no_trip_to_the_writer() {
        let (_dir, store) = open();
        let (idk, _, _) = associated(&store).await;
        let (attempt, _) = start_attempt(&store).await;
        let before = store.batch_stats().jobs;
        // The options the identity already has: nothing durable changes.
        let shown = returning_login(&store, idk, &attempt, AccountOptions::default()).await;
        assert_eq!(shown.len(), 1);
        assert_eq!(store.batch_stats().jobs, before, "no writer job");
        let confirmed = store.attempt(&attempt).await.unwrap().unwrap();
        assert_eq!(confirmed.state, AttemptState::Confirmed);
        assert_eq!(confirmed.confirmed_by.unwrap().idk, idk);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setting_the_options_already_stored_writes_nothing() {
        let (dir, store) = open();
        let (idk, _, _) = associated(&store).await;
        // Changes to the file committed by any other connection move this
        // connection's data_version.
        let probe = rusqlite::Connection::open(dir.path().join("sqrl.db")).unwrap();
        let version = || -> i64 {
            probe
                .query_row("PRAGMA data_version", [], |row| row.get(0))
                .unwrap()
        };
        let before = version();
        // A minute later: a row rewritten with a new `updated_at` would be a
        // change (SQLite skips rewriting a row to identical bytes).
        let later = StepRequest {
            now: NOW + 60,
            ..request(None, lookup(idk))
        };
        let stored = AccountOptions::default();
        let set_stored = plan(
            Mutation::SetOptions {
                idk,
                options: stored,
            },
            AttemptUpdate::None,
        );
        let (decide, _) = deciding(move |_| Ok(set_stored.clone()));
        store.step(later, decide).await.unwrap();
        assert_eq!(version(), before, "nothing committed");
        let changed = AccountOptions {
            sqrl_only: false,
            hardlock: true,
        };
        commit(
            &store,
            lookup(idk),
            plan(
                Mutation::SetOptions {
                    idk,
                    options: changed,
                },
                AttemptUpdate::None,
            ),
        )
        .await;
        assert_ne!(version(), before, "a change is written");
        assert_eq!(record(&store, idk).await.current.unwrap().options, changed);
    }
}
