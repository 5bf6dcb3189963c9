//! Indexed secrets (SPEC 3 `sin`, 4.6 `ins`/`pins`): what the service keeps.
//!
//! The protocol rules are `sqrl_core::server`'s ([`sqrl_core::server::Policy::with_sin`]):
//! with a `sin` configured every reply carries it, the next request must
//! answer with `ins = HMAC-SHA256(EnHash(site seed), sin)` (plus `pins` from
//! the previous identity when it names one), and a command that may change
//! state must answer one. What is left to the service is storage:
//!
//! * the first `ins` an identity presents for a `sin` is stored (trust on
//!   first use), by a successful command that may change state: a `query`
//!   never does (PITFALLS 28);
//! * every later answer to the same `sin` must match it, compared in constant
//!   time; otherwise the request is refused with
//!   `Decision::into_client_failure(Failure::IndexedSecretMismatch)` (the
//!   core picks the TIF) and nothing changes;
//! * an identity replacement (`ident` with `pidk`, SPEC 4.5) must present the
//!   retired identity's secret as `pins`; the new identity's `ins` then takes
//!   its place, so the account carries its secret forward to the new key.
//!
//! Why check it at all, when `ids` already proves the identity: `ids` proves
//! that the client can *sign* with the per-site key, `ins` that it holds the
//! per-site *seed* the key came from (SPEC 4.6) and derives from it exactly as
//! before. A client that derives `ins` wrongly (PITFALLS 15) or a signer that
//! holds only the expanded signing key is refused rather than silently
//! handed whatever the site protects with the secret.
//!
//! Only a SHA-256 digest is stored: the service compares secrets and never
//! uses one as a key, so a database leak reveals no user's secret.

use sha2::{Digest as _, Sha256};
use sqrl_core::base64url;
use sqrl_core::keys::{IdentityKey, IndexedSecret};
use sqrl_core::server::{Decision, Lookups, Mutation, Records};
use subtle::ConstantTimeEq as _;

/// SHA-256 of an indexed secret: what the store keeps and compares.
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

impl core::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretDigest({}..)", base64url::encode(&self.0[..6]))
    }
}

/// What one request step does with the indexed secret it presented. The
/// store applies it in the step's transaction: [`SecretStep::holder`] is
/// checked before anything is written.
#[derive(Debug, Clone)]
pub struct SecretStep {
    /// The `sin` the secrets answer.
    pub sin: String,
    /// The key the account is stored under before this step, and the secret
    /// presented for it: the request's `idk` with `ins`, or, when only the
    /// previous identity is known, its `pidk` with `pins`. When a secret is
    /// stored for that key and `sin` and differs, the step fails.
    pub holder: Option<(IdentityKey, SecretDigest)>,
    /// Whether the holder's secret is stored when none is yet (a successful
    /// command that keeps the association: `ident` of a known identity,
    /// `disable`, `enable`).
    pub remember: bool,
    /// A new association made by this step (`Create`, `Replace`) and its
    /// `ins`: stored for the new key, replacing whatever the account held.
    pub successor: Option<(IdentityKey, SecretDigest)>,
}

impl SecretStep {
    /// The plan for a decision: `None` when there is nothing to check or
    /// store (no `sin` answered, or a request that failed anyway and so
    /// changes nothing). The core has already refused a state-changing
    /// command that answered no `sin`.
    pub fn plan(decision: &Decision, records: &Records, lookups: Option<&Lookups>) -> Option<Self> {
        if !decision.is_success() {
            return None;
        }
        let (Some(secrets), Some(lookups)) = (decision.indexed_secrets(), lookups) else {
            return None;
        };
        // The account the request acts on, by the rule `sqrl_core::server`
        // applies: the current identity's, else the previous one's (SPEC 4.5).
        let holder = if records.current.is_some() {
            Some((lookups.idk, SecretDigest::of(&secrets.ins)))
        } else if records.previous.is_some() {
            lookups
                .pidk
                .zip(secrets.pins.as_ref().map(SecretDigest::of))
        } else {
            None
        };
        let (remember, successor) = match decision.mutation() {
            Mutation::Create { idk, .. } | Mutation::Replace { idk, .. } => {
                (false, Some((*idk, SecretDigest::of(&secrets.ins))))
            }
            Mutation::SetOptions { .. } | Mutation::Disable { .. } | Mutation::Enable { .. } => {
                (true, None)
            }
            // `query` (no change) and `remove` (the association goes, and its
            // secret with it).
            _ => (false, None),
        };
        Some(Self {
            sin: secrets.sin.clone(),
            holder,
            remember,
            successor,
        })
    }
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
        let stored = SecretDigest::from_slice(SecretDigest::of(&a).as_bytes()).unwrap();
        assert!(stored.matches(&SecretDigest::of(&a)));
        assert!(SecretDigest::from_slice(&[0; 31]).is_none());
        let shown = format!("{stored:?}");
        assert!(!shown.contains(&base64url::encode(a.as_bytes())));
        assert!(!shown.contains(&base64url::encode(stored.as_bytes())));
    }
}
