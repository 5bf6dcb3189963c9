//! Indexed secrets (SPEC 3 `sin`, 4.6 `ins`/`pins`): what a server keeps of
//! them, and the rule that decides when a presented one is kept or refused.
//!
//! With a `sin` configured ([`super::Policy::with_sin`]) every reply carries
//! it, the next request must answer with `ins = HMAC-SHA256(EnHash(site
//! seed), sin)` (plus `pins` from the previous identity when it names one),
//! and a command that may change state must answer one. What the server
//! keeps, decided by [`super::Incoming::decide`] from the digests the driver
//! read into [`super::Records`]:
//!
//! * the first `ins` an identity presents for a `sin` is kept (trust on first
//!   use) by a successful command that keeps the association (`ident` of a
//!   known identity, `disable`, `enable`): a `query` never writes (PITFALLS
//!   28);
//! * every later answer to the same `sin` must match it, compared in
//!   constant time; otherwise the request fails with TIF 0xC0 plus the state
//!   known before the command ([`super::Failure::IndexedSecretMismatch`])
//!   and nothing changes;
//! * a new association (`ident` of an unknown identity, or an identity
//!   replacement, SPEC 4.5) keeps its `ins`. A replacement must first present
//!   the retired identity's secret as `pins`; the new identity's `ins` then
//!   takes its place, so the account carries its secret forward to the new
//!   key.
//!
//! Why check it at all, when `ids` already proves the identity: `ids` proves
//! that the client can *sign* with the per-site key, `ins` that it holds the
//! per-site *seed* the key came from (SPEC 4.6) and derives from it exactly as
//! before. A client that derives `ins` wrongly (PITFALLS 15) or a signer that
//! holds only the expanded signing key is refused rather than silently
//! handed whatever the site protects with the secret.
//!
//! Only a SHA-256 digest is kept: the server compares secrets and never uses
//! one as a key, so a leak of its storage reveals no user's secret.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::account::{Lookups, Mutation, Records};
use super::decision::IndexedSecrets;
use crate::base64url;
use crate::keys::{IdentityKey, IndexedSecret};

/// SHA-256 of an indexed secret: what a server keeps and compares. Equality
/// is constant time.
#[derive(Clone, Copy)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of a presented secret.
    pub fn of(secret: &IndexedSecret) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps a stored digest; `None` unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw digest, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether both digests are equal, in constant time.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl PartialEq for SecretDigest {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for SecretDigest {}

impl core::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A prefix tells digests apart in a log without handing out the whole.
        write!(f, "SecretDigest({}..)", base64url::encode(&self.0[..6]))
    }
}

/// What a request keeps of the indexed secret it presented: part of the
/// decision, applied by the driver together with the [`Mutation`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretWrite {
    /// The first secret an existing association presents for `sin`: keep
    /// `digest` for `idk` unless a digest is already kept for both (a
    /// concurrent request kept one first; the first one stays).
    Remember {
        /// The key the account is stored under.
        idk: IdentityKey,
        /// The `sin` the secret answers.
        sin: String,
        /// The secret's digest.
        digest: SecretDigest,
    },
    /// A new association ([`Mutation::Create`], [`Mutation::Replace`]):
    /// whatever `idk` holds is replaced by this one digest. The secrets a
    /// replaced identity held were derived from the retired key, so they go.
    Establish {
        /// The new association's key.
        idk: IdentityKey,
        /// The `sin` the secret answers.
        sin: String,
        /// The digest of its `ins`.
        digest: SecretDigest,
    },
}

/// The account a request acts on, as far as indexed secrets go: the key it is
/// stored under and the digest kept for it. Taken from the records before the
/// decision consumes them.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    idk: IdentityKey,
    /// Whether the account is the previous identity's (its secret is `pins`).
    previous: bool,
    stored: Option<SecretDigest>,
}

impl Holder {
    /// The request's `idk` when its account exists, else its `pidk` when that
    /// one's does: the rule [`super::Incoming::decide`] applies to the
    /// account itself (SPEC 4.5).
    pub(super) fn of(records: &Records, lookups: Option<&Lookups>) -> Option<Self> {
        let lookups = lookups?;
        if records.current.is_some() {
            return Some(Self {
                idk: lookups.idk,
                previous: false,
                stored: records.current_secret,
            });
        }
        match (&records.previous, lookups.pidk) {
            (Some(_), Some(pidk)) => Some(Self {
                idk: pidk,
                previous: true,
                stored: records.previous_secret,
            }),
            _ => None,
        }
    }
}

/// The presented secret differs from the one kept: the request is refused.
#[derive(Debug)]
pub(super) struct Mismatch;

/// Checks the presented secrets against the kept digest and says what to keep
/// (if anything), for a decision that succeeded with `mutation`.
pub(super) fn judge(
    secrets: &IndexedSecrets,
    holder: Option<&Holder>,
    mutation: &Mutation,
) -> Result<Option<SecretWrite>, Mismatch> {
    let presented = holder.and_then(|holder| {
        if holder.previous {
            secrets.pins.as_ref().map(SecretDigest::of)
        } else {
            Some(SecretDigest::of(&secrets.ins))
        }
    });
    if let (Some(holder), Some(presented)) = (holder, &presented)
        && holder
            .stored
            .is_some_and(|stored| !stored.matches(presented))
    {
        return Err(Mismatch);
    }
    let sin = secrets.sin.clone();
    let write = match mutation {
        Mutation::Create { idk, .. } | Mutation::Replace { idk, .. } => {
            Some(SecretWrite::Establish {
                idk: *idk,
                sin,
                digest: SecretDigest::of(&secrets.ins),
            })
        }
        // Only while nothing is kept: a matching secret needs no write.
        Mutation::SetOptions { .. } | Mutation::Disable { .. } | Mutation::Enable { .. } => {
            match (holder, presented) {
                (Some(holder), Some(digest)) if holder.stored.is_none() => {
                    Some(SecretWrite::Remember {
                        idk: holder.idk,
                        sin,
                        digest,
                    })
                }
                _ => None,
            }
        }
        // `query` (no change) and `remove` (the association goes, and its
        // secrets with it).
        _ => None,
    };
    Ok(write)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_by_value_and_never_print_the_secret() {
        let a = IndexedSecret::from_bytes([7; 32]);
        let b = IndexedSecret::from_bytes([8; 32]);
        assert!(SecretDigest::of(&a).matches(&SecretDigest::of(&a)));
        assert!(!SecretDigest::of(&a).matches(&SecretDigest::of(&b)));
        assert_eq!(SecretDigest::of(&a), SecretDigest::of(&a));
        assert_ne!(SecretDigest::of(&a), SecretDigest::of(&b));
        let stored = SecretDigest::from_slice(SecretDigest::of(&a).as_bytes()).unwrap();
        assert!(stored.matches(&SecretDigest::of(&a)));
        assert!(SecretDigest::from_slice(&[0; 31]).is_none());
        let shown = format!("{stored:?}");
        assert!(!shown.contains(&base64url::encode(a.as_bytes())));
        assert!(!shown.contains(&base64url::encode(stored.as_bytes())));
    }
}
