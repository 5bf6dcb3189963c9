//! Signing keys sealed at rest: with `[oidc] key_encryption_key_file`, each
//! private key is stored AES-256-GCM encrypted under a key that lives
//! outside the database (a file each instance reads at start-up), bound to
//! its key id and algorithm. A copy of the database alone — a backup, a
//! replica, a dump — then cannot sign an ID token.
//!
//! Sealed keys begin with [`MAGIC`]; an unsealed key is DER, which begins
//! with a SEQUENCE byte (`0x30`), so the two never mix up. Keys made before
//! the file was configured stay usable (and are said to be unsealed in the
//! log); a sealed key without the file, or with another file, is an error,
//! never a silent new key.

use aes_gcm::aead::{Aead as _, Payload};
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

/// What a sealed key begins with.
pub const MAGIC: &[u8] = b"sqrl-sealed-v1:";

const NONCE_LEN: usize = 12;

/// The key that seals signing keys. Wiped on drop, never printed.
#[derive(Clone)]
pub struct KeyEncryptionKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

impl KeyEncryptionKey {
    /// Reads the key from its file's text: 64 hexadecimal digits
    /// (`openssl rand -hex 32`), surrounding white space ignored.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.len() != 64 {
            return Err("must hold 64 hexadecimal digits (openssl rand -hex 32)");
        }
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = text
                .get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or("must hold 64 hexadecimal digits (openssl rand -hex 32)")?;
        }
        Ok(Self(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.0).into())
    }

    /// `der` sealed, bound to `kid` and `alg`.
    pub fn seal(&self, kid: &str, alg: &str, der: &[u8]) -> Result<Vec<u8>, &'static str> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = associated(kid, alg);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: der,
                    aad: &aad,
                },
            )
            .map_err(|_| "sealing failed")?;
        Ok([MAGIC, &nonce, &sealed].concat())
    }

    /// The DER of a sealed key, if this key sealed it for `kid` and `alg`.
    pub fn open(
        &self,
        kid: &str,
        alg: &str,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, &'static str> {
        let body = stored.strip_prefix(MAGIC).ok_or("not a sealed key")?;
        if body.len() < NONCE_LEN {
            return Err("sealed key too short");
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let aad = associated(kid, alg);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| "the key encryption key does not open this signing key")
    }
}

/// Whether a stored key is sealed.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
}

fn associated(kid: &str, alg: &str) -> Vec<u8> {
    [
        b"sqrl-oidc-signing-key\0",
        kid.as_bytes(),
        b"\0",
        alg.as_bytes(),
    ]
    .concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const KEK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_key_opens_only_with_its_key_for_its_kid_and_algorithm() {
        let kek = KeyEncryptionKey::parse(&format!("  {KEK}\n")).unwrap();
        let der = b"\x30\x82 private key bytes";
        let sealed = kek.seal("kid-1", "ES256", der).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(der.len()).any(|w| w == der));
        assert_eq!(kek.open("kid-1", "ES256", &sealed).unwrap().as_slice(), der);
        assert!(kek.open("kid-2", "ES256", &sealed).is_err());
        assert!(kek.open("kid-1", "RS256", &sealed).is_err());
        let other = KeyEncryptionKey::parse(&KEK.replace('0', "f")).unwrap();
        assert!(other.open("kid-1", "ES256", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(kek.open("kid-1", "ES256", &flipped).is_err());
        assert!(!is_sealed(der));
    }

    #[test]
    fn the_file_must_hold_64_hex_digits_and_is_never_printed() {
        for bad in [
            "",
            "abc",
            &KEK[..62],
            &format!("{KEK}00"),
            &KEK.replace('0', "g"),
        ] {
            assert!(KeyEncryptionKey::parse(bad).is_err(), "{bad:?}");
        }
        let kek = KeyEncryptionKey::parse(KEK).unwrap();
        assert!(!format!("{kek:?}").contains("0102"));
    }
}
