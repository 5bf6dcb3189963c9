//! Type 3: previous IUKs (SPEC 5.3), the retired identities a client still needs so
//! that sites can move an account to the current one (SPEC 4.5).
//!
//! ```text
//! off   size  field
//!   0      2  length (6 + 32n + 16: 54, 86, 118 or 150)  ┐
//!   2      2  type (3)                                   │ AAD
//!   4      2  edition (number of rekeys so far)          ┘
//!   6    32n  encrypted PIUKs, newest first, n = 1..=4
//!   …     16  GCM tag
//! ```
//!
//! Key = the *current* IMK, IV = 12 zero bytes (safe: each IMK encrypts one edition).
//! Pre-v1 libsqrl wrote this block without the edition (length 4 + 32n + 16, 4-byte
//! AAD); such a block is refused by name rather than mis-read (PITFALLS 16).

use zeroize::Zeroizing;

use super::cipher::{self, TAG_LEN, ZERO_IV};
use super::reader::{FieldError, Reader};
use super::{BLOCK_TYPE_PREVIOUS, FormatError, StorageError};
use crate::keys::{IdentityMasterKey, IdentityUnlockKey};

/// Most previous IUKs an identity keeps; a fifth retired key is dropped.
pub const MAX_PREVIOUS_KEYS: usize = 4;
/// length, type, edition.
const AAD_LEN: usize = 6;
/// The pre-v1 libsqrl header: length, type (no edition).
const LEGACY_AAD_LEN: usize = 4;

/// Block length for `count` keys in the v1 layout.
fn v1_length(count: usize) -> usize {
    AAD_LEN + 32 * count + TAG_LEN
}

/// Whether `length` is the pre-v1 libsqrl layout for 1..=4 keys.
fn is_legacy_length(length: usize) -> bool {
    (1..=MAX_PREVIOUS_KEYS).any(|n| LEGACY_AAD_LEN + 32 * n + TAG_LEN == length)
}

/// A parsed type-3 block (still encrypted).
#[derive(Clone, PartialEq, Eq)]
pub struct PreviousKeysBlock {
    edition: u16,
    /// `32 * count` encrypted bytes.
    ciphertext: Vec<u8>,
    tag: [u8; TAG_LEN],
}

/// The decrypted contents of a type-3 block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousUnlockKeys {
    /// Number of rekeys so far (0 for an identity that never had a type-3 block).
    pub edition: u16,
    /// Retired IUKs, newest first; at most [`MAX_PREVIOUS_KEYS`].
    pub keys: Vec<IdentityUnlockKey>,
}

impl PreviousKeysBlock {
    /// Parses a whole type-3 block.
    pub fn parse(block: &[u8]) -> Result<Self, FormatError> {
        let length = u16::try_from(block.len()).unwrap_or(u16::MAX);
        if is_legacy_length(block.len()) {
            return Err(FormatError::LegacyPreviousKeysBlock { length });
        }
        let bad_length = FormatError::BadBlockLength {
            block_type: BLOCK_TYPE_PREVIOUS,
            length,
        };
        let count = (1..=MAX_PREVIOUS_KEYS)
            .find(|&n| v1_length(n) == block.len())
            .ok_or(bad_length.clone())?;
        let fields = |error: FieldError| error.in_block(BLOCK_TYPE_PREVIOUS);
        let mut r = Reader::new(block);
        let declared = r.u16_le("length").map_err(fields)?;
        let block_type = r.u16_le("type").map_err(fields)?;
        if usize::from(declared) != block.len() || block_type != BLOCK_TYPE_PREVIOUS {
            return Err(bad_length);
        }
        r.read_to_end(|r| {
            Ok(Self {
                edition: r.u16_le("edition")?,
                ciphertext: r.take("encrypted IUKs", 32 * count)?.to_vec(),
                tag: r.take_array("tag")?,
            })
        })
        .map_err(fields)
    }

    /// Writes the block exactly as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        cipher::sealed_bytes(&self.aad(), &self.ciphertext, &self.tag)
    }

    /// Number of rekeys so far, stored in clear.
    pub fn edition(&self) -> u16 {
        self.edition
    }

    /// Number of previous IUKs in the block.
    pub fn key_count(&self) -> usize {
        self.ciphertext.len() / 32
    }

    /// Decrypts the previous IUKs with the identity's current IMK.
    pub fn decrypt(&self, imk: &IdentityMasterKey) -> Result<PreviousUnlockKeys, StorageError> {
        let mut plain = Zeroizing::new(self.ciphertext.clone());
        cipher::open(
            imk.as_bytes(),
            &ZERO_IV,
            &self.aad(),
            plain.as_mut_slice(),
            &self.tag,
        )
        .map_err(|_| StorageError::PreviousKeysUndecryptable)?;
        let keys = plain
            .chunks_exact(32)
            .filter_map(|chunk| <[u8; 32]>::try_from(chunk).ok())
            .map(IdentityUnlockKey::from_bytes)
            .collect();
        Ok(PreviousUnlockKeys {
            edition: self.edition,
            keys,
        })
    }

    /// Encrypts up to [`MAX_PREVIOUS_KEYS`] previous IUKs (newest first; extra keys
    /// are dropped) under the current IMK. `None` when `keys` is empty: an identity
    /// without previous keys has no type-3 block.
    pub fn encrypt(
        imk: &IdentityMasterKey,
        edition: u16,
        keys: &[IdentityUnlockKey],
    ) -> Option<Self> {
        let kept = keys.get(..keys.len().min(MAX_PREVIOUS_KEYS))?;
        if kept.is_empty() {
            return None;
        }
        let mut plain = Zeroizing::new(Vec::with_capacity(32 * kept.len()));
        for key in kept {
            plain.extend_from_slice(key.as_bytes());
        }
        let mut block = Self {
            edition,
            ciphertext: Vec::new(),
            tag: [0; TAG_LEN],
        };
        // The AAD depends only on the edition and the length, both known now.
        block.ciphertext = vec![0; plain.len()];
        let aad = block.aad();
        block.tag = cipher::seal(imk.as_bytes(), &ZERO_IV, &aad, plain.as_mut_slice());
        block.ciphertext.copy_from_slice(&plain);
        Some(block)
    }

    fn aad(&self) -> [u8; AAD_LEN] {
        // At most 4 keys: the length is at most 150.
        let length = v1_length(self.key_count()) as u16;
        let mut out = [0u8; AAD_LEN];
        out[..2].copy_from_slice(&length.to_le_bytes());
        out[2..4].copy_from_slice(&BLOCK_TYPE_PREVIOUS.to_le_bytes());
        out[4..].copy_from_slice(&self.edition.to_le_bytes());
        out
    }
}

impl core::fmt::Debug for PreviousKeysBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreviousKeysBlock")
            .field("edition", &self.edition)
            .field("key_count", &self.key_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<IdentityUnlockKey> {
        (1..=n)
            .map(|i| IdentityUnlockKey::from_bytes([i; 32]))
            .collect()
    }

    #[test]
    fn lengths_by_key_count_and_round_trip() {
        let imk = IdentityUnlockKey::from_bytes([42; 32]).master_key();
        for (n, length) in [(1u8, 54usize), (2, 86), (3, 118), (4, 150)] {
            let block = PreviousKeysBlock::encrypt(&imk, 7, &keys(n)).unwrap();
            let bytes = block.to_bytes();
            assert_eq!(bytes.len(), length);
            assert_eq!(bytes[..6], [length as u8, 0, 3, 0, 7, 0]);
            let parsed = PreviousKeysBlock::parse(&bytes).unwrap();
            assert_eq!(parsed, block);
            let opened = parsed.decrypt(&imk).unwrap();
            assert_eq!(opened.edition, 7);
            assert_eq!(opened.keys, keys(n));
        }
        // A fifth key is dropped; none at all means no block.
        let block = PreviousKeysBlock::encrypt(&imk, 1, &keys(5)).unwrap();
        assert_eq!(block.decrypt(&imk).unwrap().keys, keys(4));
        assert!(PreviousKeysBlock::encrypt(&imk, 1, &[]).is_none());
    }

    #[test]
    fn edition_is_authenticated_and_key_must_match() {
        let imk = IdentityUnlockKey::from_bytes([42; 32]).master_key();
        let other = IdentityUnlockKey::from_bytes([43; 32]).master_key();
        let mut bytes = PreviousKeysBlock::encrypt(&imk, 2, &keys(2))
            .unwrap()
            .to_bytes();
        let parsed = PreviousKeysBlock::parse(&bytes).unwrap();
        assert_eq!(
            parsed.decrypt(&other).unwrap_err(),
            StorageError::PreviousKeysUndecryptable
        );
        bytes[4] = 3;
        let bumped = PreviousKeysBlock::parse(&bytes).unwrap();
        assert_eq!(
            bumped.decrypt(&imk).unwrap_err(),
            StorageError::PreviousKeysUndecryptable
        );
    }

    #[test]
    fn legacy_libsqrl_layout_is_named() {
        // PITFALLS 16: 148 bytes = 4 + 4*32 + 16, no edition.
        let mut legacy = vec![148, 0, 3, 0];
        legacy.resize(148, 0xAB);
        assert_eq!(
            PreviousKeysBlock::parse(&legacy),
            Err(FormatError::LegacyPreviousKeysBlock { length: 148 })
        );
        let mut odd = vec![100, 0, 3, 0];
        odd.resize(100, 0);
        assert_eq!(
            PreviousKeysBlock::parse(&odd),
            Err(FormatError::BadBlockLength {
                block_type: 3,
                length: 100
            })
        );
    }
}
