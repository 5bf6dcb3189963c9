//! Login attempts (the waiting browser) and the conversations (nuts) that
//! lead a client to them: created by a page load or `/nut.sqrl`, advanced by
//! each `/cli.sqrl` request in one step ([`super::step`]).

use std::net::IpAddr;

use async_trait::async_trait;
use sqrl_core::keys::IdentityKey;
use sqrl_core::msg::Button;
use sqrl_core::server::{Conversation, Nut};

use super::StoreError;
use super::step::{Decide, StepError, StepRequest, Stepped};
use crate::token::TokenHash;

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
    /// Every state, in the order a login moves through them. The SQL
    /// schemas' CHECK constraints and the page's script list the same names
    /// (tests hold them to this list).
    pub const ALL: [AttemptState; 6] = [
        AttemptState::Pending,
        AttemptState::Scanned,
        AttemptState::Confirmed,
        AttemptState::Collected,
        AttemptState::ClientSession,
        AttemptState::Rejected,
    ];

    /// Whether the attempt can change no more: its page has nothing left to
    /// wait for. (`Confirmed` is not: the browser has yet to collect.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AttemptState::Collected | AttemptState::ClientSession | AttemptState::Rejected
        )
    }

    /// Whether a client may still answer the attempt (scan, confirm, refuse).
    pub fn is_open(self) -> bool {
        matches!(self, AttemptState::Pending | AttemptState::Scanned)
    }

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

/// What a request step does to the waiting page's attempt.
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

impl AttemptUpdate {
    /// The attempt the update changes, if any: its page must be told.
    pub fn attempt(&self) -> Option<&str> {
        match self {
            AttemptUpdate::None => None,
            AttemptUpdate::Scanned { attempt }
            | AttemptUpdate::LogIn { attempt, .. }
            | AttemptUpdate::Rejected { attempt } => Some(attempt),
            AttemptUpdate::ClientSession { attempt, .. } => attempt.as_deref(),
        }
    }
}

/// Login attempts and conversations. Every method is one transaction.
#[async_trait]
pub trait Attempts: Send + Sync + 'static {
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

    /// Runs one `/cli.sqrl` request in one trip to the store (see
    /// [`super::step`]): takes the request's conversation, reads the
    /// records (and the waiting page's attempt), calls `decide` with them,
    /// and commits what it planned (the mutation, the indexed secret, the
    /// page's update, session revocation, the next conversation) at once.
    /// Retried on fresh records when the database refuses the commit; when
    /// it fails, nothing is written and the conversation is not taken.
    async fn step(&self, request: StepRequest, decide: Decide) -> Result<Stepped, StepError>;
}
