//! The master identity: IUK, and what derives from it without a site.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::{KeyError, ServerUnlockKey, SiteKey, UnlockRequestSigningKey};
use crate::enhash::enhash;
use crate::secret::secret_bytes;
use crate::url::SiteKeyString;

secret_bytes! {
    /// The Identity Unlock Key: the root secret of an identity, kept only under
    /// the rescue code. Used raw as an X25519 scalar (X25519 clamps internally;
    /// storing a clamped copy would change the IMK).
    pub struct IdentityUnlockKey([u8; 32]);
}

secret_bytes! {
    /// The Identity Master Key, `EnHash(IUK)`: the HMAC key of every per-site key.
    pub struct IdentityMasterKey([u8; 32]);
}

impl IdentityUnlockKey {
    /// Draws a fresh IUK from a cryptographic random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// `IMK = EnHash(IUK)`.
    pub fn master_key(&self) -> IdentityMasterKey {
        IdentityMasterKey::from_bytes(*enhash(self.as_bytes()))
    }

    /// `ILK = X25519(IUK, base point)`.
    pub fn lock_key(&self) -> IdentityLockKey {
        IdentityLockKey(x25519_dalek::x25519(
            *self.as_bytes(),
            x25519_dalek::X25519_BASEPOINT_BYTES,
        ))
    }

    /// The Unlock Request Signing key for an association whose SUK the server
    /// returned: seed `X25519(IUK, SUK)` (SPEC 4.4). Its signatures (`urs`) verify
    /// with the VUK the server stored at association time.
    pub fn unlock_request_signing_key(
        &self,
        suk: &ServerUnlockKey,
    ) -> Result<UnlockRequestSigningKey, KeyError> {
        let shared = Zeroizing::new(x25519_dalek::x25519(*self.as_bytes(), *suk.as_bytes()));
        UnlockRequestSigningKey::from_agreement(shared)
    }
}

impl IdentityMasterKey {
    /// The per-site key for a site key string: seed `HMAC-SHA256(IMK, site)`.
    pub fn site_key(&self, site: &SiteKeyString) -> SiteKey {
        SiteKey::derive(self, site)
    }
}

/// The Identity Lock Key, `X25519(IUK, base)`: lets a client create new
/// associations (SUK/VUK pairs) without the rescue code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityLockKey([u8; 32]);

impl IdentityLockKey {
    /// Wraps 32 bytes read from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw X25519 public point.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Not secret, but the same on every site the identity uses: printed in a log,
/// it would link the user's accounts across sites.
impl core::fmt::Debug for IdentityLockKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IdentityLockKey(<redacted>)")
    }
}
