//! S4 identity storage (SPEC 5): blocks 1, 2 and 3, rescue codes and the textual identity.
//!
//! An S4 identity is a header (`sqrldata` for binary, `SQRLDATA` for base64url text)
//! followed by blocks, each framed as `u16 LE length, u16 LE type, payload`:
//!
//! | type | module | holds | key |
//! |---|---|---|---|
//! | 1 | [`PasswordBlock`] | IMK and ILK | EnScrypt of the password |
//! | 2 | [`RescueBlock`] | IUK | EnScrypt of the 24-digit [`RescueCode`] |
//! | 3 | [`PreviousKeysBlock`] | up to four retired IUKs | the current IMK |
//! | other | [`RawBlock`] | kept byte for byte | — |
//!
//! [`S4`] is the whole identity: it parses every published form, writes back the
//! exact bytes it read, and offers the operations a client needs (create, unlock,
//! recover, change password, rekey, export). [`RawBlock`] and the typed block
//! parsers are the lower layer, for tools that need to look at a single block.
//!
//! ```
//! use std::time::Duration;
//! use sqrl_core::rand_core::OsRng;
//! use sqrl_core::secret::Password;
//! use sqrl_core::storage::{CreateOptions, KdfCost, S4};
//!
//! let password = Password::from("correct horse battery staple");
//! // Real identities use the time-based defaults; one iteration keeps the example fast.
//! let options = CreateOptions {
//!     password_cost: KdfCost::Iterations(1),
//!     rescue_cost: KdfCost::Iterations(1),
//!     ..CreateOptions::default()
//! };
//! let (identity, rescue_code) = S4::create(&mut OsRng, &password, &options, &mut |_, _| {})?;
//! // Show `rescue_code.to_grouped_string()` to the user once; it is never stored.
//! let bytes = identity.to_bytes();
//! let unlocked = S4::parse(&bytes)?.unlock(&password, &mut |_, _| {})?;
//! let iuk = identity.recover_unlock_key(&rescue_code, &mut |_, _| {})?;
//! unlocked.verify_unlock_key(&iuk)?;
//! # Ok::<(), sqrl_core::storage::StorageError>(())
//! ```

mod cipher;
mod container;
mod identity;
mod password_block;
mod previous_block;
mod reader;
mod rescue_block;
mod rescue_code;
mod text;

use std::time::Duration;

pub use container::{Block, RawBlock, S4, S4Form};
pub use identity::{CreateOptions, RekeyAuthority, UnlockedIdentity};
pub use password_block::{OptionFlags, PasswordBlock, PasswordSettings};
pub use previous_block::{MAX_PREVIOUS_KEYS, PreviousKeysBlock, PreviousUnlockKeys};
pub use reader::FieldError;
pub use rescue_block::RescueBlock;
pub use rescue_code::{RESCUE_CODE_DIGITS, RescueCode, RescueCodeError};

use crate::base56::Base56Error;
use crate::base64url::Base64Error;
use crate::enscrypt::{EnScryptError, Progress};

/// Block type of the password block (SPEC 5.1).
pub const BLOCK_TYPE_PASSWORD: u16 = 1;
/// Block type of the rescue-code block (SPEC 5.2).
pub const BLOCK_TYPE_RESCUE: u16 = 2;
/// Block type of the previous-IUKs block (SPEC 5.3).
pub const BLOCK_TYPE_PREVIOUS: u16 = 3;

/// How long the EnScrypt that protects a block should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfCost {
    /// Iterate until this much time has passed (at least once) and store the count
    /// reached. What a real client uses.
    Timed(Duration),
    /// Exactly this many iterations: for tests and reproducible vectors.
    Iterations(u32),
}

impl KdfCost {
    /// GRC's default password EnScrypt time (SPEC 4.2).
    pub const DEFAULT_PASSWORD: Self = Self::Timed(Duration::from_secs(5));
    /// GRC v1.04's rescue-code EnScrypt time (SPEC 4.2).
    pub const DEFAULT_RESCUE_CODE: Self = Self::Timed(Duration::from_secs(5));
}

/// Which EnScrypt run a progress report belongs to; operations that run several
/// (create, rekey) report each one in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KdfStage {
    /// Deriving the key of an existing password block from the entered password.
    UnlockPassword,
    /// Deriving the key of a new password block.
    EncryptPassword,
    /// Deriving the key of an existing rescue block from the entered rescue code.
    UnlockRescueCode,
    /// Deriving the key of a new rescue block.
    EncryptRescueCode,
}

/// Progress callback of the storage operations: which EnScrypt run, and how far.
pub type ProgressFn<'a> = dyn FnMut(KdfStage, Progress) + 'a;

/// Why bytes are not a well-formed S4 identity (nothing was decrypted yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Neither `sqrldata`, `SQRLDATA`, nor a bare rescue block (`SQAC…` or raw
    /// `49 00 02 00…`).
    #[error("not an S4 identity: no sqrldata/SQRLDATA header and not a bare rescue block")]
    UnrecognisedHeader,
    /// The base64url text after `SQRLDATA` (or of a bare `SQAC…` block) is invalid.
    #[error("S4 text form: {0}")]
    Base64(#[from] Base64Error),
    /// The textual (base56) identity does not decode.
    #[error("textual identity: {0}")]
    Base56(#[from] Base56Error),
    /// Fewer than the 4 bytes of a block header remain.
    #[error("truncated block header at byte {offset} of the block data")]
    TruncatedBlockHeader {
        /// Offset of the block in the block data (after the 8-byte header).
        offset: usize,
    },
    /// A block length below the 4 bytes of its own header (zero included).
    #[error("block at byte {offset} declares length {length}, shorter than its header")]
    BlockTooShort {
        /// Offset of the block in the block data.
        offset: usize,
        /// The declared length.
        length: u16,
    },
    /// A block runs past the end of the data.
    #[error("block at byte {offset} declares {length} bytes but only {available} remain")]
    TruncatedBlock {
        /// Offset of the block in the block data.
        offset: usize,
        /// The declared length.
        length: u16,
        /// Bytes left from the block's start.
        available: usize,
    },
    /// A second block of type 1, 2 or 3: which one to trust is ambiguous (PITFALLS 19).
    #[error("more than one block of type {block_type}")]
    DuplicateBlock {
        /// The repeated type.
        block_type: u16,
    },
    /// A known block type with a length its layout does not allow.
    #[error("block type {block_type} cannot be {length} bytes long")]
    BadBlockLength {
        /// The block type.
        block_type: u16,
        /// The declared length.
        length: u16,
    },
    /// A known block's declared length fits its layout, but its bytes do not
    /// hold its fields: which field was cut short, or how many bytes trail.
    #[error("block type {block_type}: {error}")]
    BlockFields {
        /// The block type.
        block_type: u16,
        /// The field that did not fit.
        error: FieldError,
    },
    /// A type-3 block in the pre-v1 libsqrl layout (no edition field, 4-byte AAD):
    /// reading it as v1 would silently mis-decrypt (PITFALLS 16).
    #[error(
        "type-3 block of {length} bytes is the pre-v1 libsqrl layout (no edition field); \
         this identity predates SQRL v1 and is not supported"
    )]
    LegacyPreviousKeysBlock {
        /// The declared length (for four keys: 148 rather than v1's 150).
        length: u16,
    },
    /// The password block's plaintext (AAD) length field is below the 45 bytes of
    /// the v1 fields or disagrees with the block length (SPEC 5.1, PITFALLS 20).
    #[error("password block plaintext length {aad_len} does not fit block length {length}")]
    BadPlaintextLength {
        /// The stored plaintext length.
        aad_len: u16,
        /// The block length.
        length: u16,
    },
    /// Neither a password block nor a rescue block: nothing identifies anyone.
    #[error("the S4 data holds neither a password block nor a rescue block")]
    NoIdentityBlocks,
    /// Headerless data whose first block is not a rescue block.
    #[error("headerless S4 data must start with a rescue block (type 2)")]
    NotARescueBlock,
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The data is not a well-formed identity.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The password does not decrypt the password block (AES-GCM tag mismatch).
    #[error("wrong password")]
    WrongPassword,
    /// The rescue code does not decrypt the rescue block (AES-GCM tag mismatch).
    #[error("wrong rescue code")]
    WrongRescueCode,
    /// The operation needs a block this identity does not have.
    #[error("the identity has no {0}")]
    MissingBlock(&'static str),
    /// The previous-IUKs block does not decrypt under this identity's IMK: it belongs
    /// to another identity, or the supplied IUK is not this identity's.
    #[error("the previous-identities block does not belong to this identity's unlock key")]
    PreviousKeysUndecryptable,
    /// The stored ILK was made with legacy libsqrl's derivation
    /// (`X25519_base(SHA512(IUK))`), not `X25519_base(IUK)`: every site association
    /// made with it is unusable with v1 clients (PITFALLS 14).
    #[error(
        "the identity lock key uses the pre-v1 libsqrl derivation; this identity is not SQRL v1"
    )]
    LegacyKeyDerivation,
    /// The rescue code's IUK does not produce the IMK/ILK in the password block: the
    /// blocks belong to different identities.
    #[error("the unlock key does not match the password block (blocks of different identities)")]
    UnlockKeyMismatch,
    /// A new password or rescue-protected block needs a non-empty password.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// The identity was rekeyed 65535 times already.
    #[error("the previous-identities edition counter is exhausted")]
    EditionOverflow,
    /// EnScrypt refused the stored or requested parameters.
    #[error(transparent)]
    EnScrypt(#[from] EnScryptError),
}
