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

mod decoded;
mod identity;
mod lock;
mod public;
mod signer;
mod site;

pub use identity::{IdentityLockKey, IdentityMasterKey, IdentityUnlockKey};
pub use lock::{RandomLockKey, ServerUnlockKey, UnlockRequestSigningKey};
pub use public::{IdentityKey, Signature, VerifyUnlockKey};
pub use signer::{BoundUrsSigner, RequestSigner, SignerError, SiteSigner, UrsSigner};
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::base64url;
    use base64::Engine;

    /// Every way the 32 bytes could show up in text.
    fn encodings(bytes: &[u8; 32]) -> Vec<String> {
        let hex_lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        vec![
            hex_lower.clone(),
            hex_lower.to_uppercase(),
            base64url::encode(bytes),
            base64::engine::general_purpose::STANDARD.encode(bytes),
            // `[12, 34, ...]`, as a derived Debug of an array prints it.
            format!("{:?}", &bytes[..4])
                .trim_end_matches(']')
                .to_owned(),
        ]
    }

    pub(super) fn assert_hidden(printed: &str, bytes: &[u8; 32]) {
        for encoded in encodings(bytes) {
            assert!(
                !printed.contains(&encoded),
                "{printed:?} contains {encoded:?}"
            );
        }
    }

    #[test]
    fn debug_prints_no_key_material() {
        let bytes: [u8; 32] = core::array::from_fn(|i| 0xA0 ^ (i as u8 * 7));
        let iuk = IdentityUnlockKey::from_bytes(bytes);
        assert_hidden(&format!("{iuk:?}"), iuk.as_bytes());
        let imk = iuk.master_key();
        assert_hidden(&format!("{imk:?}"), imk.as_bytes());
        let ilk = iuk.lock_key();
        assert_eq!(format!("{ilk:?}"), "IdentityLockKey(<redacted>)");
        assert_hidden(&format!("{ilk:?}"), ilk.as_bytes());
        let rlk = RandomLockKey::from_bytes(bytes);
        assert_hidden(&format!("{rlk:?}"), &bytes);
        let ins = IndexedSecret::from_bytes(bytes);
        assert_hidden(&format!("{ins:?}"), &bytes);
    }

    /// The check above must be able to fail: an encoded key is found.
    #[test]
    fn the_check_finds_printed_keys() {
        let bytes = [0x5A; 32];
        for encoded in encodings(&bytes) {
            let printed = format!("Key({encoded})");
            let caught = std::panic::catch_unwind(|| assert_hidden(&printed, &bytes));
            assert!(caught.is_err(), "{encoded} not caught");
        }
    }
}
