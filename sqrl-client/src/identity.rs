//! A stored identity, read and unlocked: the glue between the S4 storage rules
//! of `sqrl_core::storage` and the CLI's files, prompts and progress bars.

use std::time::Duration;

use sqrl_core::enscrypt::Progress;
use sqrl_core::keys::{IdentityLockKey, IdentityUnlockKey, SiteKey, SiteSigner, UrsSigner};
use sqrl_core::secret::Password;
use sqrl_core::storage::{
    CreateOptions, FormatError, KdfCost, KdfStage, OptionFlags, PreviousUnlockKeys, RescueCode, S4,
    StorageError, UnlockedIdentity,
};
use sqrl_core::url::SiteKeyString;

use crate::error::{Error, Result};
use crate::output::ProgressBar;
use crate::prompt::SecretSources;
use crate::session::IdentityKeys;
use crate::store::Store;

/// EnScrypt costs for newly written blocks.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// Password block.
    pub password: KdfCost,
    /// Rescue block.
    pub rescue: KdfCost,
}

impl Costs {
    /// GRC's 5-second defaults, or a test budget in milliseconds.
    pub fn from_budget(millis: Option<u64>) -> Self {
        match millis {
            Some(ms) => Self {
                password: KdfCost::Timed(Duration::from_millis(ms)),
                rescue: KdfCost::Timed(Duration::from_millis(ms)),
            },
            None => Self {
                password: KdfCost::DEFAULT_PASSWORD,
                rescue: KdfCost::DEFAULT_RESCUE_CODE,
            },
        }
    }

    /// `" (EnScrypt, about N seconds)"` for a progress note when the costs are
    /// timed and add up to a second or more; empty otherwise.
    pub fn duration_note(self) -> String {
        match (self.password, self.rescue) {
            (KdfCost::Timed(a), KdfCost::Timed(b)) if (a + b).as_secs() >= 1 => {
                format!(" (EnScrypt, about {} seconds)", (a + b).as_secs())
            }
            _ => String::new(),
        }
    }

    /// Options for `S4::create` / `S4::rekey`.
    pub fn create_options(self) -> CreateOptions {
        CreateOptions {
            password_cost: self.password,
            rescue_cost: self.rescue,
            ..CreateOptions::default()
        }
    }
}

/// Draws one progress bar per EnScrypt run of a storage operation.
#[derive(Debug)]
pub struct KdfProgress {
    enabled: bool,
    stage: Option<KdfStage>,
    bar: Option<ProgressBar>,
}

impl KdfProgress {
    /// Draws bars only if `enabled` (a terminal, not `--json`).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            stage: None,
            bar: None,
        }
    }

    /// The callback to hand to storage operations.
    pub fn callback(&mut self) -> impl FnMut(KdfStage, Progress) + '_ {
        move |stage, progress| {
            if self.stage != Some(stage) {
                if let Some(mut bar) = self.bar.take() {
                    bar.finish();
                }
                self.stage = Some(stage);
                self.bar = Some(ProgressBar::new(stage_label(stage), self.enabled));
            }
            if let Some(bar) = self.bar.as_mut() {
                bar.update(progress.fraction);
            }
        }
    }
}

fn stage_label(stage: KdfStage) -> &'static str {
    match stage {
        KdfStage::UnlockPassword => "Checking password    ",
        KdfStage::EncryptPassword => "Encrypting (password)",
        KdfStage::UnlockRescueCode => "Checking rescue code ",
        KdfStage::EncryptRescueCode => "Encrypting (rescue)  ",
        _ => "EnScrypt             ",
    }
}

/// How many times a login asks for a mistyped password.
pub const PASSWORD_TRIES: u32 = 3;

/// A stored identity, parsed but still locked.
#[derive(Debug, Clone)]
pub struct StoredIdentity {
    /// Its name in the store.
    pub name: String,
    /// The parsed blocks.
    pub s4: S4,
}

impl StoredIdentity {
    /// Reads and parses a stored identity.
    pub fn load(store: &Store, name: &str) -> Result<Self> {
        let bytes = store.read(name)?;
        let s4 = S4::parse(&bytes)
            .map_err(|e| Error::identity(format!("stored identity {name:?} is damaged"), e))?;
        Ok(Self {
            name: name.to_owned(),
            s4,
        })
    }

    /// Unlocks with the password, read from `--password-file` or asked on the
    /// terminal, where a wrong one (found by the block's AES-GCM tag, after
    /// EnScrypt) is asked again, up to [`PASSWORD_TRIES`] times in all.
    pub fn unlock(&self, secrets: &SecretSources, progress: &mut KdfProgress) -> Result<Unlocked> {
        let tries = if secrets.password_is_asked() {
            PASSWORD_TRIES
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            let password = secrets.password(&self.name)?;
            match self.unlock_with(&password, progress) {
                Err(Error::WrongPassword(_)) if attempt < tries => {
                    let left = tries - attempt;
                    crate::prompt::say(&format!(
                        "Wrong password for identity {:?}; {left} {} left.",
                        self.name,
                        if left == 1 { "try" } else { "tries" }
                    ));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Unlocks with a given password.
    pub fn unlock_with(&self, password: &Password, progress: &mut KdfProgress) -> Result<Unlocked> {
        let unlocked = self
            .s4
            .unlock(password, &mut progress.callback())
            .map_err(|e| storage_error(&self.name, e))?;
        let previous = self
            .s4
            .previous_unlock_keys(unlocked.master_key())
            .map_err(|e| storage_error(&self.name, e))?;
        Ok(Unlocked { unlocked, previous })
    }

    /// The IUK, from the rescue code; checked against the unlocked identity if given.
    pub fn unlock_key(
        &self,
        secrets: &SecretSources,
        unlocked: Option<&Unlocked>,
        progress: &mut KdfProgress,
    ) -> Result<IdentityUnlockKey> {
        let code = read_rescue_code(secrets)?;
        let iuk = self
            .s4
            .recover_unlock_key(&code, &mut progress.callback())
            .map_err(|e| storage_error(&self.name, e))?;
        if let Some(unlocked) = unlocked {
            unlocked
                .unlocked
                .verify_unlock_key(&iuk)
                .map_err(|e| match e {
                    // A rescue code that decrypts this file's rescue block but not
                    // to this identity's key: the blocks are mismatched.
                    StorageError::UnlockKeyMismatch => Error::identity(
                        format!(
                            "identity {:?}: its rescue block belongs to another identity",
                            self.name
                        ),
                        e,
                    ),
                    other => storage_error(&self.name, other),
                })?;
        }
        Ok(iuk)
    }
}

/// Reads and parses the rescue code (dashes and spaces ignored, PITFALLS 17).
pub fn read_rescue_code(secrets: &SecretSources) -> Result<RescueCode> {
    let text = secrets.rescue_code()?;
    RescueCode::parse(&text).map_err(|_| Error::MalformedRescueCode)
}

/// Maps a storage failure to a CLI error naming the identity.
pub fn storage_error(name: &str, error: StorageError) -> Error {
    match error {
        StorageError::WrongPassword => Error::WrongPassword(name.to_owned()),
        StorageError::WrongRescueCode => Error::WrongRescueCode,
        StorageError::EmptyPassword => Error::EmptyPassword,
        other => Error::identity(format!("identity {name:?}"), other),
    }
}

/// Maps a parse failure of imported data to a CLI error naming the source.
pub fn format_error(source: &str, error: FormatError) -> Error {
    Error::identity(format!("cannot import {source}"), error)
}

/// An identity unlocked with its password, with its previous IUKs.
pub struct Unlocked {
    unlocked: UnlockedIdentity,
    previous: PreviousUnlockKeys,
}

impl Unlocked {
    /// The unlocked password block.
    pub fn identity(&self) -> &UnlockedIdentity {
        &self.unlocked
    }

    /// Number of previous identities kept (S4 block 3).
    pub fn previous_count(&self) -> usize {
        self.previous.keys.len()
    }
}

impl core::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unlocked")
            .field("previous", &self.previous.keys.len())
            .finish_non_exhaustive()
    }
}

impl Unlocked {
    /// The current identity's key for a site.
    pub fn site_key(&self, site: &SiteKeyString) -> SiteKey {
        self.unlocked.master_key().site_key(site)
    }

    /// The previous identities' keys for a site, newest first.
    pub fn previous_site_keys(&self, site: &SiteKeyString) -> Vec<SiteKey> {
        self.previous
            .keys
            .iter()
            .map(|piuk| piuk.master_key().site_key(site))
            .collect()
    }

    /// Previous identity `index`'s key for a site (0 = newest), if there is one.
    pub fn previous_site_key(&self, site: &SiteKeyString, index: usize) -> Option<SiteKey> {
        self.previous
            .keys
            .get(index)
            .map(|piuk| piuk.master_key().site_key(site))
    }

    /// The IUK of previous identity `index` (0 = newest), if there is one.
    pub fn previous_unlock_key(&self, index: usize) -> Option<&IdentityUnlockKey> {
        self.previous.keys.get(index)
    }

    /// The Identity Lock Key (public: it makes new associations).
    pub fn lock_key(&self) -> IdentityLockKey {
        self.unlocked.lock_key()
    }

    /// The identity's `sqrlonly` and `hardlock` requests (S4 option flags).
    pub fn sqrl_only_and_hard_lock(&self) -> (bool, bool) {
        let options = self.unlocked.settings().options;
        (
            options.contains(OptionFlags::SQRL_ONLY),
            options.contains(OptionFlags::HARD_LOCK),
        )
    }
}

/// The keys are in this process: each signer is the key itself.
impl IdentityKeys for Unlocked {
    fn site_signer(&self, site: &SiteKeyString) -> Result<Box<dyn SiteSigner>> {
        Ok(Box::new(self.site_key(site)))
    }

    fn previous_site_signers(&self, site: &SiteKeyString) -> Result<Vec<Box<dyn SiteSigner>>> {
        Ok(self
            .previous_site_keys(site)
            .into_iter()
            .map(|key| Box::new(key) as Box<dyn SiteSigner>)
            .collect())
    }

    fn lock_key(&self) -> Result<IdentityLockKey> {
        Ok(Unlocked::lock_key(self))
    }

    fn previous_urs_signer(&self, index: usize) -> Result<Option<Box<dyn UrsSigner>>> {
        Ok(self
            .previous_unlock_key(index)
            .map(|piuk| Box::new(piuk.clone()) as Box<dyn UrsSigner>))
    }

    fn sqrl_only_and_hard_lock(&self) -> (bool, bool) {
        Unlocked::sqrl_only_and_hard_lock(self)
    }
}
