//! Browser sessions: how a confirmed attempt or a single-use link becomes
//! one, how it is looked up and ended, and the login history it leaves.

use std::net::IpAddr;

use async_trait::async_trait;
use sqrl_core::keys::IdentityKey;

use super::{AskAnswer, StoreError};
use crate::token::TokenHash;
use crate::webhooks::SessionEnd;

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
    /// Whether the commit already told the other instances that the
    /// attempt changed ([`crate::notify::Notifier::notify_here`] is then
    /// enough).
    pub published: bool,
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
    /// How it was signed in (`None` for sessions older than the record).
    pub method: Option<LoginMethod>,
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

/// Sessions, single-use links and login history. Every method is one
/// transaction.
#[async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// The browser holding a `confirmed` attempt's secret takes its session:
    /// marks the attempt logged in, creates the session and records the
    /// login (history and `login` event), in one transaction. `None` unless the attempt is confirmed and
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

    /// Ends one of an account's sessions, recording its `logout` or
    /// `session.revoked` event (`end`) in the same transaction. `false` if
    /// it was not the account's.
    async fn revoke_session(
        &self,
        account_id: i64,
        session_id: i64,
        end: SessionEnd,
        now: u64,
    ) -> Result<bool, StoreError>;

    /// An account's most recent logins, newest first.
    async fn login_history(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<LoginEvent>, StoreError>;
}
