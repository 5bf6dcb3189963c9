//! The identity lock (SPEC 4.4): lets a client prove, with the rescue code only,
//! that it owns an association, while everyday logins never touch the IUK.

use ed25519_dalek::Signer as _;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::{IdentityLockKey, KeyError, Signature, VerifyUnlockKey};
use crate::base64url;
use crate::secret::secret_bytes;

secret_bytes! {
    /// The Random Lock Key: fresh for every new site association, used once to make
    /// the SUK/VUK pair, then discarded.
    pub struct RandomLockKey([u8; 32]);
}

impl RandomLockKey {
    /// Draws a fresh RLK.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// Makes the pair a server stores for a new association and consumes the RLK:
    /// `SUK = X25519(RLK, base)`, `VUK = Ed25519 public key of seed X25519(RLK, ILK)`.
    pub fn lock(
        self,
        ilk: &IdentityLockKey,
    ) -> Result<(ServerUnlockKey, VerifyUnlockKey), KeyError> {
        let suk = ServerUnlockKey(x25519_dalek::x25519(
            *self.as_bytes(),
            x25519_dalek::X25519_BASEPOINT_BYTES,
        ));
        let shared = Zeroizing::new(x25519_dalek::x25519(*self.as_bytes(), *ilk.as_bytes()));
        let ursk = UnlockRequestSigningKey::from_agreement(shared)?;
        Ok((suk, ursk.verify_unlock_key()))
    }

    /// The agreement value `X25519(RLK, ILK)` (DHKA): exposed so published
    /// identity-lock vectors can be checked; protocol code uses [`Self::lock`].
    pub fn agreement(&self, ilk: &IdentityLockKey) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(x25519_dalek::x25519(*self.as_bytes(), *ilk.as_bytes()))
    }
}

/// The Server Unlock Key: an X25519 public point the server stores and returns to
/// the client when it needs to sign with its rescue code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerUnlockKey([u8; 32]);

impl ServerUnlockKey {
    /// Wraps 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the base64url wire form.
    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        base64url::decode_array::<32>(text)
            .map(Self)
            .map_err(|source| KeyError::Encoding {
                field: "suk",
                source,
            })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64url wire form.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.0)
    }
}

impl core::fmt::Debug for ServerUnlockKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ServerUnlockKey({})", self.to_base64url())
    }
}

/// The Unlock Request Signing Key: signs `urs`. Rebuilt from the IUK (so from the
/// rescue code) and the server's SUK whenever a privileged command needs it.
pub struct UnlockRequestSigningKey(ed25519_dalek::SigningKey);

impl UnlockRequestSigningKey {
    pub(super) fn from_agreement(shared: Zeroizing<[u8; 32]>) -> Result<Self, KeyError> {
        if shared.iter().all(|b| *b == 0) {
            return Err(KeyError::LowOrderPoint);
        }
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&shared)))
    }

    /// The VUK that verifies this key's signatures.
    pub fn verify_unlock_key(&self) -> VerifyUnlockKey {
        VerifyUnlockKey::from_verifying_key(self.0.verifying_key())
    }

    /// Signs a request (`urs`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature::from_dalek(self.0.sign(message))
    }
}

impl core::fmt::Debug for UnlockRequestSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnlockRequestSigningKey")
            .field("vuk", &self.verify_unlock_key())
            .finish_non_exhaustive()
    }
}
