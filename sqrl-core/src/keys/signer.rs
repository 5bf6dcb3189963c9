//! Signing without holding the private key.
//!
//! A transaction needs three things from an identity's secret keys: Ed25519
//! signatures over the request (`ids`, `pids`, `urs`, SPEC 2.4), the public
//! keys they verify with (`idk`, `pidk`), and indexed secrets (`ins`/`pins`,
//! SPEC 4.6). These traits ask for exactly that, so the key itself may stay
//! in another process (the `sqrl agent`, like ssh-agent) and only signatures
//! and public values cross over. [`SiteKey`] and [`IdentityUnlockKey`]
//! implement them directly for a client that holds its keys.
//!
//! A signer that is elsewhere can fail (it stopped, it was locked), so each
//! operation returns a [`SignerError`]; the in-process keys never do, except
//! where the server's input rules the key out (a low-order SUK).

use super::{IdentityKey, IdentityUnlockKey, IndexedSecret, KeyError, ServerUnlockKey, Signature};
use super::{SiteKey, UnlockRequestSigningKey};

/// Why a signer gave no signature or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The key cannot be made from what the server sent (e.g. its SUK is a
    /// low-order point).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A signer outside this process did not answer as asked; the text says why.
    #[error("{0}")]
    Unavailable(String),
}

/// Signs request messages with one Ed25519 key.
pub trait RequestSigner: core::fmt::Debug + Send + Sync {
    /// Signs `message` (the bytes of SPEC 2.4).
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError>;
}

/// An identity's key at one site: signs `ids` (or `pids`), and makes the
/// site's indexed secrets (SPEC 4.3, 4.6).
pub trait SiteSigner: RequestSigner {
    /// The public key the site sees (`idk`, or `pidk` for a previous identity).
    /// Known up front, so that building a request needs no signer round trip.
    fn public_key(&self) -> IdentityKey;

    /// The indexed secret for the server's `sin`.
    fn indexed_secret(&self, sin: &str) -> Result<IndexedSecret, SignerError>;
}

/// Signs `urs` for an identity: with the key made from its IUK and the SUK a
/// site returned (SPEC 4.4), for `enable`, `remove`, or an `ident` that moves
/// an association from a previous identity.
pub trait UrsSigner: core::fmt::Debug + Send + Sync {
    /// Signs `message` with the Unlock Request Signing Key for `suk`.
    fn sign_urs(&self, suk: &ServerUnlockKey, message: &[u8]) -> Result<Signature, SignerError>;
}

impl RequestSigner for SiteKey {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        Ok(SiteKey::sign(self, message))
    }
}

impl SiteSigner for SiteKey {
    fn public_key(&self) -> IdentityKey {
        SiteKey::public_key(self)
    }

    fn indexed_secret(&self, sin: &str) -> Result<IndexedSecret, SignerError> {
        Ok(SiteKey::indexed_secret(self, sin))
    }
}

impl RequestSigner for UnlockRequestSigningKey {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        Ok(UnlockRequestSigningKey::sign(self, message))
    }
}

impl UrsSigner for IdentityUnlockKey {
    fn sign_urs(&self, suk: &ServerUnlockKey, message: &[u8]) -> Result<Signature, SignerError> {
        Ok(self.unlock_request_signing_key(suk)?.sign(message))
    }
}

impl<T: RequestSigner + ?Sized> RequestSigner for Box<T> {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        (**self).sign(message)
    }
}

impl<T: SiteSigner + ?Sized> SiteSigner for Box<T> {
    fn public_key(&self) -> IdentityKey {
        (**self).public_key()
    }

    fn indexed_secret(&self, sin: &str) -> Result<IndexedSecret, SignerError> {
        (**self).indexed_secret(sin)
    }
}

impl<T: UrsSigner + ?Sized> UrsSigner for Box<T> {
    fn sign_urs(&self, suk: &ServerUnlockKey, message: &[u8]) -> Result<Signature, SignerError> {
        (**self).sign_urs(suk, message)
    }
}

/// A [`UrsSigner`] bound to the SUK of one reply: what signs `urs` on a
/// request to that site.
#[derive(Debug)]
pub struct BoundUrsSigner {
    suk: ServerUnlockKey,
    signer: Box<dyn UrsSigner>,
}

impl BoundUrsSigner {
    /// Binds `signer` to `suk`.
    pub fn new(suk: ServerUnlockKey, signer: Box<dyn UrsSigner>) -> Self {
        Self { suk, signer }
    }
}

impl RequestSigner for BoundUrsSigner {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        self.signer.sign_urs(&self.suk, message)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::keys::RandomLockKey;
    use crate::url::SiteKeyString;

    #[test]
    fn a_site_key_signs_as_a_signer_as_it_does_itself() {
        let imk = IdentityUnlockKey::from_bytes([7; 32]).master_key();
        let site = SiteKeyString::new("example.com");
        let key = imk.site_key(&site);
        let signer: Box<dyn SiteSigner> = Box::new(imk.site_key(&site));
        assert_eq!(signer.public_key(), key.public_key());
        let signature = signer.sign(b"message").unwrap();
        key.public_key().verify(b"message", &signature).unwrap();
        assert_eq!(
            signer.indexed_secret("sin0").unwrap(),
            key.indexed_secret("sin0")
        );
    }

    #[test]
    fn an_unlock_key_signs_urs_that_the_stored_vuk_verifies() {
        let iuk = IdentityUnlockKey::from_bytes([9; 32]);
        let (suk, vuk) = RandomLockKey::from_bytes([3; 32])
            .lock(&iuk.lock_key())
            .unwrap();
        let bound = BoundUrsSigner::new(suk, Box::new(iuk.clone()));
        let signature = bound.sign(b"client||server").unwrap();
        vuk.verify(b"client||server", &signature).unwrap();
        // Another identity's IUK makes a signature this VUK refuses.
        let other = BoundUrsSigner::new(suk, Box::new(IdentityUnlockKey::from_bytes([8; 32])));
        let wrong = other.sign(b"client||server").unwrap();
        assert!(vuk.verify(b"client||server", &wrong).is_err());
    }

    #[test]
    fn a_low_order_suk_is_a_key_error_not_a_signature() {
        let iuk = IdentityUnlockKey::from_bytes([9; 32]);
        let zero = ServerUnlockKey::from_bytes([0; 32]);
        assert_eq!(
            iuk.sign_urs(&zero, b"m"),
            Err(SignerError::Key(KeyError::LowOrderPoint))
        );
    }
}
