//! All durable state behind one interface: conversations (nuts), login
//! attempts, accounts with their SQRL associations and superseded identities,
//! single-use login links (CPS), sessions and login history.
//!
//! [`sqlite::SqliteStore`] is the first implementation. Nothing about a login
//! lives only in process memory, so a second implementation (PostgreSQL) with
//! a cross-instance [`crate::notify::Notifier`] can serve the same handlers.

pub mod migrations;
pub mod sqlite;

use std::net::IpAddr;

use async_trait::async_trait;
use sqrl_core::keys::{IdentityKey, ServerUnlockKey, VerifyUnlockKey};
use sqrl_core::msg::Button;
use sqrl_core::server::{Conversation, Lookups, Mutation, Nut, Records};

use crate::indexed_secret::SecretStep;
use crate::token::TokenHash;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
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
    /// The database file could not be prepared.
    #[error("opening database: {0}")]
    Open(String),
}

/// A request that contradicts stored state (operator API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The identity key is already associated with an account.
    #[error("identity already associated")]
    IdentityTaken,
    /// The identity key was superseded and may not be associated again.
    #[error("identity was superseded")]
    IdentitySuperseded,
    /// The account already has a SQRL identity.
    #[error("account already has a SQRL identity")]
    AccountHasIdentity,
    /// The account does not exist.
    #[error("no such account")]
    NoAccount,
}

/// Where a login attempt stands, as the waiting page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptState {
    /// The page shows the code; no client has answered yet.
    Pending,
    /// A client sent a valid `query`: waiting for the user to confirm.
    Scanned,
    /// The user confirmed (`ident`); the browser may collect its session.
    Confirmed,
    /// The browser collected its session.
    Collected,
    /// The client took the login to the browser itself (CPS): this page is done.
    ClientSession,
    /// The login will not happen (disabled, superseded, removed).
    Rejected,
}

impl AttemptState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Pending => "pending",
            AttemptState::Scanned => "scanned",
            AttemptState::Confirmed => "confirmed",
            AttemptState::Collected => "logged-in",
            AttemptState::ClientSession => "client-session",
            AttemptState::Rejected => "rejected",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => AttemptState::Pending,
            "scanned" => AttemptState::Scanned,
            "confirmed" => AttemptState::Confirmed,
            "logged-in" => AttemptState::Collected,
            "client-session" => AttemptState::ClientSession,
            "rejected" => AttemptState::Rejected,
            _ => return None,
        })
    }
}

/// How a browser got its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// The page collected the login after the user confirmed on a device
    /// (typically a phone scanning the QR code).
    CrossDevice,
    /// The identity client on this device handed the browser a single-use
    /// link (CPS, SPEC 7).
    SameDevice,
}

impl LoginMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::CrossDevice => "cross-device",
            LoginMethod::SameDevice => "same-device",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cross-device" => Some(LoginMethod::CrossDevice),
            "same-device" => Some(LoginMethod::SameDevice),
            _ => None,
        }
    }
}

/// The user's answer to the service's `ask` (SPEC 3 `ask`, 2.2 `btn`), kept
/// with the login it came with: in the confirmed attempt or CPS link, then in
/// the login history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskAnswer {
    /// `btn=`: acknowledged (0), first (1) or second (2) button.
    pub button: Button,
    /// The chosen button's label, as it was asked.
    pub label: Option<String>,
    /// The chosen button's URL path: where the browser goes once logged in
    /// (instead of the account page).
    pub url: Option<String>,
}

/// A new login attempt (a page load or `/nut.sqrl`).
#[derive(Debug, Clone)]
pub struct NewAttempt {
    /// The attempt's id: the first nut the page got (what `/pag.sqrl?nut=` names).
    pub id: String,
    /// Hash of the secret only the waiting browser holds (`pag`, cookie).
    pub pag_hash: TokenHash,
    /// The browser's address (the one clients' IPs are compared with).
    pub browser_ip: IpAddr,
    /// The browser's `User-Agent`, for the login history.
    pub user_agent: String,
    /// Creation time (seconds).
    pub created_at: u64,
    /// When the whole attempt expires (at most 10 minutes later).
    pub expires_at: u64,
}

/// A stored login attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// See [`NewAttempt::id`].
    pub id: String,
    /// See [`NewAttempt::pag_hash`].
    pub pag_hash: TokenHash,
    /// See [`NewAttempt::browser_ip`].
    pub browser_ip: IpAddr,
    /// See [`NewAttempt::user_agent`].
    pub user_agent: String,
    /// Where it stands.
    pub state: AttemptState,
    /// Who confirmed it, once confirmed.
    pub confirmed_by: Option<Confirmation>,
    /// Creation time.
    pub created_at: u64,
    /// Expiry time.
    pub expires_at: u64,
}

/// The identity that confirmed a login attempt on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The per-site identity key the account answers to.
    pub idk: IdentityKey,
    /// Whether the device was on the browser's network (TIF 0x04).
    pub device_on_browser_network: bool,
}

/// What a committed request step does to the waiting page's attempt.
#[derive(Debug, Clone)]
pub enum AttemptUpdate {
    /// Nothing.
    None,
    /// `pending` → `scanned`.
    Scanned {
        /// The attempt.
        attempt: String,
    },
    /// → `confirmed` for the account of `idk` (after the mutation).
    LogIn {
        /// The attempt.
        attempt: String,
        /// The identity whose account logs in.
        idk: IdentityKey,
        /// The answer to the `ask`, if one was asked.
        answer: Option<AskAnswer>,
        /// Whether the confirming device was on the browser's network.
        device_on_browser_network: bool,
    },
    /// Store a single-use CPS link for the account of `idk`, and mark the
    /// attempt (if any) as handled by the client.
    ClientSession {
        /// The attempt, if a page is waiting.
        attempt: Option<String>,
        /// The identity whose account logs in.
        idk: IdentityKey,
        /// Hash of the link's token.
        token_hash: TokenHash,
        /// When the link stops working.
        expires_at: u64,
        /// The answer to the `ask`, if one was asked.
        answer: Option<AskAnswer>,
        /// Whether the confirming device was on the browser's network.
        device_on_browser_network: bool,
    },
    /// → `rejected`.
    Rejected {
        /// The attempt.
        attempt: String,
    },
}

/// One `/cli.sqrl` request's effects, committed atomically.
#[derive(Debug, Clone)]
pub struct Step {
    /// Now (seconds).
    pub now: u64,
    /// The keys whose records the decision read, if any.
    pub lookups: Option<Lookups>,
    /// The records the decision saw. If they changed since, nothing is
    /// written and [`StepOutcome::Conflict`] is returned.
    pub seen: Records,
    /// The account change.
    pub mutation: Mutation,
    /// The nut of the reply.
    pub next_nut: Nut,
    /// The conversation to store under it; `None` when the driver keeps it
    /// elsewhere (one with no login page behind it, see [`crate::retry`]).
    pub next: Option<Conversation>,
    /// The waiting page's update.
    pub attempt: AttemptUpdate,
    /// What to check and store of the request's `ins`/`pins`.
    pub indexed_secret: Option<SecretStep>,
    /// End every browser session of the account the mutation acts on, in the
    /// same transaction: the identity that opened them was disabled or
    /// replaced, so they must not outlive it.
    pub revoke_sessions: bool,
}

/// Whether a [`Step`] was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Everything was written.
    Committed,
    /// The account records changed since the decision read them; nothing was
    /// written.
    Conflict,
    /// The presented indexed secret differs from the one stored for the
    /// account ([`SecretStep::holder`]); nothing was written.
    IndexedSecretMismatch,
}

/// A session handed to a browser.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Hash of the cookie token.
    pub token_hash: TokenHash,
    /// The browser's address.
    pub ip: IpAddr,
    /// The browser's `User-Agent`.
    pub user_agent: String,
    /// Now.
    pub created_at: u64,
    /// Expiry.
    pub expires_at: u64,
}

/// A redeemed single-use login link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The account now logged in.
    pub account_id: i64,
    /// How.
    pub method: LoginMethod,
    /// The attempt it came from, if any.
    pub attempt: Option<String>,
    /// The answer to the `ask`, if one was asked.
    pub answer: Option<AskAnswer>,
}

/// What became of a single-use login link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The browser has its session.
    Redeemed(Redeemed),
    /// The link is unknown, used or expired.
    Gone,
    /// The link is live but this browser does not hold its page's secret:
    /// it was opened somewhere other than where the login began.
    OtherBrowser,
    /// The link is live and this browser's, but the device that confirmed
    /// was on another network: the person must first see which identity
    /// they would be signed in as (someone who saw the code may have
    /// answered it). Nothing was spent.
    Confirm {
        /// The identity the link signs in as.
        idk: IdentityKey,
    },
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Row id (shown, and used to revoke).
    pub id: i64,
    /// The account.
    pub account_id: i64,
    /// Creation time.
    pub created_at: u64,
    /// Last use.
    pub last_seen_at: u64,
    /// Expiry.
    pub expires_at: u64,
    /// Address at login.
    pub ip: String,
    /// `User-Agent` at login.
    pub user_agent: String,
}

/// One login in an account's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    /// When.
    pub at: u64,
    /// The browser's address.
    pub ip: String,
    /// The browser's `User-Agent`.
    pub user_agent: String,
    /// How.
    pub method: LoginMethod,
    /// The answer to the `ask`, if one was asked.
    pub answer: Option<AskAnswer>,
}

/// A SQRL association an operator makes (SPEC 8.3): the identity key and
/// the unlock keys its owner's client made for this site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssociation {
    /// The per-site identity key.
    pub idk: IdentityKey,
    /// Its Server Unlock Key.
    pub suk: ServerUnlockKey,
    /// Its Verify Unlock Key.
    pub vuk: VerifyUnlockKey,
}

/// An account's SQRL association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityView {
    /// The per-site identity key.
    pub idk: IdentityKey,
    /// SQRL login disabled by the user.
    pub disabled: bool,
    /// `sqrlonly` as last set.
    pub sqrl_only: bool,
    /// `hardlock` as last set.
    pub hardlock: bool,
    /// When the association was made.
    pub created_at: u64,
    /// The `sin`s for which an indexed secret is stored (never the secrets).
    pub indexed_secrets: Vec<String>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Row id.
    pub id: i64,
    /// Creation time.
    pub created_at: u64,
    /// Its SQRL association, if it has one.
    pub identity: Option<IdentityView>,
    /// Identity keys this account answered to before (superseded).
    pub superseded: Vec<IdentityKey>,
}

/// The storage interface. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- login attempts and conversations -------------------------------------

    /// Stores a new attempt and the conversation of its first nut.
    async fn create_attempt(
        &self,
        attempt: NewAttempt,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<(), StoreError>;

    /// Adds a fresh nut to a still-pending attempt (the page rotates its QR
    /// code). Returns `false` (nothing stored) when the attempt is gone,
    /// expired or already past `pending`.
    async fn rotate_nut(
        &self,
        attempt: &str,
        now: u64,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<bool, StoreError>;

    /// Reads an attempt.
    async fn attempt(&self, id: &str) -> Result<Option<Attempt>, StoreError>;

    /// Reads and deletes the conversation stored under `nut`, whatever its
    /// state: a nut is used once (SPEC 3.2 step 2).
    async fn take_conversation(&self, nut: &Nut) -> Result<Option<Conversation>, StoreError>;

    /// Stores a conversation under `nut` (the reply to a step that could not
    /// be committed).
    async fn put_conversation(
        &self,
        nut: Nut,
        conversation: Conversation,
    ) -> Result<(), StoreError>;

    /// Reads the records a decision needs.
    async fn records(&self, lookups: &Lookups) -> Result<Records, StoreError>;

    /// Commits one request step atomically (see [`Step`]).
    async fn commit_step(&self, step: Step) -> Result<StepOutcome, StoreError>;

    // --- single-use login links and sessions ----------------------------------

    /// The browser holding a `confirmed` attempt's secret takes its session:
    /// marks the attempt logged in, creates the session and records the
    /// login, in one transaction. `None` unless the attempt is confirmed and
    /// unexpired (so it is collected once).
    async fn collect_attempt(
        &self,
        attempt: &str,
        now: u64,
        session: NewSession,
    ) -> Result<Option<Redeemed>, StoreError>;

    /// Redeems a single-use link for the browser that presents its page's
    /// secret (`presented`: the attempts whose secrets the browser holds,
    /// with the hash of each): deletes it, creates the session and records the
    /// login, in one transaction. Nothing changes unless the link is live and
    /// one of `presented` is its attempt's secret, nor, for a link confirmed
    /// from another network than the browser's, unless the person `confirmed`
    /// the identity ([`LinkOutcome::Confirm`]).
    async fn redeem_link(
        &self,
        token_hash: TokenHash,
        now: u64,
        session: NewSession,
        presented: Vec<(String, TokenHash)>,
        confirmed: bool,
    ) -> Result<LinkOutcome, StoreError>;

    /// The live session for a cookie token, if any (refreshing its last use).
    /// A session unused since before `idle_cutoff` has timed out: it is
    /// ended and `None` returned.
    async fn session(
        &self,
        token_hash: TokenHash,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Option<SessionInfo>, StoreError>;

    /// An account's live sessions (unexpired, used since `idle_cutoff`),
    /// newest first.
    async fn sessions(
        &self,
        account_id: i64,
        now: u64,
        idle_cutoff: u64,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Ends one of an account's sessions. `false` if it was not the account's.
    async fn revoke_session(&self, account_id: i64, session_id: i64) -> Result<bool, StoreError>;

    /// An account's most recent logins, newest first.
    async fn login_history(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<LoginEvent>, StoreError>;

    // --- accounts (account page, operator API) --------------------------------

    /// An account and its association.
    async fn account(&self, account_id: i64) -> Result<Option<AccountView>, StoreError>;

    /// The account an identity key is associated with.
    async fn account_by_identity(
        &self,
        idk: &IdentityKey,
    ) -> Result<Option<AccountView>, StoreError>;

    /// Associates an identity with an account (a new one when `account_id`
    /// is `None`). Returns the account id.
    async fn associate(
        &self,
        account_id: Option<i64>,
        association: NewAssociation,
        now: u64,
    ) -> Result<Result<i64, Conflict>, StoreError>;

    /// Deletes an identity's association (the account stays) and ends every
    /// session of its account. `false` if there was none.
    async fn remove_identity(&self, idk: &IdentityKey) -> Result<bool, StoreError>;

    // --- housekeeping ----------------------------------------------------------

    /// Deletes expired conversations, attempts, links and sessions. Returns
    /// the number of rows deleted.
    async fn prune(&self, now: u64) -> Result<u64, StoreError>;

    /// Checks that the database answers.
    async fn health(&self) -> Result<(), StoreError>;
}
