//! The SQRL key hierarchy (SPEC 4.3–4.6).
//!
//! ```text
//! IUK ──EnHash──▶ IMK ──HMAC(site)──▶ site seed ──Ed25519──▶ IDK (per site)
//!  │                                      └──EnHash──▶ HMAC(sin) ──▶ INS
//!  └──X25519 base──▶ ILK ──X25519(RLK)──▶ DHKA ──Ed25519──▶ VUK
//!                    RLK ──X25519 base──▶ SUK ──X25519(IUK)──▶ DHKA ──▶ URSK
//! ```
//!
//! Every secret here zeroizes on drop, compares in constant time and prints as
//! `<redacted>`.

mod identity;
mod lock;
mod public;
mod site;

pub use identity::{IdentityLockKey, IdentityMasterKey, IdentityUnlockKey};
pub use lock::{RandomLockKey, ServerUnlockKey, UnlockRequestSigningKey};
pub use public::{IdentityKey, Signature, VerifyUnlockKey};
pub use site::{IndexedSecret, SiteKey};

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key does not decode to the 32 bytes it must have.
    #[error("{field}: {source}")]
    Encoding {
        /// Which key field.
        field: &'static str,
        /// The decoding failure.
        source: crate::base64url::Base64Error,
    },
    /// 32 bytes that are not a valid Ed25519 public key.
    #[error("{0} is not a valid Ed25519 public key")]
    InvalidPublicKey(&'static str),
    /// An X25519 agreement produced the all-zero value: the peer's point has low
    /// order, so the "shared" secret would be public.
    #[error("X25519 agreement with a low-order point")]
    LowOrderPoint,
    /// A signature did not verify (strict RFC 8032 rules, no malleability).
    #[error("signature verification failed")]
    BadSignature,
}
