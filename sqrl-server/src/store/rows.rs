//! Rows as both SQL backends read and write them: one typed struct per row
//! shape, decoded into the domain's types in one place, so the backends differ
//! only in how they fetch columns.

use std::net::IpAddr;

use sqrl_core::keys::{IdentityKey, ServerUnlockKey, VerifyUnlockKey};
use sqrl_core::msg::Button;
use sqrl_core::server::{
    AccountOptions, AccountRecord, Conversation, ServerValueDigest, WaitingBrowser,
};

use super::{
    AskAnswer, Attempt, AttemptState, Confirmation, IdentityView, LoginEvent, LoginMethod,
    StoreError,
};
use crate::token::TokenHash;

/// Seconds as the databases store them (a signed 64-bit integer; our clock
/// never exceeds it).
pub(super) fn sql_time(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// A stored time; a negative one (never written by us) reads as the epoch.
pub(super) fn from_sql_time(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn corrupt(table: &'static str, reason: &'static str) -> StoreError {
    StoreError::Corrupt { table, reason }
}

pub(super) fn key32(bytes: &[u8], table: &'static str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| corrupt(table, "key is not 32 bytes"))
}

pub(super) fn identity_key(bytes: &[u8], table: &'static str) -> Result<IdentityKey, StoreError> {
    IdentityKey::from_bytes(&key32(bytes, table)?).map_err(|_| corrupt(table, "invalid idk"))
}

pub(super) fn parse_ip(text: &str, table: &'static str) -> Result<IpAddr, StoreError> {
    text.parse()
        .map_err(|_| corrupt(table, "invalid IP address"))
}

/// An address as stored: IPv4-mapped IPv6 addresses as plain IPv4.
pub(super) fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// The `ask_button`, `ask_label` and `ask_url` columns.
#[derive(Debug, Default)]
pub(super) struct AnswerColumns {
    pub button: Option<i16>,
    pub label: Option<String>,
    pub url: Option<String>,
}

impl AnswerColumns {
    pub fn of(answer: Option<&AskAnswer>) -> Self {
        match answer {
            Some(answer) => Self {
                button: Some(
                    answer
                        .button
                        .index()
                        .and_then(|index| i16::try_from(index).ok())
                        .unwrap_or(0),
                ),
                label: answer.label.clone(),
                url: answer.url.clone(),
            },
            None => Self::default(),
        }
    }

    pub fn into_answer(self, table: &'static str) -> Result<Option<AskAnswer>, StoreError> {
        let Some(button) = self.button else {
            return Ok(None);
        };
        let button =
            Button::parse(&button.to_string()).map_err(|_| corrupt(table, "ask_button"))?;
        Ok(Some(AskAnswer {
            button,
            label: self.label,
            url: self.url,
        }))
    }
}

/// `conversation` as it is kept: tied to its attempt only while the attempt
/// exists (`attempt_expiry`: its expiry, `None` when it is gone), and never
/// outliving it.
pub(super) fn tied_to_attempt(
    conversation: &Conversation,
    attempt_expiry: Option<u64>,
) -> Conversation {
    let mut kept = conversation.clone();
    match attempt_expiry {
        Some(attempt) if kept.browser.is_some() => kept.expires_at = kept.expires_at.min(attempt),
        _ => kept.browser = None,
    }
    kept
}

/// A `conversations` row.
#[derive(Debug)]
pub(super) struct ConversationRow {
    pub attempt_id: Option<String>,
    pub browser_ip: Option<String>,
    pub expected_server: Vec<u8>,
    pub idk: Option<Vec<u8>>,
    pub sin: Option<String>,
    pub asked: bool,
    pub expires_at: i64,
}

impl ConversationRow {
    /// The row for `conversation`, tied to its attempt only while the
    /// attempt exists (`attempt_expiry`: its expiry, `None` when it is gone);
    /// no step of a conversation outlives its attempt.
    pub fn of(conversation: &Conversation, attempt_expiry: Option<u64>) -> Self {
        let conversation = tied_to_attempt(conversation, attempt_expiry);
        let browser = conversation.browser.as_ref();
        Self {
            attempt_id: browser.map(|b| b.attempt.clone()),
            browser_ip: browser.map(|b| ip_text(b.ip)),
            expected_server: conversation
                .expected_server
                .iter()
                .flat_map(|digest| digest.to_bytes())
                .collect(),
            idk: conversation.idk.map(|idk| idk.to_bytes().to_vec()),
            sin: conversation.sin.clone(),
            asked: conversation.asked,
            expires_at: sql_time(conversation.expires_at),
        }
    }

    pub fn into_conversation(self) -> Result<Conversation, StoreError> {
        const T: &str = "conversations";
        let browser = match (self.attempt_id, self.browser_ip) {
            (Some(attempt), Some(ip)) => Some(WaitingBrowser {
                ip: parse_ip(&ip, T)?,
                attempt,
            }),
            _ => None,
        };
        let expected_server = self
            .expected_server
            .chunks(32)
            .map(|chunk| key32(chunk, T).map(ServerValueDigest::from_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let idk = self.idk.map(|bytes| identity_key(&bytes, T)).transpose()?;
        Ok(Conversation {
            expected_server,
            browser,
            idk,
            sin: self.sin,
            asked: self.asked,
            expires_at: from_sql_time(self.expires_at),
        })
    }
}

/// The protocol's columns of a `sqrl_identities` row.
#[derive(Debug)]
pub(super) struct IdentityRow {
    pub suk: Vec<u8>,
    pub vuk: Vec<u8>,
    pub disabled: bool,
    pub sqrl_only: bool,
    pub hardlock: bool,
}

impl IdentityRow {
    pub fn into_record(self) -> Result<AccountRecord, StoreError> {
        const T: &str = "sqrl_identities";
        Ok(AccountRecord {
            suk: ServerUnlockKey::from_bytes(key32(&self.suk, T)?),
            // Checked when it was stored, decoded only for a `urs` check.
            vuk: VerifyUnlockKey::from_stored_bytes(key32(&self.vuk, T)?),
            disabled: self.disabled,
            options: AccountOptions {
                sqrl_only: self.sqrl_only,
                hardlock: self.hardlock,
            },
        })
    }
}

/// A `login_attempts` row as the page reads it.
#[derive(Debug)]
pub(super) struct AttemptRow {
    pub pag_hash: Vec<u8>,
    pub browser_ip: String,
    pub user_agent: String,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub confirmed_idk: Option<Vec<u8>>,
    pub device_on_browser_network: Option<bool>,
}

impl AttemptRow {
    pub fn into_attempt(self, id: String) -> Result<Attempt, StoreError> {
        const T: &str = "login_attempts";
        let confirmed_by = match self.confirmed_idk {
            Some(idk) => Some(Confirmation {
                idk: identity_key(&idk, T)?,
                device_on_browser_network: self.device_on_browser_network.unwrap_or(false),
            }),
            None => None,
        };
        Ok(Attempt {
            id,
            pag_hash: TokenHash::from_slice(&self.pag_hash).ok_or(corrupt(T, "pag_hash"))?,
            browser_ip: parse_ip(&self.browser_ip, T)?,
            user_agent: self.user_agent,
            state: AttemptState::parse(&self.state).ok_or(corrupt(T, "state"))?,
            confirmed_by,
            created_at: from_sql_time(self.created_at),
            expires_at: from_sql_time(self.expires_at),
        })
    }
}

/// An account's `sqrl_identities` row as the account page shows it.
#[derive(Debug)]
pub(super) struct IdentityViewRow {
    pub idk: Vec<u8>,
    pub disabled: bool,
    pub sqrl_only: bool,
    pub hardlock: bool,
    pub created_at: i64,
}

impl IdentityViewRow {
    pub fn into_view(self, indexed_secrets: Vec<String>) -> Result<IdentityView, StoreError> {
        Ok(IdentityView {
            idk: identity_key(&self.idk, "sqrl_identities")?,
            disabled: self.disabled,
            sqrl_only: self.sqrl_only,
            hardlock: self.hardlock,
            created_at: from_sql_time(self.created_at),
            indexed_secrets,
        })
    }
}

/// A `login_history` row.
#[derive(Debug)]
pub(super) struct HistoryRow {
    pub at: i64,
    pub ip: String,
    pub user_agent: String,
    pub method: String,
    pub answer: AnswerColumns,
}

impl HistoryRow {
    pub fn into_event(self) -> Result<LoginEvent, StoreError> {
        const T: &str = "login_history";
        Ok(LoginEvent {
            at: from_sql_time(self.at),
            ip: self.ip,
            user_agent: self.user_agent,
            method: LoginMethod::parse(&self.method).ok_or(corrupt(T, "method"))?,
            answer: self.answer.into_answer(T)?,
        })
    }
}
