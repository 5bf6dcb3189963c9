//! Logins in flight on a SQLite instance: attempts, conversations and
//! single-use links, kept in this process's memory.
//!
//! The durability contract (the server's README, "What a crash may lose")
//! lets a pending login be lost and scanned again, so these never touch the
//! database: a page load, `/nut.sqrl` and `/pag.sqrl` cost a hash-map
//! operation under a lock held for microseconds, with no trip to the writer
//! thread and no SQLite statement. A SQLite file has one server in front of
//! it, so one process's memory is the whole truth (PostgreSQL, shared by
//! many instances, keeps the same state in `UNLOGGED` tables instead).
//!
//! Ordering with the durable state: every change here that depends on a
//! durable write (a login confirmed for an account, a link spent for a
//! session, a conversation taken by a step) is made by the writer thread,
//! inside the job that made the write and after its SQL succeeded, so jobs
//! see each other's changes in the order they run, exactly as with tables.
//! A batch whose `COMMIT` fails is treated like a crash: everything here is
//! forgotten ([`InFlightMemory::forget_all`]), so no login can go on from a
//! state whose durable half was not kept.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use sqrl_core::server::{Conversation, Nut};

use super::super::rows::tied_to_attempt;
use super::super::{
    AskAnswer, Attempt, AttemptState, Confirmation, InFlight, LoginMethod, NewAttempt,
};
use super::sharded::ShardedMap;
use crate::token::TokenHash;

/// The in-flight state, behind one lock.
#[derive(Debug)]
pub(super) struct InFlightMemory {
    tables: Mutex<Tables>,
    /// Most attempts kept at once: memory is bounded whatever the load.
    max_attempts: AtomicUsize,
}

impl Default for InFlightMemory {
    fn default() -> Self {
        Self {
            tables: Mutex::default(),
            max_attempts: AtomicUsize::new(usize::MAX),
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    attempts: ShardedMap<String, AttemptEntry>,
    /// By nut.
    conversations: ShardedMap<String, Conversation>,
    /// By the SHA-256 of the link's token.
    links: ShardedMap<[u8; 32], LinkEntry>,
}

/// A waiting browser (SPEC 8.1).
#[derive(Debug, Clone)]
struct AttemptEntry {
    pag_hash: TokenHash,
    browser_ip: IpAddr,
    user_agent: String,
    state: AttemptState,
    /// The account a confirmation signs in.
    account_id: Option<i64>,
    confirmed_by: Option<Confirmation>,
    answer: Option<AskAnswer>,
    created_at: u64,
    expires_at: u64,
}

/// A single-use link that becomes a session.
#[derive(Debug, Clone)]
pub(super) struct LinkEntry {
    /// The account it signs in.
    pub account_id: i64,
    /// The page it is bound to: only the holder of that page's secret may
    /// redeem it, even once the page moved on.
    pub attempt_id: Option<String>,
    /// How the session it becomes was signed in.
    pub method: LoginMethod,
    /// When it stops working.
    pub expires_at: u64,
    /// Whether the confirming device was on the browser's network.
    pub device_on_browser_network: bool,
    /// The answer to the `ask`, if one was asked.
    pub answer: Option<AskAnswer>,
}

/// What a link is checked against before it is spent.
#[derive(Debug, Clone)]
pub(super) struct LinkCheck {
    /// The account it signs in.
    pub account_id: i64,
    /// Its page's id and secret hash, while that page exists.
    pub page: Option<(String, TokenHash)>,
    /// Whether the confirming device was on the browser's network.
    pub device_on_browser_network: bool,
}

/// A step's change to the waiting page, resolved against the durable state
/// (the account a confirmation signs in is known).
#[derive(Debug, Clone)]
pub(super) enum PageChange {
    /// `pending` → `scanned`.
    Scanned { attempt: String },
    /// `pending`/`scanned` → `confirmed` for `account_id`.
    Confirmed {
        attempt: String,
        account_id: i64,
        confirmation: Confirmation,
        answer: Option<AskAnswer>,
    },
    /// The client takes the login to a browser itself (CPS): a link, and
    /// the page (if any) is done.
    ClientSession {
        attempt: Option<String>,
        token_hash: TokenHash,
        link: LinkEntry,
    },
    /// `pending`/`scanned` → `rejected`.
    Rejected { attempt: String },
}

impl InFlightMemory {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Every change below is a single map operation, complete before the
        // lock is released: a panic elsewhere cannot leave them half-made.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps at most `max` attempts from now on (those already kept stay).
    pub fn limit_attempts(&self, max: usize) {
        self.max_attempts.store(max, Ordering::Relaxed);
    }

    /// Stores a new attempt and the conversation of its first nut; `false`
    /// (nothing stored) when as many attempts are kept as allowed. Expired
    /// ones count until the store's next prune: dropping them here would
    /// cost a pass over every attempt on each refused page load.
    #[must_use]
    pub fn create_attempt(
        &self,
        attempt: NewAttempt,
        nut: &Nut,
        conversation: &Conversation,
    ) -> bool {
        let mut tables = self.tables();
        if tables.attempts.len() >= self.max_attempts.load(Ordering::Relaxed) {
            return false;
        }
        tables.attempts.insert(
            attempt.id,
            AttemptEntry {
                pag_hash: attempt.pag_hash,
                browser_ip: attempt.browser_ip,
                user_agent: attempt.user_agent,
                state: AttemptState::Pending,
                account_id: None,
                confirmed_by: None,
                answer: None,
                created_at: attempt.created_at,
                expires_at: attempt.expires_at,
            },
        );
        tables.insert_conversation(nut, conversation);
        true
    }

    /// Adds a nut to a still-pending, unexpired attempt; `false` otherwise.
    pub fn rotate_nut(
        &self,
        attempt: &str,
        now: u64,
        nut: &Nut,
        conversation: &Conversation,
    ) -> bool {
        let mut tables = self.tables();
        let pending = tables
            .attempts
            .get(attempt)
            .is_some_and(|a| a.state == AttemptState::Pending && a.expires_at > now);
        if pending {
            tables.insert_conversation(nut, conversation);
        }
        pending
    }

    /// An attempt as the page sees it.
    pub fn attempt(&self, id: &str) -> Option<Attempt> {
        self.tables().attempts.get(id).map(|entry| Attempt {
            id: id.to_owned(),
            pag_hash: entry.pag_hash,
            browser_ip: entry.browser_ip,
            user_agent: entry.user_agent.clone(),
            state: entry.state,
            confirmed_by: entry.confirmed_by.clone(),
            created_at: entry.created_at,
            expires_at: entry.expires_at,
        })
    }

    /// Takes the conversation under `nut`: a nut is used once.
    pub fn take_conversation(&self, nut: &Nut) -> Option<Conversation> {
        self.tables().conversations.remove(nut.as_str())
    }

    /// Puts back a conversation taken by a step that committed nothing, so
    /// that the nut is still unused.
    pub fn put_back_conversation(&self, nut: &Nut, conversation: Conversation) {
        self.tables()
            .conversations
            .insert(nut.as_str().to_owned(), conversation);
    }

    /// Stores the next conversation of a step (tied to its attempt while
    /// that exists).
    pub fn insert_conversation(&self, nut: &Nut, conversation: &Conversation) {
        self.tables().insert_conversation(nut, conversation);
    }

    /// Applies a step's change to the waiting page. A page that has moved
    /// on (another device confirmed first, or it expired) is left as it is.
    pub fn change_page(&self, change: PageChange, now: u64) {
        let mut tables = self.tables();
        let open = |entry: &AttemptEntry| entry.state.is_open() && entry.expires_at > now;
        match change {
            PageChange::Scanned { attempt } => {
                if let Some(entry) = tables.attempts.get_mut(&attempt)
                    && entry.state == AttemptState::Pending
                    && entry.expires_at > now
                {
                    entry.state = AttemptState::Scanned;
                }
            }
            PageChange::Confirmed {
                attempt,
                account_id,
                confirmation,
                answer,
            } => {
                if let Some(entry) = tables.attempts.get_mut(&attempt)
                    && open(entry)
                {
                    entry.state = AttemptState::Confirmed;
                    entry.account_id = Some(account_id);
                    entry.confirmed_by = Some(confirmation);
                    entry.answer = answer;
                }
            }
            PageChange::ClientSession {
                attempt,
                token_hash,
                link,
            } => {
                if let Some(entry) = attempt.and_then(|id| tables.attempts.get_mut(&id))
                    && open(entry)
                {
                    entry.state = AttemptState::ClientSession;
                }
                tables.links.insert(token_hash.0, link);
            }
            PageChange::Rejected { attempt } => {
                // Rejection needs no time check: an expired page shows
                // `expired` whatever its state.
                if let Some(entry) = tables.attempts.get_mut(&attempt)
                    && entry.state.is_open()
                {
                    entry.state = AttemptState::Rejected;
                }
            }
        }
    }

    /// The account and answer of a confirmed, unexpired attempt: what its
    /// browser collects.
    pub fn confirmed(&self, attempt: &str, now: u64) -> Option<(i64, Option<AskAnswer>)> {
        let tables = self.tables();
        let entry = tables.attempts.get(attempt)?;
        if entry.state != AttemptState::Confirmed || entry.expires_at <= now {
            return None;
        }
        Some((entry.account_id?, entry.answer.clone()))
    }

    /// Marks an attempt collected (its browser has its session).
    pub fn mark_collected(&self, attempt: &str) {
        if let Some(entry) = self.tables().attempts.get_mut(attempt) {
            entry.state = AttemptState::Collected;
        }
    }

    /// What a link is checked against, while it exists.
    pub fn check_link(&self, token_hash: &TokenHash) -> Option<LinkCheck> {
        let tables = self.tables();
        let link = tables.links.get(token_hash.as_bytes())?;
        let page = link.attempt_id.as_ref().and_then(|id| {
            tables
                .attempts
                .get(id)
                .map(|attempt| (id.clone(), attempt.pag_hash))
        });
        Some(LinkCheck {
            account_id: link.account_id,
            page,
            device_on_browser_network: link.device_on_browser_network,
        })
    }

    /// Whether a link with this token hash exists (a new link's token must
    /// be new: one that is not is refused, as a table's key would be).
    pub fn has_link(&self, token_hash: &TokenHash) -> bool {
        self.tables().links.contains_key(token_hash.as_bytes())
    }

    /// Spends a link: it is gone whatever happens next.
    pub fn spend_link(&self, token_hash: &TokenHash) -> Option<LinkEntry> {
        self.tables().links.remove(token_hash.as_bytes())
    }

    /// Puts back a link whose session could not be stored.
    pub fn put_back_link(&self, token_hash: &TokenHash, link: LinkEntry) {
        self.tables().links.insert(token_hash.0, link);
    }

    /// Drops everything expired at `now`; returns how many were dropped.
    pub fn prune(&self, now: u64) -> u64 {
        let mut tables = self.tables();
        let before = tables.len();
        tables.conversations.retain(|_, c| c.expires_at > now);
        tables.links.retain(|_, link| link.expires_at > now);
        tables
            .attempts
            .retain(|_, attempt| attempt.expires_at > now);
        u64::try_from(before - tables.len()).unwrap_or(u64::MAX)
    }

    /// How much is in flight.
    pub fn counts(&self) -> InFlight {
        let tables = self.tables();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        InFlight {
            attempts: count(tables.attempts.len()),
            conversations: count(tables.conversations.len()),
            links: count(tables.links.len()),
        }
    }

    /// Forgets every login in flight, as a restart would.
    pub fn forget_all(&self) {
        *self.tables() = Tables::default();
    }

    /// The identity that confirmed `attempt`, for tests of the ordering.
    #[cfg(test)]
    fn confirmed_idk(&self, attempt: &str) -> Option<sqrl_core::keys::IdentityKey> {
        self.tables()
            .attempts
            .get(attempt)
            .and_then(|a| a.confirmed_by.as_ref().map(|c| c.idk))
    }
}

impl Tables {
    fn len(&self) -> usize {
        self.attempts.len() + self.conversations.len() + self.links.len()
    }

    fn insert_conversation(&mut self, nut: &Nut, conversation: &Conversation) {
        // A conversation outlives neither its attempt nor the attempt's end:
        // with the attempt gone, it continues without a browser.
        let attempt_expiry = conversation
            .browser
            .as_ref()
            .and_then(|browser| self.attempts.get(&browser.attempt))
            .map(|attempt| attempt.expires_at);
        self.conversations.insert(
            nut.as_str().to_owned(),
            tied_to_attempt(conversation, attempt_expiry),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::Ipv4Addr;

    use rand_core::OsRng;
    use sqrl_core::keys::IdentityKey;
    use sqrl_core::server::WaitingBrowser;

    use super::*;
    use crate::token::Token;

    const NOW: u64 = 1_000;

    fn new_attempt(id: &str, expires_at: u64) -> NewAttempt {
        NewAttempt {
            id: id.to_owned(),
            pag_hash: Token::generate(&mut OsRng).hash(),
            browser_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: "Test/1.0".to_owned(),
            created_at: NOW,
            expires_at,
        }
    }

    fn conversation(attempt: Option<&str>, expires_at: u64) -> Conversation {
        Conversation {
            expected_server: Vec::new(),
            browser: attempt.map(|attempt| WaitingBrowser {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                attempt: attempt.to_owned(),
            }),
            idk: None,
            sin: None,
            asked: false,
            expires_at,
        }
    }

    /// Two distinct curve points: the base point and the identity.
    fn idks() -> (IdentityKey, IdentityKey) {
        let mut base = [0x66; 32];
        base[0] = 0x58;
        let mut identity = [0; 32];
        identity[0] = 1;
        (
            IdentityKey::from_bytes(&base).unwrap(),
            IdentityKey::from_bytes(&identity).unwrap(),
        )
    }

    /// Memory holding attempt `a` (expiring a minute from `NOW`) and the
    /// conversation of its first nut (expiring at `conversation_expiry`).
    fn with_attempt(conversation_expiry: u64) -> (InFlightMemory, Nut) {
        let memory = InFlightMemory::default();
        let nut = Nut::generate(&mut OsRng);
        assert!(memory.create_attempt(
            new_attempt("a", NOW + 60),
            &nut,
            &conversation(Some("a"), conversation_expiry),
        ));
        (memory, nut)
    }

    #[test]
    fn attempts_beyond_the_limit_are_refused_until_some_expire() {
        let (memory, _) = with_attempt(NOW + 30);
        memory.limit_attempts(2);
        let start = |id: &str, expires_at: u64| {
            memory.create_attempt(
                new_attempt(id, expires_at),
                &Nut::generate(&mut OsRng),
                &conversation(Some(id), expires_at),
            )
        };
        assert!(start("b", NOW + 600));
        assert!(!start("c", NOW + 600), "two kept: the third is refused");
        assert!(memory.attempt("c").is_none());
        assert_eq!(memory.counts().attempts, 2);
        // `a` expires a minute after NOW; once pruned, its place is free.
        memory.prune(NOW + 61);
        assert!(start("c", NOW + 600));
        assert!(memory.attempt("c").is_some());
    }

    #[test]
    fn a_conversation_is_taken_once_and_never_outlives_its_attempt() {
        let (memory, nut) = with_attempt(NOW + 600);
        let taken = memory.take_conversation(&nut).unwrap();
        assert_eq!(taken.expires_at, NOW + 60, "clipped to the attempt");
        assert!(memory.take_conversation(&nut).is_none(), "used once");

        // The attempt is gone: the next step continues without a browser.
        memory.prune(NOW + 60);
        let next = Nut::generate(&mut OsRng);
        memory.insert_conversation(&next, &conversation(Some("a"), NOW + 600));
        let orphan = memory.take_conversation(&next).unwrap();
        assert!(orphan.browser.is_none());
        assert_eq!(orphan.expires_at, NOW + 600);
    }

    #[test]
    fn a_page_moves_forward_only_and_a_late_confirmation_changes_nothing() {
        let (memory, _nut) = with_attempt(NOW + 60);
        let (first, second) = idks();
        let confirm = |idk: IdentityKey, account_id| PageChange::Confirmed {
            attempt: "a".to_owned(),
            account_id,
            confirmation: Confirmation {
                idk,
                device_on_browser_network: true,
            },
            answer: None,
        };
        memory.change_page(
            PageChange::Scanned {
                attempt: "a".into(),
            },
            NOW,
        );
        assert_eq!(memory.attempt("a").unwrap().state, AttemptState::Scanned);
        memory.change_page(confirm(first, 1), NOW);
        memory.change_page(confirm(second, 2), NOW);
        memory.change_page(
            PageChange::Rejected {
                attempt: "a".into(),
            },
            NOW,
        );
        memory.change_page(
            PageChange::Scanned {
                attempt: "a".into(),
            },
            NOW,
        );
        assert_eq!(memory.attempt("a").unwrap().state, AttemptState::Confirmed);
        assert_eq!(memory.confirmed_idk("a"), Some(first));
        assert_eq!(memory.confirmed("a", NOW).unwrap().0, 1);
        assert!(memory.confirmed("a", NOW + 60).is_none(), "expired");
        memory.mark_collected("a");
        assert!(memory.confirmed("a", NOW).is_none(), "collected once");
    }

    #[test]
    fn an_expired_page_is_not_confirmed() {
        let (memory, _nut) = with_attempt(NOW + 60);
        memory.change_page(
            PageChange::Confirmed {
                attempt: "a".into(),
                account_id: 1,
                confirmation: Confirmation {
                    idk: idks().0,
                    device_on_browser_network: true,
                },
                answer: None,
            },
            NOW + 60,
        );
        assert_eq!(memory.attempt("a").unwrap().state, AttemptState::Pending);
        assert!(!memory.rotate_nut(
            "a",
            NOW + 60,
            &Nut::generate(&mut OsRng),
            &conversation(Some("a"), NOW + 60)
        ));
    }

    #[test]
    fn a_link_is_spent_once_and_expires() {
        let memory = InFlightMemory::default();
        let token = Token::generate(&mut OsRng).hash();
        let link = |account_id| LinkEntry {
            account_id,
            attempt_id: None,
            method: LoginMethod::SameDevice,
            expires_at: NOW + 60,
            device_on_browser_network: true,
            answer: None,
        };
        let change = |account_id| PageChange::ClientSession {
            attempt: None,
            token_hash: token,
            link: link(account_id),
        };
        memory.change_page(change(7), NOW);
        assert_eq!(memory.check_link(&token).unwrap().account_id, 7);
        assert!(memory.check_link(&token).unwrap().page.is_none());
        assert_eq!(memory.spend_link(&token).unwrap().account_id, 7);
        assert!(memory.spend_link(&token).is_none(), "spent once");
        assert_eq!(memory.counts().links, 0);

        memory.change_page(change(8), NOW);
        assert_eq!(memory.prune(NOW + 60), 1, "expired");
        assert!(memory.check_link(&token).is_none());
    }

    #[test]
    fn forgetting_all_is_a_restart() {
        let (memory, nut) = with_attempt(NOW + 60);
        assert_eq!(memory.counts().attempts, 1);
        memory.forget_all();
        assert_eq!(memory.counts(), InFlight::default());
        assert!(memory.take_conversation(&nut).is_none());
    }
}
