//! Type 2: the rescue-code block (SPEC 5.2), holding the IUK under a key EnScrypted
//! from the 24-digit rescue code.
//!
//! ```text
//! off size field
//!   0    2 length (73)          ┐
//!   2    2 type (2)             │ AAD = bytes[0..25]
//!   4   16 EnScrypt salt        │
//!  20    1 EnScrypt log2(N)     │
//!  21    4 EnScrypt iterations  ┘
//!  25   32 encrypted IUK
//!  57   16 GCM tag
//! ```
//!
//! The IV is all zeros, which is only safe because the block is never re-encrypted
//! under the same key: it changes only by rekeying, with a new salt and code.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::cipher::{self, TAG_LEN, ZERO_IV};
use super::password_block::{derive, read_kdf_params};
use super::reader::{FieldError, Reader};
use super::{
    BLOCK_TYPE_RESCUE, FormatError, KdfCost, KdfStage, ProgressFn, RescueCode, StorageError,
};
use crate::enscrypt::{self, EnScryptParams};
use crate::keys::IdentityUnlockKey;

/// Length of a type-2 block.
pub(crate) const RESCUE_BLOCK_LEN: u16 = 73;
/// The authenticated prefix: length, type, salt, log2(N), iterations.
const AAD_LEN: usize = 25;
/// EnScrypt salt length.
const SALT_LEN: usize = 16;

/// A parsed type-2 block.
#[derive(Clone, PartialEq, Eq)]
pub struct RescueBlock {
    salt: [u8; SALT_LEN],
    kdf: EnScryptParams,
    ciphertext: [u8; 32],
    tag: [u8; TAG_LEN],
}

impl RescueBlock {
    /// Parses a whole type-2 block (73 bytes from its length field).
    pub fn parse(block: &[u8]) -> Result<Self, FormatError> {
        let bad_length = FormatError::BadBlockLength {
            block_type: BLOCK_TYPE_RESCUE,
            length: u16::try_from(block.len()).unwrap_or(u16::MAX),
        };
        let fields = |error: FieldError| error.in_block(BLOCK_TYPE_RESCUE);
        let mut r = Reader::new(block);
        let length = r.u16_le("length").map_err(fields)?;
        let block_type = r.u16_le("type").map_err(fields)?;
        if length != RESCUE_BLOCK_LEN || block_type != BLOCK_TYPE_RESCUE {
            return Err(bad_length);
        }
        r.read_to_end(|r| {
            Ok(Self {
                salt: r.take_array("salt")?,
                kdf: read_kdf_params(r)?,
                ciphertext: r.take_array("encrypted IUK")?,
                tag: r.take_array("tag")?,
            })
        })
        .map_err(fields)
    }

    /// Writes the block exactly as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        cipher::sealed_bytes(&self.aad(), &self.ciphertext, &self.tag)
    }

    /// The EnScrypt parameters stored in the block.
    pub fn kdf_params(&self) -> EnScryptParams {
        self.kdf
    }

    /// Decrypts the IUK with the rescue code. A wrong code is
    /// [`StorageError::WrongRescueCode`].
    pub fn decrypt(
        &self,
        code: &RescueCode,
        progress: &mut ProgressFn<'_>,
    ) -> Result<IdentityUnlockKey, StorageError> {
        // The digits only, never a dashed form (PITFALLS 17): `RescueCode` holds
        // nothing else.
        let key = enscrypt::enscrypt(code.as_bytes(), &self.salt, self.kdf, &mut |p| {
            progress(KdfStage::UnlockRescueCode, p)
        })?;
        let mut iuk = Zeroizing::new(self.ciphertext);
        cipher::open(&key, &ZERO_IV, &self.aad(), iuk.as_mut_slice(), &self.tag)
            .map_err(|_| StorageError::WrongRescueCode)?;
        Ok(IdentityUnlockKey::from_bytes(*iuk))
    }

    /// Encrypts `iuk` under `code` with a fresh salt. Only identity creation and
    /// rekeying call this (a new code each time), which keeps the zero IV safe.
    pub fn encrypt(
        rng: &mut impl CryptoRngCore,
        code: &RescueCode,
        iuk: &IdentityUnlockKey,
        cost: KdfCost,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Self, StorageError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let (key, kdf) = derive(code.as_bytes(), &salt, cost, &mut |p| {
            progress(KdfStage::EncryptRescueCode, p)
        })?;
        let mut block = Self {
            salt,
            kdf,
            ciphertext: [0; 32],
            tag: [0; TAG_LEN],
        };
        let mut secret = Zeroizing::new(*iuk.as_bytes());
        block.tag = cipher::seal(&key, &ZERO_IV, &block.aad(), secret.as_mut_slice());
        block.ciphertext = *secret;
        Ok(block)
    }

    fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::from(RESCUE_BLOCK_LEN));
        out.extend_from_slice(&RESCUE_BLOCK_LEN.to_le_bytes());
        out.extend_from_slice(&BLOCK_TYPE_RESCUE.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out.push(self.kdf.log_n);
        out.extend_from_slice(&self.kdf.iterations.to_le_bytes());
        debug_assert_eq!(out.len(), AAD_LEN);
        out
    }
}

impl core::fmt::Debug for RescueBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RescueBlock")
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand_core::OsRng;

    use super::*;
    use crate::storage::FieldError;

    #[test]
    fn round_trip_and_wrong_code() {
        let code = RescueCode::parse("1111-2222-3333-4444-5555-6666").unwrap();
        let iuk = IdentityUnlockKey::from_bytes([4; 32]);
        let block = RescueBlock::encrypt(
            &mut OsRng,
            &code,
            &iuk,
            KdfCost::Iterations(1),
            &mut |_, _| {},
        )
        .unwrap();
        let bytes = block.to_bytes();
        assert_eq!(bytes.len(), 73);
        assert_eq!(bytes[..4], [73, 0, 2, 0]);
        let parsed = RescueBlock::parse(&bytes).unwrap();
        assert_eq!(parsed, block);
        assert_eq!(parsed.decrypt(&code, &mut |_, _| {}).unwrap(), iuk);
        let other = RescueCode::parse("111122223333444455556667").unwrap();
        assert_eq!(
            parsed.decrypt(&other, &mut |_, _| {}).unwrap_err(),
            StorageError::WrongRescueCode
        );
        for len in 0..bytes.len() {
            assert!(RescueBlock::parse(&bytes[..len]).is_err());
        }
    }

    /// A block with the right header and any content: parsing needs no key.
    fn unencrypted_block() -> Vec<u8> {
        let mut bytes = vec![73, 0, 2, 0];
        bytes.resize(73, 0xAB);
        bytes
    }

    #[test]
    fn a_short_field_is_named() {
        let block = unencrypted_block();
        assert!(RescueBlock::parse(&block).is_ok());
        // 4 header + 16 salt + 1 + 4 = 25 bytes before the 32 encrypted ones.
        assert_eq!(
            RescueBlock::parse(&block[..40]),
            Err(FormatError::BlockFields {
                block_type: BLOCK_TYPE_RESCUE,
                error: FieldError::Short {
                    field: "encrypted IUK",
                    needed: 32,
                    available: 15
                }
            })
        );
        assert_eq!(
            RescueBlock::parse(&block[..60]),
            Err(FormatError::BlockFields {
                block_type: BLOCK_TYPE_RESCUE,
                error: FieldError::Short {
                    field: "tag",
                    needed: 16,
                    available: 3
                }
            })
        );
        assert_eq!(
            RescueBlock::parse(&block[..3]).unwrap_err().to_string(),
            "block type 2: field `type` needs 2 bytes but only 1 remain"
        );
    }

    #[test]
    fn trailing_bytes_are_counted() {
        let mut block = unencrypted_block();
        block.extend_from_slice(&[0; 5]);
        assert_eq!(
            RescueBlock::parse(&block),
            Err(FormatError::BlockFields {
                block_type: BLOCK_TYPE_RESCUE,
                error: FieldError::Trailing { count: 5 }
            })
        );
    }
}
