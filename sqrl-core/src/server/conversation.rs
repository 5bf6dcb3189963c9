//! The pending-auth record of one login attempt (SPEC 8.1), as the server keeps it
//! under the nut it handed out last.

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::base64url;
use crate::keys::IdentityKey;

/// SHA-256 of a `server=` value the server sent: what it stores instead of the
/// value itself to check the echo (SPEC 3.2 step 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerValueDigest([u8; 32]);

impl ServerValueDigest {
    /// The digest of a `server=` value (the encoded text, as sent).
    pub fn of(server_value: &str) -> Self {
        Self(Sha256::digest(server_value.as_bytes()).into())
    }

    /// The digest of the first `server=` value of a conversation started by
    /// `url`: the client sends `b64u(url)` (SPEC 2.3).
    pub fn of_url(url: &str) -> Self {
        Self::of(&base64url::encode(url))
    }

    /// Wraps a stored digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest, for storage.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Whether `server_value` hashes to this digest, in constant time.
    pub fn matches(&self, server_value: &str) -> bool {
        let digest = Self::of(server_value);
        self.0.ct_eq(&digest.0).into()
    }
}

impl core::fmt::Debug for ServerValueDigest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ServerValueDigest({})", base64url::encode(self.0))
    }
}

/// The browser waiting for a login: the IP that fetched the SQRL URL (SPEC 3.2
/// step 4, PITFALLS 26) and the driver's handle on its login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingBrowser {
    /// The browser's IP address (without port; the driver resolves trusted
    /// proxies before it gets here).
    pub ip: IpAddr,
    /// The driver's identifier of the login attempt (for example the page's
    /// first nut, or a row id). Opaque to this crate; carried unchanged from
    /// one conversation step to the next.
    pub attempt: String,
}

/// The state a server keeps for one conversation step, stored under the nut it
/// sent last and **removed when a request names that nut**, whatever the
/// request's fate (SPEC 3.2 step 2, PITFALLS 27). Every decision hands back the
/// record for the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Digests of the `server=` values the next request may echo: the reply body
    /// sent last, or, before the first request, the SQRL URL in each form the
    /// page showed (the QR code without `can=`, the link with it).
    pub expected_server: Vec<ServerValueDigest>,
    /// The browser waiting for this login; `None` for a conversation that
    /// continues a request whose nut was unknown or stale (then the IPs never
    /// match and no login can happen, CPS included: only `query` and the
    /// identity-management commands go on).
    pub browser: Option<WaitingBrowser>,
    /// The identity the conversation is bound to since its first request that
    /// passed the checks (SPEC 8.1): another identity gets TIF 0x1C0.
    pub idk: Option<IdentityKey>,
    /// The `sin` sent in the last reply: the next request must carry `ins`
    /// (and `pins` with a `pidk`).
    pub sin: Option<String>,
    /// Whether the last reply carried `ask`: the next request's `btn` answers it.
    pub asked: bool,
    /// When the conversation stops being accepted, in the driver's clock
    /// (seconds; the same clock as the `now` given to the decision).
    pub expires_at: u64,
}

impl Conversation {
    /// The record of a conversation that has not started yet: a page shows
    /// the SQRL URL(s) and waits. `urls` are every form of the URL the page
    /// shows (all carry the same nut; the record is stored under it).
    pub fn for_urls<'a>(
        urls: impl IntoIterator<Item = &'a str>,
        browser: Option<WaitingBrowser>,
        expires_at: u64,
    ) -> Self {
        Self {
            expected_server: urls.into_iter().map(ServerValueDigest::of_url).collect(),
            browser,
            idk: None,
            sin: None,
            asked: false,
            expires_at,
        }
    }

    /// Whether the conversation is past its expiry at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Whether `server_value` is one the server sent (constant time per digest,
    /// and every digest is checked).
    pub fn echoes(&self, server_value: &str) -> bool {
        let digest = ServerValueDigest::of(server_value);
        self.expected_server
            .iter()
            .fold(subtle::Choice::from(0), |found, expected| {
                found | expected.0.ct_eq(&digest.0)
            })
            .into()
    }

    /// Whether `client_ip` is the waiting browser's IP. IPv4-mapped IPv6
    /// addresses compare equal to their IPv4 form (a dual-stack listener may
    /// report either).
    pub fn ip_matches(&self, client_ip: IpAddr) -> bool {
        self.browser
            .as_ref()
            .is_some_and(|browser| browser.ip.to_canonical() == client_ip.to_canonical())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_checked_against_every_url_form() {
        let qr = "sqrl://example.com/cli.sqrl?nut=abc";
        let link = "sqrl://example.com/cli.sqrl?nut=abc&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8";
        let conversation = Conversation::for_urls([qr, link], None, 10);
        assert!(conversation.echoes(&base64url::encode(qr)));
        assert!(conversation.echoes(&base64url::encode(link)));
        assert!(!conversation.echoes(qr));
        assert!(!conversation.echoes(&base64url::encode("sqrl://example.com/cli.sqrl?nut=abd")));
    }

    #[test]
    fn expiry_and_ip() {
        let browser = WaitingBrowser {
            ip: "192.0.2.1".parse().unwrap(),
            attempt: "a".into(),
        };
        let conversation = Conversation::for_urls(["sqrl://h/?nut=n"], Some(browser), 100);
        assert!(!conversation.is_expired(99));
        assert!(conversation.is_expired(100));
        assert!(conversation.ip_matches("192.0.2.1".parse().unwrap()));
        assert!(conversation.ip_matches("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!conversation.ip_matches("192.0.2.2".parse().unwrap()));
        let orphan = Conversation::for_urls([], None, 100);
        assert!(!orphan.ip_matches("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn digest_round_trips() {
        let digest = ServerValueDigest::of("abc");
        assert_eq!(ServerValueDigest::from_bytes(digest.to_bytes()), digest);
        assert!(digest.matches("abc"));
        assert!(!digest.matches("abd"));
    }
}
