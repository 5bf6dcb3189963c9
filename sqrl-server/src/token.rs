//! Bearer secrets the service hands to browsers (session cookies, the page's
//! `pag` secret, single-use login links) and how they are stored: hashed.
//!
//! A database leak then reveals no usable token, and lookups by hash compare no
//! secret bytes in variable time.

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use sqrl_core::base64url;

/// Random bytes in every token: 128 bits.
pub const TOKEN_BYTES: usize = 16;

/// A 128-bit random bearer secret. Wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Token([u8; TOKEN_BYTES]);

impl Token {
    /// Draws a fresh token.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads the text form (22 base64url characters); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        base64url::decode_array::<TOKEN_BYTES>(text).ok().map(Self)
    }

    /// The text form, for a cookie or a URL.
    pub fn encode(&self) -> String {
        base64url::encode(self.0)
    }

    /// HMAC-SHA-256 of `message` keyed with this token: binds a value the
    /// browser keeps (a return URL) to the secret it holds beside it.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        self.mac(message).finalize().into_bytes().into()
    }

    /// Whether `tag` is [`Token::sign`] of `message`, compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        self.mac(message).verify_slice(tag).is_ok()
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message);
        mac
    }

    /// What the database keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a [`Token`].
#[derive(Clone, Copy, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps a stored digest; `None` unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Whether `token` hashes to this digest (constant time).
    pub fn matches(&self, token: &Token) -> bool {
        self.0.ct_eq(&token.hash().0).into()
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl core::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A digest of a 128-bit secret is not itself usable; a prefix helps logs.
        write!(f, "TokenHash({}..)", base64url::encode(&self.0[..6]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hash() {
        let token = Token::generate(&mut rand_core::OsRng);
        let text = token.encode();
        assert_eq!(text.len(), 22);
        let parsed = Token::parse(&text).unwrap();
        assert!(token.hash().matches(&parsed));
        assert!(
            !Token::generate(&mut rand_core::OsRng)
                .hash()
                .matches(&parsed)
        );
        assert!(Token::parse("short").is_none());
        assert!(Token::parse(&format!("{text}A")).is_none());
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }
}
