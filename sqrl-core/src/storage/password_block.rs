//! Type 1: the password block (SPEC 5.1), holding IMK and ILK under a key
//! EnScrypted from the password.
//!
//! ```text
//! off size field
//!   0    2 length (125)            ┐
//!   2    2 type (1)                │
//!   4    2 plaintext length (45)   │
//!   6   12 AES-GCM IV              │ AAD = bytes[0 .. plaintext length]
//!  18   16 EnScrypt salt           │
//!  34    1 EnScrypt log2(N)        │
//!  35    4 EnScrypt iterations     │
//!  39    2 option flags            │
//!  41    1 QuickPass hint length   │
//!  42    1 password EnScrypt secs  │
//!  43    2 idle timeout minutes    ┘
//!  45   32 encrypted IMK
//!  77   32 encrypted ILK
//! 109   16 GCM tag
//! ```

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::cipher::{self, IV_LEN, TAG_LEN};
use super::reader::{FieldError, Reader};
use super::{BLOCK_TYPE_PASSWORD, FormatError, KdfCost, KdfStage, ProgressFn, StorageError};
use crate::enscrypt::{self, DEFAULT_LOG_N, EnScryptParams};
use crate::keys::{IdentityLockKey, IdentityMasterKey};
use crate::secret::Password;

/// Length of the v1 plaintext (AAD) section; later versions may store more (SPEC 5.1).
const V1_AAD_LEN: u16 = 45;
/// Encrypted IMK || ILK.
const SECRET_LEN: usize = 64;
/// EnScrypt salt length.
const SALT_LEN: usize = 16;

/// The option flags of the password block (SPEC 5.1). Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptionFlags(u16);

impl OptionFlags {
    /// Check for client updates.
    pub const CHECK_FOR_UPDATES: Self = Self(0x0001);
    /// Update the client without asking.
    pub const UPDATE_AUTONOMOUSLY: Self = Self(0x0002);
    /// Ask sites to allow only SQRL logins (`sqrlonly`).
    pub const SQRL_ONLY: Self = Self(0x0004);
    /// Ask sites to allow no bypass of SQRL (`hardlock`).
    pub const HARD_LOCK: Self = Self(0x0008);
    /// Warn when the site's IP check suggests a man in the middle.
    pub const WARN_MITM: Self = Self(0x0010);
    /// Discard QuickPass when the system sleeps or the screen blanks.
    pub const CLEAR_QUICKPASS_ON_SLEEP: Self = Self(0x0020);
    /// Discard QuickPass when the user switches.
    pub const CLEAR_QUICKPASS_ON_USER_SWITCH: Self = Self(0x0040);
    /// Discard QuickPass after the idle timeout.
    pub const CLEAR_QUICKPASS_ON_IDLE: Self = Self(0x0080);
    /// Warn on authentication without CPS (must default on).
    pub const WARN_NON_CPS: Self = Self(0x0100);
    /// GRC's default set, 0x01F3.
    pub const DEFAULT: Self = Self(0x01F3);

    /// Wraps raw bits (unknown bits are kept for rewriting).
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The raw bits as stored.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every bit of `flag` is set.
    pub const fn contains(self, flag: Self) -> bool {
        self.0 & flag.0 == flag.0
    }

    /// These flags with `flag` set or cleared.
    pub const fn with(self, flag: Self, on: bool) -> Self {
        if on {
            Self(self.0 | flag.0)
        } else {
            Self(self.0 & !flag.0)
        }
    }
}

impl Default for OptionFlags {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The client settings stored in clear (but authenticated) in the password block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    /// Option flags, default 0x01F3.
    pub options: OptionFlags,
    /// QuickPass hint length in characters, default 4 (0 disables QuickPass).
    pub hint_length: u8,
    /// Seconds of EnScrypt the user chose for the password, default 5.
    pub password_seconds: u8,
    /// QuickPass idle timeout in minutes, default 15.
    pub idle_timeout_minutes: u16,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            options: OptionFlags::DEFAULT,
            hint_length: 4,
            password_seconds: 5,
            idle_timeout_minutes: 15,
        }
    }
}

/// A parsed type-1 block. Parsing checks only the layout; [`Self::decrypt`]
/// authenticates it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordBlock {
    iv: [u8; IV_LEN],
    salt: [u8; SALT_LEN],
    kdf: EnScryptParams,
    settings: PasswordSettings,
    /// Plaintext bytes after the 45 that v1 defines, kept verbatim so a file written
    /// by a later client survives a rewrite (PITFALLS 20).
    extension: Vec<u8>,
    ciphertext: [u8; SECRET_LEN],
    tag: [u8; TAG_LEN],
}

impl PasswordBlock {
    /// Parses a whole type-1 block (from its length field to its tag).
    pub fn parse(block: &[u8]) -> Result<Self, FormatError> {
        let total = u16::try_from(block.len()).unwrap_or(u16::MAX);
        let bad_length = FormatError::BadBlockLength {
            block_type: BLOCK_TYPE_PASSWORD,
            length: total,
        };
        let fields = |error: FieldError| error.in_block(BLOCK_TYPE_PASSWORD);
        let mut r = Reader::new(block);
        let length = r.u16_le("length").map_err(fields)?;
        let block_type = r.u16_le("type").map_err(fields)?;
        let aad_len = r.u16_le("plaintext length").map_err(fields)?;
        if usize::from(length) != block.len() || block_type != BLOCK_TYPE_PASSWORD {
            return Err(bad_length);
        }
        // SPEC 5.1: the plaintext section is at least the v1 fields, and exactly the
        // encrypted IMK||ILK and the tag follow it.
        if aad_len < V1_AAD_LEN
            || usize::from(aad_len) + SECRET_LEN + TAG_LEN != usize::from(length)
        {
            return Err(FormatError::BadPlaintextLength { aad_len, length });
        }
        r.read_to_end(|r| {
            let iv = r.take_array("IV")?;
            let salt = r.take_array("salt")?;
            let kdf = read_kdf_params(r)?;
            let settings = PasswordSettings {
                options: OptionFlags(r.u16_le("option flags")?),
                hint_length: r.u8("hint length")?,
                password_seconds: r.u8("password verify seconds")?,
                idle_timeout_minutes: r.u16_le("idle timeout")?,
            };
            let extension = r
                .take("plaintext extension", usize::from(aad_len - V1_AAD_LEN))?
                .to_vec();
            Ok(Self {
                iv,
                salt,
                kdf,
                settings,
                extension,
                ciphertext: r.take_array("encrypted IMK and ILK")?,
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

    /// The client settings stored in the block.
    pub fn settings(&self) -> PasswordSettings {
        self.settings
    }

    /// Derives the key from `password` with the stored salt and iteration count and
    /// decrypts `(IMK, ILK)`. A wrong password is [`StorageError::WrongPassword`].
    pub fn decrypt(
        &self,
        password: &Password,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(IdentityMasterKey, IdentityLockKey), StorageError> {
        let key = enscrypt::enscrypt(password.as_bytes(), &self.salt, self.kdf, &mut |p| {
            progress(KdfStage::UnlockPassword, p)
        })?;
        let mut secret = Zeroizing::new(self.ciphertext);
        cipher::open(
            &key,
            &self.iv,
            &self.aad(),
            secret.as_mut_slice(),
            &self.tag,
        )
        .map_err(|_| StorageError::WrongPassword)?;
        let mut imk = Zeroizing::new([0u8; 32]);
        let mut ilk = [0u8; 32];
        let (imk_part, ilk_part) = secret.split_at(32);
        imk.copy_from_slice(imk_part);
        ilk.copy_from_slice(ilk_part);
        Ok((
            IdentityMasterKey::from_bytes(*imk),
            IdentityLockKey::from_bytes(ilk),
        ))
    }

    /// Encrypts `(IMK, ILK)` under `password` with a fresh IV and salt.
    ///
    /// Any plaintext extension bytes are dropped: a rewrite by this version only
    /// writes the fields it understands.
    pub fn encrypt(
        rng: &mut impl CryptoRngCore,
        password: &Password,
        imk: &IdentityMasterKey,
        ilk: &IdentityLockKey,
        settings: PasswordSettings,
        cost: KdfCost,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Self, StorageError> {
        if password.is_empty() {
            return Err(StorageError::EmptyPassword);
        }
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let (key, kdf) = derive(password.as_bytes(), &salt, cost, &mut |p| {
            progress(KdfStage::EncryptPassword, p)
        })?;
        let mut block = Self {
            iv,
            salt,
            kdf,
            settings,
            extension: Vec::new(),
            ciphertext: [0; SECRET_LEN],
            tag: [0; TAG_LEN],
        };
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        let (imk_part, ilk_part) = secret.split_at_mut(32);
        imk_part.copy_from_slice(imk.as_bytes());
        ilk_part.copy_from_slice(ilk.as_bytes());
        block.tag = cipher::seal(&key, &block.iv, &block.aad(), secret.as_mut_slice());
        block.ciphertext = *secret;
        Ok(block)
    }

    /// The authenticated plaintext prefix: length through the last setting (and any
    /// extension bytes).
    fn aad(&self) -> Vec<u8> {
        // Both lengths are bounded by the u16 length field checked in `parse`
        // (extension bytes come only from there).
        let aad_len = usize::from(V1_AAD_LEN) + self.extension.len();
        let total = aad_len + SECRET_LEN + TAG_LEN;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u16).to_le_bytes());
        out.extend_from_slice(&BLOCK_TYPE_PASSWORD.to_le_bytes());
        out.extend_from_slice(&(aad_len as u16).to_le_bytes());
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&self.salt);
        out.push(self.kdf.log_n);
        out.extend_from_slice(&self.kdf.iterations.to_le_bytes());
        out.extend_from_slice(&self.settings.options.0.to_le_bytes());
        out.push(self.settings.hint_length);
        out.push(self.settings.password_seconds);
        out.extend_from_slice(&self.settings.idle_timeout_minutes.to_le_bytes());
        out.extend_from_slice(&self.extension);
        out
    }
}

impl core::fmt::Debug for PasswordBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PasswordBlock")
            .field("kdf", &self.kdf)
            .field("settings", &self.settings)
            .field("extension_len", &self.extension.len())
            .finish_non_exhaustive()
    }
}

/// Reads the stored EnScrypt parameters, log2(N) then the iteration count, as
/// the password and rescue blocks both lay them out after their salt.
pub(super) fn read_kdf_params(r: &mut Reader<'_>) -> Result<EnScryptParams, FieldError> {
    Ok(EnScryptParams {
        log_n: r.u8("log2(N)")?,
        iterations: r.u32_le("iterations")?,
    })
}

/// Runs EnScrypt for a new block: timed or fixed, returning the parameters to store.
pub(super) fn derive(
    secret: &[u8],
    salt: &[u8],
    cost: KdfCost,
    progress: &mut dyn FnMut(enscrypt::Progress),
) -> Result<(Zeroizing<[u8; 32]>, EnScryptParams), StorageError> {
    Ok(match cost {
        KdfCost::Timed(budget) => {
            enscrypt::enscrypt_timed(secret, salt, DEFAULT_LOG_N, budget, progress)?
        }
        KdfCost::Iterations(iterations) => {
            let params = EnScryptParams {
                log_n: DEFAULT_LOG_N,
                iterations,
            };
            (enscrypt::enscrypt(secret, salt, params, progress)?, params)
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand_core::OsRng;

    use super::*;
    use crate::keys::IdentityUnlockKey;

    fn sample() -> (PasswordBlock, IdentityMasterKey, IdentityLockKey) {
        let iuk = IdentityUnlockKey::from_bytes([9; 32]);
        let (imk, ilk) = (iuk.master_key(), iuk.lock_key());
        let block = PasswordBlock::encrypt(
            &mut OsRng,
            &Password::from("pw"),
            &imk,
            &ilk,
            PasswordSettings::default(),
            KdfCost::Iterations(1),
            &mut |_, _| {},
        )
        .unwrap();
        (block, imk, ilk)
    }

    #[test]
    fn layout_matches_spec_offsets() {
        let (block, _, _) = sample();
        let bytes = block.to_bytes();
        assert_eq!(bytes.len(), 125);
        assert_eq!(bytes[..6], [125, 0, 1, 0, 45, 0]);
        assert_eq!(bytes[34], 9, "logN");
        assert_eq!(bytes[35..39], [1, 0, 0, 0], "iterations");
        assert_eq!(
            bytes[39..45],
            [0xF3, 0x01, 4, 5, 15, 0],
            "GRC default settings"
        );
        assert_eq!(PasswordBlock::parse(&bytes).unwrap(), block);
    }

    #[test]
    fn decrypts_with_the_password_only() {
        let (block, imk, ilk) = sample();
        let (got_imk, got_ilk) = block
            .decrypt(&Password::from("pw"), &mut |_, _| {})
            .unwrap();
        assert_eq!(got_imk, imk);
        assert_eq!(got_ilk, ilk);
        let wrong = block.decrypt(&Password::from("pW"), &mut |_, _| {});
        assert_eq!(wrong.unwrap_err(), StorageError::WrongPassword);
    }

    #[test]
    fn any_changed_plaintext_byte_fails_authentication() {
        let (block, _, _) = sample();
        let bytes = block.to_bytes();
        // Settings bytes are AAD: flipping one must break the tag.
        for offset in [39usize, 41, 42, 43] {
            let mut changed = bytes.clone();
            changed[offset] ^= 1;
            let parsed = PasswordBlock::parse(&changed).unwrap();
            assert_eq!(
                parsed
                    .decrypt(&Password::from("pw"), &mut |_, _| {})
                    .unwrap_err(),
                StorageError::WrongPassword,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn grown_plaintext_section_is_parsed_by_its_length_field() {
        // A later version with a 47-byte plaintext section (PITFALLS 20): encrypt by
        // hand with the stored length as AAD and check decrypt + exact rewrite.
        let iuk = IdentityUnlockKey::from_bytes([3; 32]);
        let (imk, ilk) = (iuk.master_key(), iuk.lock_key());
        let salt = [5u8; 16];
        let params = EnScryptParams {
            log_n: 9,
            iterations: 1,
        };
        let key = enscrypt::enscrypt(b"pw", &salt, params, &mut |_| {}).unwrap();
        let mut aad = vec![127, 0, 1, 0, 47, 0];
        aad.extend_from_slice(&[1; 12]);
        aad.extend_from_slice(&salt);
        aad.push(9);
        aad.extend_from_slice(&1u32.to_le_bytes());
        aad.extend_from_slice(&[0xF3, 0x01, 4, 5, 15, 0, 0xAA, 0xBB]);
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(imk.as_bytes());
        secret[32..].copy_from_slice(ilk.as_bytes());
        let tag = cipher::seal(&key, &[1; 12], &aad, &mut secret);
        let mut bytes = aad.clone();
        bytes.extend_from_slice(&secret);
        bytes.extend_from_slice(&tag);

        let block = PasswordBlock::parse(&bytes).unwrap();
        assert_eq!(block.to_bytes(), bytes);
        let (got_imk, got_ilk) = block
            .decrypt(&Password::from("pw"), &mut |_, _| {})
            .unwrap();
        assert_eq!((got_imk, got_ilk), (imk, ilk));
    }

    #[test]
    fn malformed_lengths_are_typed_errors() {
        let (block, _, _) = sample();
        let bytes = block.to_bytes();
        let mut short_aad = bytes.clone();
        short_aad[4] = 44;
        assert_eq!(
            PasswordBlock::parse(&short_aad),
            Err(FormatError::BadPlaintextLength {
                aad_len: 44,
                length: 125
            })
        );
        let mut long_aad = bytes.clone();
        long_aad[4] = 46;
        assert!(matches!(
            PasswordBlock::parse(&long_aad),
            Err(FormatError::BadPlaintextLength { .. })
        ));
        for len in 0..bytes.len() {
            assert!(PasswordBlock::parse(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn empty_password_is_refused_for_new_blocks() {
        let iuk = IdentityUnlockKey::from_bytes([9; 32]);
        let err = PasswordBlock::encrypt(
            &mut OsRng,
            &Password::from(""),
            &iuk.master_key(),
            &iuk.lock_key(),
            PasswordSettings::default(),
            KdfCost::Iterations(1),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert_eq!(err, StorageError::EmptyPassword);
    }
}
