//! The store contract: every [`Store`] implementation runs the same
//! scenarios beneath HTTP, races included, so the SQLite and PostgreSQL
//! stores cannot come to disagree.
//!
//! Each scenario is an `async fn(Arc<dyn Store>)` in [`scenarios`]; the
//! `contract!` macro makes one test per scenario and backend. The PostgreSQL
//! tests use a fresh schema of the database named by `SQRL_TEST_POSTGRES`
//! (see `common/postgres.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::TestDatabase;
use sqrl_core::keys::{IdentityKey, RandomLockKey, ServerUnlockKey, VerifyUnlockKey};
use sqrl_core::rand_core::OsRng;
use sqrl_core::server::{
    AccountOptions, AccountRecord, Conversation, Lookups, Mutation, Nut, Records,
    ServerValueDigest, WaitingBrowser,
};
use sqrl_server::indexed_secret::{SecretDigest, SecretStep};
use sqrl_server::store::postgres::PostgresStore;
use sqrl_server::store::sqlite::SqliteStore;
use sqrl_server::store::{
    AttemptState, AttemptUpdate, Conflict, LinkOutcome, LoginMethod, NewAssociation, NewAttempt,
    NewSession, Step, StepOutcome, Store,
};
use sqrl_server::token::{Token, TokenHash};

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
                async fn $scenario() {
                    let Some(database) = super::TestDatabase::create().await else {
                        return;
                    };
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
    a_new_identity_logs_the_page_in,
    a_step_on_stale_records_writes_nothing,
    a_replacement_supersedes_and_is_enabled,
    a_disabled_identity_is_never_replaced,
    disabling_ends_the_sessions,
    a_mismatched_indexed_secret_writes_nothing,
    a_link_signs_in_only_its_own_browser,
    sessions_time_out_and_can_be_revoked,
    the_operator_associates_and_removes,
    pruning_removes_only_what_expired,
    racing_takes_get_a_nut_once,
    racing_creations_of_one_identity_make_one_account,
    racing_collections_make_one_session,
    racing_redemptions_make_one_session,
);

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

fn step(mutation: Mutation, attempt: AttemptUpdate) -> Step {
    Step {
        now: NOW,
        lookups: None,
        seen: Records::default(),
        mutation,
        next_nut: nut(),
        next: None,
        attempt,
        indexed_secret: None,
        revoke_sessions: false,
    }
}

fn create(idk: IdentityKey, suk: ServerUnlockKey, vuk: VerifyUnlockKey) -> Mutation {
    Mutation::Create {
        idk,
        suk,
        vuk,
        options: AccountOptions::default(),
    }
}

/// Associates a new identity through a committed step (as `ident` does).
async fn associated(store: &dyn Store) -> (IdentityKey, ServerUnlockKey, VerifyUnlockKey) {
    let (idk, suk, vuk) = identity();
    let mut step = step(create(idk, suk, vuk), AttemptUpdate::None);
    step.lookups = Some(Lookups { idk, pidk: None });
    assert_eq!(
        store.commit_step(step).await.unwrap(),
        StepOutcome::Committed
    );
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

async fn record(store: &dyn Store, idk: IdentityKey) -> Records {
    store.records(&Lookups { idk, pidk: None }).await.unwrap()
}

/// A confirmed attempt of a new identity, ready to collect.
async fn confirmed_attempt(store: &dyn Store) -> (String, IdentityKey) {
    let (attempt, _) = start_attempt(store).await;
    let (idk, suk, vuk) = identity();
    let outcome = store
        .commit_step(step(
            create(idk, suk, vuk),
            AttemptUpdate::LogIn {
                attempt: attempt.clone(),
                idk,
                answer: None,
                device_on_browser_network: true,
            },
        ))
        .await
        .unwrap();
    assert_eq!(outcome, StepOutcome::Committed);
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
    let outcome = store
        .commit_step(step(
            create(idk, suk, vuk),
            AttemptUpdate::ClientSession {
                attempt: Some(attempt.clone()),
                idk,
                token_hash: link.hash(),
                expires_at: NOW + 60,
                answer: None,
                device_on_browser_network,
            },
        ))
        .await
        .unwrap();
    assert_eq!(outcome, StepOutcome::Committed);
    (link, attempt, pag, idk)
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
        assert!(store.take_conversation(&rotated).await.unwrap().is_some());

        let scanned = step(
            Mutation::None,
            AttemptUpdate::Scanned {
                attempt: attempt.clone(),
            },
        );
        assert_eq!(
            store.commit_step(scanned).await.unwrap(),
            StepOutcome::Committed
        );
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Scanned
        );
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
        let rejected = step(
            Mutation::None,
            AttemptUpdate::Rejected {
                attempt: attempt.clone(),
            },
        );
        store.commit_step(rejected).await.unwrap();
        let state = store.attempt(&attempt).await.unwrap().unwrap().state;
        assert_eq!(state, AttemptState::Rejected);
        assert!(state.is_terminal());
        // A terminal attempt is not scanned again.
        let again = step(
            Mutation::None,
            AttemptUpdate::Scanned {
                attempt: attempt.clone(),
            },
        );
        store.commit_step(again).await.unwrap();
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Rejected
        );
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
        let taken = store.take_conversation(&first).await.unwrap().unwrap();
        // What was stored comes back whole, its expiry capped by the attempt's.
        assert_eq!(taken, conversation(Some(&attempt), NOW + 120));
        assert!(store.take_conversation(&first).await.unwrap().is_none());

        // A conversation outlives neither its attempt's expiry...
        let capped = nut();
        store
            .put_conversation(capped.clone(), conversation(Some(&attempt), NOW + 10_000))
            .await
            .unwrap();
        let back = store.take_conversation(&capped).await.unwrap().unwrap();
        assert_eq!(back.expires_at, NOW + 600);
        // ...nor the attempt: without it, the conversation has no browser.
        let orphan = nut();
        store
            .put_conversation(
                orphan.clone(),
                conversation(Some("no-such-attempt"), NOW + 60),
            )
            .await
            .unwrap();
        let back = store.take_conversation(&orphan).await.unwrap().unwrap();
        assert!(back.browser.is_none());
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

    pub async fn a_step_on_stale_records_writes_nothing(store: Arc<dyn Store>) {
        let (idk, _, _) = associated(&*store).await;
        let (attempt, _) = start_attempt(&*store).await;
        // A decision made before the association existed.
        let next = nut();
        let mut stale = step(
            Mutation::None,
            AttemptUpdate::LogIn {
                attempt: attempt.clone(),
                idk,
                answer: None,
                device_on_browser_network: true,
            },
        );
        stale.lookups = Some(Lookups { idk, pidk: None });
        stale.seen = Records::default();
        stale.next_nut = next.clone();
        stale.next = Some(conversation(Some(&attempt), NOW + 120));
        assert_eq!(
            store.commit_step(stale).await.unwrap(),
            StepOutcome::Conflict
        );
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Pending
        );
        assert!(store.take_conversation(&next).await.unwrap().is_none());
    }

    pub async fn a_replacement_supersedes_and_is_enabled(store: Arc<dyn Store>) {
        let (previous, _, _) = associated(&*store).await;
        let account = store.account_by_identity(&previous).await.unwrap().unwrap();
        let (idk, suk, vuk) = identity();
        let lookups = Lookups {
            idk,
            pidk: Some(previous),
        };
        let mut replace = step(
            Mutation::Replace {
                previous,
                idk,
                suk,
                vuk,
                options: AccountOptions {
                    sqrl_only: true,
                    hardlock: false,
                },
            },
            AttemptUpdate::None,
        );
        replace.seen = store.records(&lookups).await.unwrap();
        replace.lookups = Some(lookups);
        assert_eq!(
            store.commit_step(replace).await.unwrap(),
            StepOutcome::Committed
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
                options: AccountOptions {
                    sqrl_only: true,
                    hardlock: false
                },
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
        let disable = step(
            Mutation::Disable {
                idk: previous,
                options: AccountOptions::default(),
            },
            AttemptUpdate::None,
        );
        assert_eq!(
            store.commit_step(disable).await.unwrap(),
            StepOutcome::Committed
        );
        assert!(record(&*store, previous).await.current.unwrap().disabled);
        // Even a step that skips the record check (a driver bug, or a race
        // the check missed) must not turn a disabled identity into an
        // enabled one: only `enable` with the unlock key may do that.
        let (idk, suk, vuk) = identity();
        let replace = step(
            Mutation::Replace {
                previous,
                idk,
                suk,
                vuk,
                options: AccountOptions::default(),
            },
            AttemptUpdate::None,
        );
        assert_eq!(
            store.commit_step(replace).await.unwrap(),
            StepOutcome::Conflict
        );
        assert!(record(&*store, previous).await.current.unwrap().disabled);
        assert!(record(&*store, idk).await.current.is_none());
        assert!(!record(&*store, previous).await.current_superseded);
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
        let options = step(
            Mutation::SetOptions {
                idk,
                options: AccountOptions {
                    sqrl_only: true,
                    hardlock: true,
                },
            },
            AttemptUpdate::None,
        );
        store.commit_step(options).await.unwrap();
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_some()
        );
        let current = record(&*store, idk).await.current.unwrap();
        assert!(current.options.sqrl_only && current.options.hardlock);

        let mut disable = step(
            Mutation::Disable {
                idk,
                options: AccountOptions::default(),
            },
            AttemptUpdate::None,
        );
        disable.revoke_sessions = true;
        store.commit_step(disable).await.unwrap();
        assert!(
            store
                .session(token.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
        );
        let enable = step(
            Mutation::Enable {
                idk,
                options: AccountOptions::default(),
            },
            AttemptUpdate::None,
        );
        store.commit_step(enable).await.unwrap();
        assert!(!record(&*store, idk).await.current.unwrap().disabled);
    }

    pub async fn a_mismatched_indexed_secret_writes_nothing(store: Arc<dyn Store>) {
        let (idk, _, _) = associated(&*store).await;
        let first = SecretDigest::from_slice(&[1; 32]).unwrap();
        let other = SecretDigest::from_slice(&[2; 32]).unwrap();
        let remember = |digest: SecretDigest| SecretStep {
            sin: "7".to_owned(),
            holder: Some((idk, digest)),
            remember: true,
            successor: None,
        };
        let mut first_step = step(Mutation::None, AttemptUpdate::None);
        first_step.indexed_secret = Some(remember(first));
        assert_eq!(
            store.commit_step(first_step).await.unwrap(),
            StepOutcome::Committed
        );
        let account = store.account_by_identity(&idk).await.unwrap().unwrap();
        assert_eq!(
            account.identity.unwrap().indexed_secrets,
            vec!["7".to_owned()]
        );

        let (attempt, _) = start_attempt(&*store).await;
        let mut wrong = step(
            Mutation::Disable {
                idk,
                options: AccountOptions::default(),
            },
            AttemptUpdate::Rejected {
                attempt: attempt.clone(),
            },
        );
        wrong.indexed_secret = Some(remember(other));
        assert_eq!(
            store.commit_step(wrong).await.unwrap(),
            StepOutcome::IndexedSecretMismatch
        );
        assert!(!record(&*store, idk).await.current.unwrap().disabled);
        assert_eq!(
            store.attempt(&attempt).await.unwrap().unwrap().state,
            AttemptState::Pending
        );
        let mut right = step(Mutation::None, AttemptUpdate::None);
        right.indexed_secret = Some(remember(first));
        assert_eq!(
            store.commit_step(right).await.unwrap(),
            StepOutcome::Committed
        );
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
        assert!(!store.revoke_session(account, id).await.unwrap());
        assert!(
            store
                .session(second.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.revoke_session(other, id).await.unwrap());
        assert!(
            store
                .session(second.hash(), NOW, NOW)
                .await
                .unwrap()
                .is_none()
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
        store
            .commit_step(step(
                Mutation::None,
                AttemptUpdate::LogIn {
                    attempt: attempt.clone(),
                    idk,
                    answer: None,
                    device_on_browser_network: true,
                },
            ))
            .await
            .unwrap();
        let token = Token::generate(&mut OsRng);
        store
            .collect_attempt(&attempt, NOW, session(&token))
            .await
            .unwrap()
            .unwrap();
        assert!(store.remove_identity(&idk).await.unwrap());
        assert!(!store.remove_identity(&idk).await.unwrap());
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
        store
            .put_conversation(kept.clone(), conversation(None, NOW + 1000))
            .await
            .unwrap();
        let deleted = store.prune(NOW + 200).await.unwrap();
        // The attempt's first conversation (expiring at NOW + 120) went.
        assert_eq!(deleted, 1);
        assert!(store.attempt(&attempt).await.unwrap().is_some());
        store.prune(NOW + 600).await.unwrap();
        assert!(store.attempt(&attempt).await.unwrap().is_none());
        assert!(store.take_conversation(&kept).await.unwrap().is_some());
        store.health().await.unwrap();
    }

    pub async fn racing_takes_get_a_nut_once(store: Arc<dyn Store>) {
        let (attempt, _) = start_attempt(&*store).await;
        let first = Nut::parse(&attempt).unwrap();
        let takers: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                let nut = first.clone();
                tokio::spawn(async move { store.take_conversation(&nut).await.unwrap() })
            })
            .collect();
        let mut got = 0;
        for taker in takers {
            got += usize::from(taker.await.unwrap().is_some());
        }
        assert_eq!(got, 1);
    }

    pub async fn racing_creations_of_one_identity_make_one_account(store: Arc<dyn Store>) {
        let (idk, suk, vuk) = identity();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut create = step(create(idk, suk, vuk), AttemptUpdate::None);
                    create.lookups = Some(Lookups { idk, pidk: None });
                    store.commit_step(create).await.unwrap()
                })
            })
            .collect();
        let mut committed = 0;
        for racer in racers {
            match racer.await.unwrap() {
                StepOutcome::Committed => committed += 1,
                StepOutcome::Conflict => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(committed, 1);
        assert!(store.account_by_identity(&idk).await.unwrap().is_some());
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
}
