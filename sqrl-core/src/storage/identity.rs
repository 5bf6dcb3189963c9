//! What a client does with a stored identity: create it, unlock it, recover the IUK,
//! change the password, rekey, and check that its blocks belong together.
//!
//! Every mutating operation builds the new blocks first and replaces the old ones
//! only when all of them succeeded, so a wrong password or rescue code leaves the
//! identity exactly as it was.

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::container::{Block, S4, S4Form};
use super::{
    KdfCost, MAX_PREVIOUS_KEYS, PasswordBlock, PasswordSettings, PreviousKeysBlock,
    PreviousUnlockKeys, ProgressFn, RescueBlock, RescueCode, StorageError,
};
use crate::keys::{IdentityLockKey, IdentityMasterKey, IdentityUnlockKey};
use crate::secret::Password;

/// Costs and settings for a new identity (and for the blocks a rekey writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// EnScrypt cost of the password block (default: 5 seconds).
    pub password_cost: KdfCost,
    /// EnScrypt cost of the rescue block (default: 5 seconds).
    pub rescue_cost: KdfCost,
    /// Settings stored in a new password block (GRC defaults). A rekey keeps the
    /// settings of the existing password block instead.
    pub settings: PasswordSettings,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            password_cost: KdfCost::DEFAULT_PASSWORD,
            rescue_cost: KdfCost::DEFAULT_RESCUE_CODE,
            settings: PasswordSettings::default(),
        }
    }
}

/// What proves the right to rekey: the current IUK, or the rescue code that
/// decrypts it.
#[derive(Debug, Clone, Copy)]
pub enum RekeyAuthority<'a> {
    /// The current rescue code (decrypts the rescue block).
    RescueCode(&'a RescueCode),
    /// The current IUK, already recovered.
    UnlockKey(&'a IdentityUnlockKey),
}

/// An identity unlocked with its password: the IMK (per-site keys) and the ILK
/// (new site associations). Wiped on drop; `Debug` shows no key material.
pub struct UnlockedIdentity {
    imk: IdentityMasterKey,
    ilk: Zeroizing<[u8; 32]>,
    settings: PasswordSettings,
}

impl UnlockedIdentity {
    /// The Identity Master Key: derive per-site keys with
    /// [`IdentityMasterKey::site_key`].
    pub fn master_key(&self) -> &IdentityMasterKey {
        &self.imk
    }

    /// The Identity Lock Key.
    pub fn lock_key(&self) -> IdentityLockKey {
        IdentityLockKey::from_bytes(*self.ilk)
    }

    /// The settings stored in the password block.
    pub fn settings(&self) -> PasswordSettings {
        self.settings
    }

    /// Checks that `iuk` (from the rescue code) is the root of this unlocked
    /// identity: `EnHash(IUK) == IMK` and `X25519_base(IUK) == ILK`.
    ///
    /// An ILK made by legacy libsqrl (`X25519_base(SHA512(IUK)[..32])`, as in its
    /// `test1.sqrl`) is reported as [`StorageError::LegacyKeyDerivation`]
    /// (PITFALLS 14); any other disagreement as [`StorageError::UnlockKeyMismatch`].
    pub fn verify_unlock_key(&self, iuk: &IdentityUnlockKey) -> Result<(), StorageError> {
        if iuk.master_key() != self.imk {
            return Err(StorageError::UnlockKeyMismatch);
        }
        let ilk = self.lock_key();
        if iuk.lock_key() == ilk {
            return Ok(());
        }
        if legacy_lock_key(iuk) == ilk {
            return Err(StorageError::LegacyKeyDerivation);
        }
        Err(StorageError::UnlockKeyMismatch)
    }
}

impl core::fmt::Debug for UnlockedIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnlockedIdentity")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The ILK pre-v1 libsqrl stored: the IUK hashed with SHA-512 before X25519 (it
/// converted an Ed25519 secret key to a curve key). Only used to name the problem.
fn legacy_lock_key(iuk: &IdentityUnlockKey) -> IdentityLockKey {
    let digest: Zeroizing<[u8; 64]> = Zeroizing::new(Sha512::digest(iuk.as_bytes()).into());
    let mut scalar = Zeroizing::new([0u8; 32]);
    scalar.copy_from_slice(digest.get(..32).unwrap_or(&[0; 32]));
    IdentityLockKey::from_bytes(x25519_dalek::x25519(
        *scalar,
        x25519_dalek::X25519_BASEPOINT_BYTES,
    ))
}

impl PasswordBlock {
    /// Decrypts this block with `password` into an [`UnlockedIdentity`].
    pub fn unlock(
        &self,
        password: &Password,
        progress: &mut ProgressFn<'_>,
    ) -> Result<UnlockedIdentity, StorageError> {
        let (imk, ilk) = self.decrypt(password, progress)?;
        Ok(UnlockedIdentity {
            imk,
            ilk: Zeroizing::new(*ilk.as_bytes()),
            settings: self.settings(),
        })
    }
}

impl S4 {
    /// Creates a new identity: a random IUK, its password block and its rescue block
    /// under a new random rescue code.
    ///
    /// The returned [`RescueCode`] exists nowhere else: show it to the user once
    /// (and have them confirm it), then drop it. A client that shows the code
    /// before asking for the password generates it itself and calls
    /// [`S4::create_with_rescue_code`].
    pub fn create(
        rng: &mut impl CryptoRngCore,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(Self, RescueCode), StorageError> {
        if password.is_empty() {
            return Err(StorageError::EmptyPassword);
        }
        let code = RescueCode::generate(rng);
        let s4 = Self::create_with_rescue_code(rng, &code, password, options, progress)?;
        Ok((s4, code))
    }

    /// Creates a new identity whose rescue block is encrypted under `code`, a code
    /// the caller generated with [`RescueCode::generate`] and has already shown to
    /// the user and had confirmed (GRC's order: rescue code first, then the
    /// password, then the two EnScrypt runs). The IUK is random, as in
    /// [`S4::create`].
    ///
    /// `code` must come from [`RescueCode::generate`]: a code the user picked
    /// would not carry the 79 bits of entropy the rescue block relies on
    /// (SPEC 5.4).
    pub fn create_with_rescue_code(
        rng: &mut impl CryptoRngCore,
        code: &RescueCode,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Self, StorageError> {
        if password.is_empty() {
            return Err(StorageError::EmptyPassword);
        }
        let iuk = IdentityUnlockKey::generate(rng);
        let password_block = PasswordBlock::encrypt(
            rng,
            password,
            &iuk.master_key(),
            &iuk.lock_key(),
            options.settings,
            options.password_cost,
            progress,
        )?;
        let rescue_block = RescueBlock::encrypt(rng, code, &iuk, options.rescue_cost, progress)?;
        Ok(Self {
            blocks: vec![Block::Password(password_block), Block::Rescue(rescue_block)],
            form: S4Form::Binary,
        })
    }

    /// Unlocks the password block. A wrong password is
    /// [`StorageError::WrongPassword`]; a rescue-only identity has nothing to unlock
    /// ([`StorageError::MissingBlock`]; see [`S4::reset_password`]).
    pub fn unlock(
        &self,
        password: &Password,
        progress: &mut ProgressFn<'_>,
    ) -> Result<UnlockedIdentity, StorageError> {
        self.password_block()
            .ok_or(StorageError::MissingBlock("password block"))?
            .unlock(password, progress)
    }

    /// Recovers the IUK with the rescue code. A wrong code is
    /// [`StorageError::WrongRescueCode`].
    pub fn recover_unlock_key(
        &self,
        code: &RescueCode,
        progress: &mut ProgressFn<'_>,
    ) -> Result<IdentityUnlockKey, StorageError> {
        self.rescue_block()
            .ok_or(StorageError::MissingBlock("rescue block"))?
            .decrypt(code, progress)
    }

    /// The previous IUKs (newest first) and the edition, decrypted with the current
    /// IMK (from [`S4::unlock`] or `IUK.master_key()`). An identity never rekeyed
    /// gives edition 0 and no keys.
    pub fn previous_unlock_keys(
        &self,
        imk: &IdentityMasterKey,
    ) -> Result<PreviousUnlockKeys, StorageError> {
        match self.previous_keys_block() {
            Some(block) => block.decrypt(imk),
            None => Ok(PreviousUnlockKeys {
                edition: 0,
                keys: Vec::new(),
            }),
        }
    }

    /// The full import check: unlocks with the password, recovers the IUK with the
    /// rescue code, and checks that both blocks (and the previous-keys block) belong
    /// to one v1 identity. Fails with [`StorageError::LegacyKeyDerivation`] for a
    /// pre-v1 libsqrl identity and [`StorageError::UnlockKeyMismatch`] for blocks of
    /// different identities.
    pub fn verify(
        &self,
        password: &Password,
        code: &RescueCode,
        progress: &mut ProgressFn<'_>,
    ) -> Result<UnlockedIdentity, StorageError> {
        let unlocked = self.unlock(password, progress)?;
        let iuk = self.recover_unlock_key(code, progress)?;
        unlocked.verify_unlock_key(&iuk)?;
        self.previous_unlock_keys(unlocked.master_key())?;
        Ok(unlocked)
    }

    /// Changes the password: re-encrypts the password block (fresh IV and salt,
    /// same settings). Every other block stays byte for byte as it was (SPEC 5.1).
    pub fn change_password(
        &mut self,
        rng: &mut impl CryptoRngCore,
        old: &Password,
        new: &Password,
        cost: KdfCost,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(), StorageError> {
        let current = self
            .password_block()
            .ok_or(StorageError::MissingBlock("password block"))?;
        let settings = current.settings();
        let (imk, ilk) = current.decrypt(old, progress)?;
        let block = PasswordBlock::encrypt(rng, new, &imk, &ilk, settings, cost, progress)?;
        self.put_block(Block::Password(block));
        Ok(())
    }

    /// Sets a password with the rescue code when the password is forgotten, or
    /// gives a rescue-only identity (`.sqrc`, textual) its password block. The
    /// existing password block's settings are kept (GRC defaults if there is none).
    pub fn reset_password(
        &mut self,
        rng: &mut impl CryptoRngCore,
        code: &RescueCode,
        new: &Password,
        cost: KdfCost,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(), StorageError> {
        if new.is_empty() {
            return Err(StorageError::EmptyPassword);
        }
        let iuk = self.recover_unlock_key(code, progress)?;
        let settings = self
            .password_block()
            .map(PasswordBlock::settings)
            .unwrap_or_default();
        let block = PasswordBlock::encrypt(
            rng,
            new,
            &iuk.master_key(),
            &iuk.lock_key(),
            settings,
            cost,
            progress,
        )?;
        self.put_block(Block::Password(block));
        Ok(())
    }

    /// Rekeys the identity (SPEC 5.3): the current IUK becomes previous key 1 (older
    /// ones shift down, a fifth is dropped), a new IUK and rescue code replace it,
    /// and blocks 1, 2 and 3 are rewritten, block 3 under the **new** IMK with the
    /// edition incremented. Unknown blocks are untouched.
    ///
    /// `password` protects the new password block. If the identity has a password
    /// block it must be the current password: it is unlocked first to make sure the
    /// IUK being retired is the one the password block belongs to.
    ///
    /// Returns the new rescue code; show it once. The old code no longer works.
    /// A client that shows the new code before the EnScrypt work generates it
    /// itself and calls [`S4::rekey_with_rescue_code`].
    pub fn rekey(
        &mut self,
        rng: &mut impl CryptoRngCore,
        authority: RekeyAuthority<'_>,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<RescueCode, StorageError> {
        let retiring = self.retiring(authority, password, options, progress)?;
        // Drawn in this order (IUK, then code) so that a seeded generator
        // reproduces earlier output.
        let new_iuk = IdentityUnlockKey::generate(rng);
        let new_code = RescueCode::generate(rng);
        self.write_rekeyed(
            rng, retiring, &new_iuk, &new_code, password, options, progress,
        )?;
        Ok(new_code)
    }

    /// Rekeys the identity as [`S4::rekey`] does, with the new rescue block
    /// encrypted under `new_code`: a code the caller generated with
    /// [`RescueCode::generate`] and has already shown to the user and had
    /// confirmed, so that a mistyped confirmation costs no EnScrypt run (the
    /// order of [`S4::create_with_rescue_code`]). The new IUK is random.
    ///
    /// `new_code` must come from [`RescueCode::generate`]: a code the user
    /// picked would not carry the 79 bits of entropy the rescue block relies
    /// on (SPEC 5.4). On error the identity is unchanged.
    pub fn rekey_with_rescue_code(
        &mut self,
        rng: &mut impl CryptoRngCore,
        authority: RekeyAuthority<'_>,
        new_code: &RescueCode,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(), StorageError> {
        let retiring = self.retiring(authority, password, options, progress)?;
        let new_iuk = IdentityUnlockKey::generate(rng);
        self.write_rekeyed(
            rng, retiring, &new_iuk, new_code, password, options, progress,
        )
    }

    /// The checks of a rekey, before anything is generated or written: the
    /// authority names this identity's current IUK, and `password` is the
    /// current password when there is a password block.
    fn retiring(
        &self,
        authority: RekeyAuthority<'_>,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Retiring, StorageError> {
        if password.is_empty() {
            return Err(StorageError::EmptyPassword);
        }
        let current_iuk = match authority {
            RekeyAuthority::RescueCode(code) => self.recover_unlock_key(code, progress)?,
            RekeyAuthority::UnlockKey(iuk) => iuk.clone(),
        };
        // An IUK that is not this identity's fails here (tag mismatch under its IMK).
        let previous = self.previous_unlock_keys(&current_iuk.master_key())?;
        let settings = match self.password_block() {
            Some(block) => {
                let unlocked = block.unlock(password, progress)?;
                unlocked.verify_unlock_key(&current_iuk)?;
                unlocked.settings()
            }
            None => options.settings,
        };
        let edition = previous
            .edition
            .checked_add(1)
            .ok_or(StorageError::EditionOverflow)?;
        let mut keys = Vec::with_capacity(MAX_PREVIOUS_KEYS + 1);
        keys.push(current_iuk);
        keys.extend(previous.keys);
        keys.truncate(MAX_PREVIOUS_KEYS);
        Ok(Retiring {
            keys,
            edition,
            settings,
        })
    }

    /// Writes blocks 1, 2 and 3 for the new IUK and rescue code.
    // One private step of two public functions; a parameter struct would only
    // rename the arguments.
    #[allow(clippy::too_many_arguments)]
    fn write_rekeyed(
        &mut self,
        rng: &mut impl CryptoRngCore,
        retiring: Retiring,
        new_iuk: &IdentityUnlockKey,
        new_code: &RescueCode,
        password: &Password,
        options: &CreateOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<(), StorageError> {
        let new_imk = new_iuk.master_key();
        let rescue = RescueBlock::encrypt(rng, new_code, new_iuk, options.rescue_cost, progress)?;
        let password_block = PasswordBlock::encrypt(
            rng,
            password,
            &new_imk,
            &new_iuk.lock_key(),
            retiring.settings,
            options.password_cost,
            progress,
        )?;
        // `retiring.keys` always holds the current IUK, so there is a block to write.
        let previous_block = PreviousKeysBlock::encrypt(&new_imk, retiring.edition, &retiring.keys)
            .ok_or(StorageError::MissingBlock("previous keys"))?;

        self.put_block(Block::Password(password_block));
        self.put_block(Block::Rescue(rescue));
        self.put_block(Block::PreviousKeys(previous_block));
        Ok(())
    }
}

/// What a rekey retires, once its authority and password are checked.
struct Retiring {
    /// The current IUK first, then the previous ones, at most
    /// [`MAX_PREVIOUS_KEYS`].
    keys: Vec<IdentityUnlockKey>,
    /// The edition of the new previous-keys block.
    edition: u16,
    /// The password settings to keep.
    settings: PasswordSettings,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use rand_core::OsRng;

    use super::*;
    use crate::enscrypt::EnScryptParams;
    use crate::storage::container::RawBlock;
    use crate::storage::{FormatError, KdfStage};

    const TEST1: &[u8] =
        include_bytes!("../../../test-vectors/vectors/published/libsqrl/test1.sqrl");

    fn fast() -> CreateOptions {
        CreateOptions {
            password_cost: KdfCost::Iterations(1),
            rescue_cost: KdfCost::Iterations(1),
            ..CreateOptions::default()
        }
    }

    fn hex32(text: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    fn none() -> impl FnMut(KdfStage, crate::enscrypt::Progress) {
        |_, _| {}
    }

    fn new_identity(password: &str) -> (S4, RescueCode) {
        S4::create(&mut OsRng, &Password::from(password), &fast(), &mut none()).unwrap()
    }

    /// Appends an unknown block (type 55) after the known ones.
    fn with_unknown_block(s4: &S4) -> S4 {
        let mut bytes = s4.to_bytes();
        bytes.extend_from_slice(&[9, 0, 55, 0, 1, 2, 3, 4, 5]);
        S4::parse(&bytes).unwrap()
    }

    #[test]
    fn create_unlock_recover_verify() {
        let password = Password::from("pässwörd");
        let mut stages = Vec::new();
        let (s4, code) = S4::create(&mut OsRng, &password, &fast(), &mut |stage, _| {
            stages.push(stage)
        })
        .unwrap();
        assert_eq!(
            stages,
            [KdfStage::EncryptPassword, KdfStage::EncryptRescueCode]
        );
        let bytes = s4.to_bytes();
        assert_eq!(bytes.len(), 8 + 125 + 73);

        let parsed = S4::parse(&bytes).unwrap();
        let unlocked = parsed.unlock(&password, &mut none()).unwrap();
        let iuk = parsed.recover_unlock_key(&code, &mut none()).unwrap();
        assert_eq!(unlocked.master_key(), &iuk.master_key());
        assert_eq!(unlocked.lock_key(), iuk.lock_key());
        assert_eq!(unlocked.settings(), PasswordSettings::default());
        unlocked.verify_unlock_key(&iuk).unwrap();
        parsed.verify(&password, &code, &mut none()).unwrap();
        let previous = parsed.previous_unlock_keys(unlocked.master_key()).unwrap();
        assert_eq!((previous.edition, previous.keys.len()), (0, 0));
        assert!(!format!("{unlocked:?}").contains(&format!("{:?}", iuk.as_bytes())));
    }

    #[test]
    fn create_with_a_caller_generated_rescue_code() {
        let password = Password::from("pw");
        let code = RescueCode::generate(&mut OsRng);
        // The code as the user typed it back (spaces instead of dashes, PITFALLS 17).
        let typed = RescueCode::parse(&code.to_grouped_string().replace('-', " ")).unwrap();
        let mut stages = Vec::new();
        let s4 = S4::create_with_rescue_code(&mut OsRng, &code, &password, &fast(), &mut |s, _| {
            stages.push(s)
        })
        .unwrap();
        assert_eq!(
            stages,
            [KdfStage::EncryptPassword, KdfStage::EncryptRescueCode]
        );
        let parsed = S4::parse(&s4.to_bytes()).unwrap();
        let unlocked = parsed.verify(&password, &typed, &mut none()).unwrap();
        let iuk = parsed.recover_unlock_key(&code, &mut none()).unwrap();
        assert_eq!(unlocked.master_key(), &iuk.master_key());
        let other = RescueCode::generate(&mut OsRng);
        assert_eq!(
            parsed.recover_unlock_key(&other, &mut none()).unwrap_err(),
            StorageError::WrongRescueCode
        );
        // Same code, fresh identity: the IUK is random, not derived from the code.
        let again = S4::create_with_rescue_code(&mut OsRng, &code, &password, &fast(), &mut none())
            .unwrap();
        let again_iuk = again.recover_unlock_key(&code, &mut none()).unwrap();
        assert_ne!(again_iuk, iuk);
        assert_eq!(
            S4::create_with_rescue_code(
                &mut OsRng,
                &code,
                &Password::from(""),
                &fast(),
                &mut none()
            )
            .unwrap_err(),
            StorageError::EmptyPassword
        );
    }

    #[test]
    fn timed_cost_stores_the_count_reached() {
        let options = CreateOptions {
            password_cost: KdfCost::Timed(Duration::ZERO),
            rescue_cost: KdfCost::Timed(Duration::ZERO),
            ..CreateOptions::default()
        };
        let (s4, code) =
            S4::create(&mut OsRng, &Password::from("pw"), &options, &mut none()).unwrap();
        let one = EnScryptParams {
            log_n: 9,
            iterations: 1,
        };
        assert_eq!(s4.password_block().unwrap().kdf_params(), one);
        assert_eq!(s4.rescue_block().unwrap().kdf_params(), one);
        s4.verify(&Password::from("pw"), &code, &mut none())
            .unwrap();
    }

    #[test]
    fn wrong_secrets_are_typed_errors_and_change_nothing() {
        let (s4, code) = new_identity("right");
        let mut s4 = with_unknown_block(&s4);
        let before = s4.to_bytes();
        assert_eq!(
            s4.unlock(&Password::from("wrong"), &mut none())
                .unwrap_err(),
            StorageError::WrongPassword
        );
        let wrong_code = RescueCode::parse("000000000000000000000000").unwrap();
        assert_ne!(wrong_code, code);
        assert_eq!(
            s4.recover_unlock_key(&wrong_code, &mut none()).unwrap_err(),
            StorageError::WrongRescueCode
        );
        let err = s4
            .change_password(
                &mut OsRng,
                &Password::from("wrong"),
                &Password::from("new"),
                KdfCost::Iterations(1),
                &mut none(),
            )
            .unwrap_err();
        assert_eq!(err, StorageError::WrongPassword);
        let err = s4
            .rekey(
                &mut OsRng,
                RekeyAuthority::RescueCode(&wrong_code),
                &Password::from("right"),
                &fast(),
                &mut none(),
            )
            .unwrap_err();
        assert_eq!(err, StorageError::WrongRescueCode);
        let err = s4
            .rekey(
                &mut OsRng,
                RekeyAuthority::RescueCode(&code),
                &Password::from("wrong"),
                &fast(),
                &mut none(),
            )
            .unwrap_err();
        assert_eq!(err, StorageError::WrongPassword);
        let err = s4
            .reset_password(
                &mut OsRng,
                &wrong_code,
                &Password::from("new"),
                KdfCost::Iterations(1),
                &mut none(),
            )
            .unwrap_err();
        assert_eq!(err, StorageError::WrongRescueCode);
        assert_eq!(s4.to_bytes(), before);
    }

    #[test]
    fn change_password_rewrites_block_one_only() {
        let (s4, code) = new_identity("old password");
        let mut s4 = with_unknown_block(&s4);
        let before: Vec<Vec<u8>> = s4.blocks().iter().map(Block::to_bytes).collect();
        s4.change_password(
            &mut OsRng,
            &Password::from("old password"),
            &Password::from("new password"),
            KdfCost::Iterations(2),
            &mut none(),
        )
        .unwrap();
        let after: Vec<Vec<u8>> = s4.blocks().iter().map(Block::to_bytes).collect();
        assert_eq!(after.len(), 3);
        assert_ne!(after[0], before[0]);
        assert_ne!(after[0][6..18], before[0][6..18], "fresh IV");
        assert_ne!(after[0][18..34], before[0][18..34], "fresh salt");
        assert_eq!(after[1..], before[1..], "blocks 2 and 55 byte for byte");

        let reparsed = S4::parse(&s4.to_bytes()).unwrap();
        assert_eq!(
            reparsed
                .unlock(&Password::from("old password"), &mut none())
                .unwrap_err(),
            StorageError::WrongPassword
        );
        reparsed
            .verify(&Password::from("new password"), &code, &mut none())
            .unwrap();
    }

    #[test]
    fn rekey_keeps_four_previous_keys_newest_first() {
        let password = Password::from("pw");
        let (s4, first_code) = new_identity("pw");
        let mut s4 = with_unknown_block(&s4);
        let unknown = s4.blocks()[2].clone();
        let mut codes = vec![first_code];
        let mut iuks = vec![s4.recover_unlock_key(&codes[0], &mut none()).unwrap()];
        for round in 1..=5u16 {
            let code = codes.last().unwrap().clone();
            let new_code = s4
                .rekey(
                    &mut OsRng,
                    RekeyAuthority::RescueCode(&code),
                    &password,
                    &fast(),
                    &mut none(),
                )
                .unwrap();
            let s4_bytes = s4.to_bytes();
            let parsed = S4::parse(&s4_bytes).unwrap();
            assert_eq!(
                parsed
                    .blocks()
                    .iter()
                    .map(Block::block_type)
                    .collect::<Vec<_>>(),
                [1, 2, 3, 55],
                "GRC order, unknown block kept"
            );
            assert_eq!(parsed.blocks()[3], unknown);
            assert_eq!(
                parsed.recover_unlock_key(&code, &mut none()).unwrap_err(),
                StorageError::WrongRescueCode,
                "the old code is retired"
            );
            let unlocked = parsed.verify(&password, &new_code, &mut none()).unwrap();
            let new_iuk = parsed.recover_unlock_key(&new_code, &mut none()).unwrap();
            let previous = parsed.previous_unlock_keys(unlocked.master_key()).unwrap();
            assert_eq!(previous.edition, round);
            let expected: Vec<IdentityUnlockKey> = iuks.iter().rev().take(4).cloned().collect();
            assert_eq!(previous.keys, expected, "round {round}");
            assert_eq!(
                parsed.previous_keys_block().unwrap().to_bytes().len(),
                6 + 32 * expected.len() + 16
            );
            codes.push(new_code);
            iuks.push(new_iuk);
        }
    }

    #[test]
    fn rekey_with_a_caller_generated_rescue_code() {
        let password = Password::from("pw");
        let (mut s4, old_code) = new_identity("pw");
        let old_iuk = s4.recover_unlock_key(&old_code, &mut none()).unwrap();
        let new_code = RescueCode::generate(&mut OsRng);
        // As the user typed it back (spaces instead of dashes, PITFALLS 17).
        let typed = RescueCode::parse(&new_code.to_grouped_string().replace('-', " ")).unwrap();

        // A failure (wrong password) leaves the identity unchanged.
        let before = s4.clone();
        assert_eq!(
            s4.rekey_with_rescue_code(
                &mut OsRng,
                RekeyAuthority::RescueCode(&old_code),
                &new_code,
                &Password::from("wrong"),
                &fast(),
                &mut none(),
            )
            .unwrap_err(),
            StorageError::WrongPassword
        );
        assert_eq!(s4, before);

        let mut stages = Vec::new();
        s4.rekey_with_rescue_code(
            &mut OsRng,
            RekeyAuthority::RescueCode(&old_code),
            &new_code,
            &password,
            &fast(),
            &mut |stage, _| stages.push(stage),
        )
        .unwrap();
        assert!(stages.contains(&KdfStage::EncryptRescueCode));
        let parsed = S4::parse(&s4.to_bytes()).unwrap();
        assert_eq!(
            parsed
                .recover_unlock_key(&old_code, &mut none())
                .unwrap_err(),
            StorageError::WrongRescueCode,
            "the old code is retired"
        );
        let unlocked = parsed.verify(&password, &typed, &mut none()).unwrap();
        let new_iuk = parsed.recover_unlock_key(&new_code, &mut none()).unwrap();
        assert_ne!(new_iuk, old_iuk, "a new IUK, not one derived from the code");
        let previous = parsed.previous_unlock_keys(unlocked.master_key()).unwrap();
        assert_eq!((previous.edition, previous.keys), (1, vec![old_iuk]));
    }

    #[test]
    fn rekey_with_an_unlock_key_checks_it_belongs() {
        let password = Password::from("pw");
        let (mut s4, code) = new_identity("pw");
        let stranger = IdentityUnlockKey::from_bytes([1; 32]);
        let before = s4.to_bytes();
        assert_eq!(
            s4.rekey(
                &mut OsRng,
                RekeyAuthority::UnlockKey(&stranger),
                &password,
                &fast(),
                &mut none()
            )
            .unwrap_err(),
            StorageError::UnlockKeyMismatch
        );
        let iuk = s4.recover_unlock_key(&code, &mut none()).unwrap();
        let new_code = s4
            .rekey(
                &mut OsRng,
                RekeyAuthority::UnlockKey(&iuk),
                &password,
                &fast(),
                &mut none(),
            )
            .unwrap();
        assert_ne!(s4.to_bytes(), before);
        // Now block 3 exists: a stranger IUK cannot decrypt it.
        let rescue_only = s4.rescue_only(true).unwrap();
        let mut rescue_only_copy = rescue_only.clone();
        assert_eq!(
            rescue_only_copy
                .rekey(
                    &mut OsRng,
                    RekeyAuthority::UnlockKey(&stranger),
                    &password,
                    &fast(),
                    &mut none()
                )
                .unwrap_err(),
            StorageError::PreviousKeysUndecryptable
        );
        assert_eq!(rescue_only_copy, rescue_only);
        s4.verify(&password, &new_code, &mut none()).unwrap();
    }

    #[test]
    fn rescue_only_identity_gets_a_password() {
        let (full, code) = new_identity("pw");
        let text = full.to_textual_identity(false).unwrap();
        let mut restored = S4::import(text.as_bytes()).unwrap();
        assert_eq!(
            restored
                .unlock(&Password::from("pw"), &mut none())
                .unwrap_err(),
            StorageError::MissingBlock("password block")
        );
        restored
            .reset_password(
                &mut OsRng,
                &code,
                &Password::from("fresh"),
                KdfCost::Iterations(1),
                &mut none(),
            )
            .unwrap();
        assert_eq!(
            restored
                .blocks()
                .iter()
                .map(Block::block_type)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        let unlocked = restored
            .verify(&Password::from("fresh"), &code, &mut none())
            .unwrap();
        let original = full.unlock(&Password::from("pw"), &mut none()).unwrap();
        assert_eq!(unlocked.master_key(), original.master_key());
    }

    #[test]
    fn mixed_blocks_of_two_identities_are_a_mismatch() {
        let (a, _) = new_identity("pw");
        let (b, code_b) = new_identity("pw");
        let mut mixed = a.clone();
        mixed.put_block(b.blocks()[1].clone());
        assert_eq!(
            mixed
                .verify(&Password::from("pw"), &code_b, &mut none())
                .unwrap_err(),
            StorageError::UnlockKeyMismatch
        );
    }

    #[test]
    fn empty_passwords_are_refused() {
        let empty = Password::from("");
        assert_eq!(
            S4::create(&mut OsRng, &empty, &fast(), &mut none()).unwrap_err(),
            StorageError::EmptyPassword
        );
    }

    /// libsqrl's 2016 `test1.sqrl` (pre-v1): its blocks 1 and 2 decrypt to the
    /// published keys, but the identity as a whole is refused twice over: a type-3
    /// block without edition (PITFALLS 16) and a legacy ILK (PITFALLS 14).
    #[test]
    fn libsqrl_test1_decrypts_but_is_flagged_as_pre_v1() {
        assert_eq!(
            S4::parse(TEST1).unwrap_err(),
            FormatError::LegacyPreviousKeysBlock { length: 148 }
        );
        let (form, raw) = RawBlock::read_all(TEST1).unwrap();
        let password_block = PasswordBlock::parse(raw[0].as_bytes()).unwrap();
        let rescue_block = RescueBlock::parse(raw[1].as_bytes()).unwrap();
        assert_eq!(
            password_block.kdf_params(),
            EnScryptParams {
                log_n: 9,
                iterations: 4
            }
        );
        assert_eq!(
            rescue_block.kdf_params(),
            EnScryptParams {
                log_n: 9,
                iterations: 20
            }
        );
        let settings = password_block.settings();
        assert_eq!(settings.options.bits(), 0x00F1);
        assert_eq!(
            (
                settings.hint_length,
                settings.password_seconds,
                settings.idle_timeout_minutes
            ),
            (4, 1, 15)
        );

        let unlocked = password_block
            .unlock(&Password::from("the password"), &mut none())
            .unwrap();
        assert_eq!(
            unlocked.master_key().as_bytes(),
            &hex32("2970d2432dd6548d5d86843bb5f04fe47304cad0999c6315b07bec671090d7a9")
        );
        assert_eq!(
            unlocked.lock_key().as_bytes(),
            &hex32("f37c6817ee9c916a1efd4e648398b12372d5735f76db0984ece953e2be816a0f"),
            "the stored (legacy) ILK"
        );
        let code = RescueCode::parse("8942 6827 2655 4518 2834 0130").unwrap();
        let iuk = rescue_block.decrypt(&code, &mut none()).unwrap();
        assert_eq!(
            iuk.as_bytes(),
            &hex32("d8ef4bf9d7d8cd286ebd450ee2f4a7d222503fb1a27266b86a90bfcc0a4f99fa")
        );
        assert_eq!(
            iuk.lock_key().as_bytes(),
            &hex32("920ff6bdfe18ebf135a4ae599ddd7749e50107828958317cab6ed5a37323026d"),
            "the v1 ILK differs"
        );
        assert_eq!(
            unlocked.verify_unlock_key(&iuk).unwrap_err(),
            StorageError::LegacyKeyDerivation
        );

        // Without its legacy type-3 block the S4 parses, and the import check
        // still names the legacy derivation.
        let without_previous =
            S4::from_raw_blocks(form, raw.into_iter().take(2).collect()).unwrap();
        assert_eq!(
            without_previous
                .verify(&Password::from("the password"), &code, &mut none())
                .unwrap_err(),
            StorageError::LegacyKeyDerivation
        );
        assert_eq!(
            StorageError::LegacyKeyDerivation.to_string(),
            "the identity lock key uses the pre-v1 libsqrl derivation; this identity is not SQRL v1"
        );
    }
}
