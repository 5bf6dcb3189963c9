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
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            versions: VersionSet::current(),
            sin: None,
            ask: None,
            retry_window: DEFAULT_RETRY_WINDOW,
        }
    }
}

impl Policy {
    /// Protocol version 1, no `sin`, no `ask`, [`DEFAULT_RETRY_WINDOW`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `sin=` (SPEC 3, 4.6) in every reply to a successful `query`; the
    /// client's next request then carries `ins` (and `pins` with a `pidk`),
    /// exposed by [`super::Decision::indexed_secrets`]. The index is a literal
    /// string; it must be non-empty printable ASCII (it travels as one reply line).
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
}
