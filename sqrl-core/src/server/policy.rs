//! What a site configures about its SQRL conversations.

use crate::msg::{Ask, MessageError, VersionSet};

/// Seconds a conversation started by an unknown or expired nut stays open: long
/// enough for the client's one retry (SPEC 3.2, 8.1), short enough to be no
/// second login window.
pub const DEFAULT_RETRY_WINDOW: u64 = 120;

/// A site's SQRL settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    versions: VersionSet,
    sin: Option<String>,
    ask: Option<Ask>,
    retry_window: u64,
    nut_lifetime: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            versions: VersionSet::current(),
            sin: None,
            ask: None,
            retry_window: DEFAULT_RETRY_WINDOW,
            nut_lifetime: None,
        }
    }
}

impl Policy {
    /// Protocol version 1, no `sin`, no `ask`, [`DEFAULT_RETRY_WINDOW`], and
    /// a conversation's steps all expire when its first did (no
    /// [`Policy::with_nut_lifetime`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks clients for their indexed secret (SPEC 3 `sin`, 4.6).
    ///
    /// `sin=` goes out in **every** reply, failures included, so the request
    /// after any reply (a retry after a transient error too) must carry `ins`,
    /// and `pins` with a `pidk` (else TIF 0xC0,
    /// [`super::Failure::MissingIndexedSecret`]). A command that may change
    /// state (anything but `query`) must also *answer* a `sin`: only the
    /// first request of a conversation follows no reply, and SPEC 2.2 makes
    /// that a `query`; so a state-changing command that answers none fails
    /// with TIF 0xC0 plus the state bits ([`super::Failure::UnansweredSin`]).
    /// Why: a client that skipped the `query` would otherwise never be asked,
    /// and could log in without presenting the secret a site checks.
    ///
    /// The answers are exposed by [`super::Decision::indexed_secrets`]. The
    /// decision checks them against the digest the driver read into
    /// [`super::Records`] (refusing one that differs, TIF 0xC0 plus state)
    /// and says what to keep ([`super::Decision::secret_write`]). The index
    /// is a literal string; it must be non-empty printable ASCII (it travels
    /// as one reply line).
    pub fn with_sin(mut self, sin: impl Into<String>) -> Result<Self, MessageError> {
        let sin = sin.into();
        if sin.is_empty() || !sin.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MessageError::InvalidValue {
                name: "sin",
                reason: "empty or not printable ASCII",
            });
        }
        self.sin = Some(sin);
        Ok(self)
    }

    /// Sends `ask=` in replies to a successful `query` of a known, enabled
    /// identity (SPEC 3: only valid with TIF 0x01); the next request's `btn` is
    /// exposed by [`super::Decision::button`].
    pub fn with_ask(mut self, ask: Ask) -> Self {
        self.ask = Some(ask);
        self
    }

    /// Sets how long a conversation started by a stale nut stays open.
    pub fn with_retry_window(mut self, seconds: u64) -> Self {
        self.retry_window = seconds;
        self
    }

    /// Gives every nut handed out in a conversation with a waiting page
    /// `seconds` to live, counted from the reply that hands it out: a slow
    /// user does not run out of time between `query` and `ident`, and no nut
    /// lives longer than one lifetime. The record's
    /// [`super::Conversation::expires_at`] is final when
    /// [`super::Decision::finish`] returns it; a driver may only shorten it
    /// (for example to the end of the whole login attempt).
    pub fn with_nut_lifetime(mut self, seconds: u64) -> Self {
        self.nut_lifetime = Some(seconds);
        self
    }

    /// The versions the server speaks (`ver=` of every reply).
    pub fn versions(&self) -> &VersionSet {
        &self.versions
    }

    /// The configured `sin`.
    pub fn sin(&self) -> Option<&str> {
        self.sin.as_deref()
    }

    /// The configured `ask`.
    pub fn ask(&self) -> Option<&Ask> {
        self.ask.as_ref()
    }

    /// The retry window in seconds.
    pub fn retry_window(&self) -> u64 {
        self.retry_window
    }

    /// The lifetime of each nut of a page's conversation, if set.
    pub fn nut_lifetime(&self) -> Option<u64> {
        self.nut_lifetime
    }
}
