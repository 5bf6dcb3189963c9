//! Ed25519 public keys and signatures as they travel on the wire.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256};

use super::KeyError;
use super::decoded;
use crate::base64url;

macro_rules! ed25519_public_key {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(VerifyingKey);

        impl $name {
            /// Reads 32 bytes, rejecting values that are not a curve point.
            pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
                decoded::decode(bytes)
                    .map(Self)
                    .ok_or(KeyError::InvalidPublicKey($field))
            }

            /// Reads the base64url wire form.
            pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
                let bytes = base64url::decode_array::<32>(text)
                    .map_err(|source| KeyError::Encoding { field: $field, source })?;
                Self::from_bytes(&bytes)
            }

            pub(crate) fn from_verifying_key(key: VerifyingKey) -> Self {
                Self(key)
            }

            /// The 32 raw bytes.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            /// The base64url wire form.
            pub fn to_base64url(&self) -> String {
                base64url::encode(self.0.as_bytes())
            }

            /// Verifies a signature with RFC 8032's strict rules: rejects
            /// small-order keys and non-canonical (malleable) signatures.
            pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
                self.0
                    .verify_strict(message, &signature.0)
                    .map_err(|_| KeyError::BadSignature)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_base64url())
            }
        }
    };
}

ed25519_public_key! {
    /// A per-site identity public key: `idk` (current) or `pidk` (previous).
    IdentityKey, "idk"
}

impl IdentityKey {
    /// A short text for people to compare, e.g. what the `sqrl` client prints
    /// against what a site's account page shows: the first 16 bytes of the
    /// SHA-256 of the 32 key bytes, in lower-case hex, in eight groups of four
    /// digits separated by single spaces (`21fe 31df a154 ...`, 39 characters).
    /// Both sides compute it from the per-site key alone, so equal texts mean
    /// the site holds this identity for this site.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.to_bytes());
        let mut out = String::with_capacity(39);
        for (index, byte) in digest.iter().take(16).enumerate() {
            if index > 0 && index % 2 == 0 {
                out.push(' ');
            }
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The Verify Unlock Key a server stores to check `urs` signatures.
///
/// Kept as its 32 bytes: a server reads it with every account record but
/// checks a `urs` signature only for the rare request that needs the unlock
/// keys, so the curve point is decoded (about a tenth of a signature check)
/// only then.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyUnlockKey([u8; 32]);

impl VerifyUnlockKey {
    /// Reads 32 bytes, rejecting values that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(|_| Self(*bytes))
            .map_err(|_| KeyError::InvalidPublicKey("vuk"))
    }

    /// Takes 32 bytes a store kept after [`Self::from_bytes`] accepted them,
    /// without decoding them again; [`Self::verify`] still refuses bytes
    /// that are not a curve point.
    pub fn from_stored_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the base64url wire form.
    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        let bytes = base64url::decode_array::<32>(text).map_err(|source| KeyError::Encoding {
            field: "vuk",
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    pub(crate) fn from_verifying_key(key: VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The base64url wire form.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.0)
    }

    /// Verifies a signature with RFC 8032's strict rules: rejects
    /// small-order keys and non-canonical (malleable) signatures.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| KeyError::InvalidPublicKey("vuk"))?
            .verify_strict(message, &signature.0)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl core::fmt::Debug for VerifyUnlockKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VerifyUnlockKey({})", self.to_base64url())
    }
}

/// A 64-byte Ed25519 signature (`ids`, `pids`, `urs`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(ed25519_dalek::Signature);

impl Signature {
    /// Wraps 64 raw bytes. Whether they form a valid signature is decided by
    /// verification.
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        Self(ed25519_dalek::Signature::from_bytes(bytes))
    }

    /// Reads the base64url wire form (86 characters).
    pub fn from_base64url(text: &str, field: &'static str) -> Result<Self, KeyError> {
        let bytes = base64url::decode_array::<64>(text)
            .map_err(|source| KeyError::Encoding { field, source })?;
        Ok(Self::from_bytes(&bytes))
    }

    pub(crate) fn from_dalek(signature: ed25519_dalek::Signature) -> Self {
        Self(signature)
    }

    /// The 64 raw bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    /// The base64url wire form.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.0.to_bytes())
    }
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signature({})", self.to_base64url())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_an_independent_computation() {
        // RFC 8032 test 1 public key; expected value from Python:
        // h = hashlib.sha256(bytes.fromhex(KEY)).hexdigest()[:32]
        // " ".join(h[i:i+4] for i in range(0, 32, 4))
        let key =
            IdentityKey::from_base64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(key.fingerprint(), "21fe 31df a154 a261 626b f854 046f d227");
    }

    /// The group order L, little-endian: adding it to a signature's `s`
    /// gives another encoding of the same scalar.
    const GROUP_ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    #[test]
    fn a_small_order_key_verifies_nothing() {
        // The neutral point as the key, R = the neutral point and s = 0:
        // [s]B - [k]A = R for every message, so the plain (cofactorless)
        // equation holds for any message at all.
        let mut neutral = [0u8; 32];
        neutral[0] = 1;
        let mut trivial = [0u8; 64];
        trivial[0] = 1;
        let plain = ed25519_dalek::VerifyingKey::from_bytes(&neutral).unwrap();
        assert!(
            ed25519_dalek::Verifier::verify(
                &plain,
                b"any message",
                &ed25519_dalek::Signature::from_bytes(&trivial)
            )
            .is_ok(),
            "the plain check accepts it (else this test shows nothing)"
        );
        let key = IdentityKey::from_bytes(&neutral).unwrap();
        assert!(matches!(
            key.verify(b"any message", &Signature::from_bytes(&trivial)),
            Err(KeyError::BadSignature)
        ));
    }

    #[test]
    fn a_signature_whose_s_is_not_reduced_verifies_nothing() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let key = IdentityKey::from_verifying_key(signing.verifying_key());
        let good = ed25519_dalek::Signer::sign(&signing, b"query").to_bytes();
        key.verify(b"query", &Signature::from_bytes(&good)).unwrap();
        // s + L: the same scalar, a second valid-looking signature for the
        // same message (malleability), which a strict check refuses.
        let mut malleated = good;
        let mut carry = 0u16;
        for (byte, order) in malleated[32..].iter_mut().zip(GROUP_ORDER) {
            let sum = u16::from(*byte) + u16::from(order) + carry;
            *byte = sum.to_le_bytes()[0];
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + L fits in 32 bytes");
        assert!(matches!(
            key.verify(b"query", &Signature::from_bytes(&malleated)),
            Err(KeyError::BadSignature)
        ));
    }

    #[test]
    fn a_stored_vuk_that_is_no_curve_point_verifies_nothing() {
        // The first small y whose encoding is not on the curve.
        let not_a_point = (2u8..=255)
            .map(|y| {
                let mut bytes = [0; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        assert!(VerifyUnlockKey::from_bytes(&not_a_point).is_err());
        let stored = VerifyUnlockKey::from_stored_bytes(not_a_point);
        let signature = Signature::from_bytes(&[0; 64]);
        assert!(matches!(
            stored.verify(b"message", &signature),
            Err(KeyError::InvalidPublicKey("vuk"))
        ));
    }

    #[test]
    fn a_stored_vuk_verifies_as_the_one_read_from_the_wire() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let wire = VerifyUnlockKey::from_verifying_key(signing.verifying_key());
        let stored = VerifyUnlockKey::from_stored_bytes(wire.to_bytes());
        assert_eq!(stored, wire);
        let signature = Signature::from_dalek(ed25519_dalek::Signer::sign(&signing, b"urs"));
        stored.verify(b"urs", &signature).unwrap();
        assert!(stored.verify(b"other", &signature).is_err());
    }
}
