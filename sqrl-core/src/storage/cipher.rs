//! AES-256-GCM as every S4 block uses it: detached 16-byte tag at the block's end,
//! the block's plaintext prefix as AAD (SPEC 5).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

/// GCM nonce length used by S4.
pub(crate) const IV_LEN: usize = 12;
/// GCM tag length used by S4.
pub(crate) const TAG_LEN: usize = 16;
/// The all-zero IV of the rescue and previous-keys blocks. Safe there because each
/// of their keys encrypts exactly one plaintext: a fresh salt (rescue block) or a
/// fresh IMK (previous keys, re-encrypted only under a new IMK at rekey).
pub(crate) const ZERO_IV: [u8; IV_LEN] = [0; IV_LEN];

/// Encrypts `buffer` in place and returns the tag.
pub(crate) fn seal(
    key: &[u8; 32],
    iv: &[u8; IV_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; TAG_LEN] {
    let cipher = Aes256Gcm::new(key.into());
    // AES-GCM only fails to encrypt beyond 2^36 bytes; S4 blocks are under 64 KiB.
    #[allow(clippy::expect_used)]
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(iv), aad, buffer)
        .expect("S4 block plaintexts are far below the AES-GCM length limit");
    tag.into()
}

/// Decrypts `buffer` in place if the tag authenticates it. On failure the buffer
/// holds its original ciphertext (aes-gcm checks the tag before decrypting).
pub(crate) fn open(
    key: &[u8; 32],
    iv: &[u8; IV_LEN],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), TagMismatch> {
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(iv), aad, buffer, Tag::from_slice(tag))
        .map_err(|_| TagMismatch)
}

/// The GCM tag did not authenticate: wrong key, or altered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagMismatch;

/// A stored encrypted block: its authenticated prefix, the ciphertext and the
/// tag, in that order (SPEC 5.1).
pub(super) fn sealed_bytes(aad: &[u8], ciphertext: &[u8], tag: &[u8]) -> Vec<u8> {
    [aad, ciphertext, tag].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_and_reject_changes() {
        let key = [7u8; 32];
        let mut buffer = *b"imk and ilk bytes";
        let tag = seal(&key, &ZERO_IV, b"aad", &mut buffer);
        let sealed = buffer;
        assert_ne!(&sealed, b"imk and ilk bytes");
        assert_eq!(open(&key, &ZERO_IV, b"aad", &mut buffer, &tag), Ok(()));
        assert_eq!(&buffer, b"imk and ilk bytes");

        let mut again = sealed;
        assert_eq!(
            open(&key, &ZERO_IV, b"aaD", &mut again, &tag),
            Err(TagMismatch)
        );
        assert_eq!(again, sealed, "a failed open leaves the ciphertext");
        assert_eq!(
            open(&[8u8; 32], &ZERO_IV, b"aad", &mut again, &tag),
            Err(TagMismatch)
        );
    }
}
