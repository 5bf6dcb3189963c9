//! Per-site keys and indexed secrets.

use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{IdentityKey, IdentityMasterKey, Signature};
use crate::base64url;
use crate::enhash::enhash;
use crate::secret::secret_bytes;
use crate::url::SiteKeyString;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The Ed25519 key pair an identity uses at one site (SPEC 4.3).
pub struct SiteKey {
    seed: Zeroizing<[u8; 32]>,
    signing: ed25519_dalek::SigningKey,
}

impl SiteKey {
    pub(super) fn derive(imk: &IdentityMasterKey, site: &SiteKeyString) -> Self {
        let seed = hmac_sha256(imk.as_bytes(), &site.to_bytes());
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        Self { seed, signing }
    }

    /// The site's view of this identity: `idk` (or `pidk` for a previous identity).
    pub fn public_key(&self) -> IdentityKey {
        IdentityKey::from_verifying_key(self.signing.verifying_key())
    }

    /// Signs a request (`ids`, or `pids` for a previous identity).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature::from_dalek(self.signing.sign(message))
    }

    /// The indexed secret for a server's `sin`: `HMAC-SHA256(EnHash(seed), sin)` (SPEC 4.6).
    pub fn indexed_secret(&self, sin: &str) -> IndexedSecret {
        let key = enhash(&self.seed);
        IndexedSecret::from_bytes(*hmac_sha256(key.as_slice(), sin.as_bytes()))
    }
}

impl core::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SiteKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

secret_bytes! {
    /// An indexed secret (`ins`/`pins`): a stable per-site secret a server can ask
    /// for by index, e.g. to protect data it stores for the user.
    pub struct IndexedSecret([u8; 32]);
}

impl IndexedSecret {
    /// The wire form.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.as_bytes())
    }

    /// Reads the wire form.
    pub fn from_base64url(text: &str) -> Result<Self, super::KeyError> {
        let bytes = Zeroizing::new(base64url::decode_array::<32>(text).map_err(|source| {
            super::KeyError::Encoding {
                field: "ins",
                source,
            }
        })?);
        Ok(Self::from_bytes(*bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::IdentityUnlockKey;

    #[test]
    fn debug_shows_the_public_key_and_never_the_seed() {
        let key = IdentityUnlockKey::from_bytes([7; 32])
            .master_key()
            .site_key(&SiteKeyString::new("example.com"));
        let printed = format!("{key:?}");
        assert!(
            printed.contains(&key.public_key().to_base64url()),
            "{printed}"
        );
        crate::keys::tests::assert_hidden(&printed, &key.seed);
    }
}
