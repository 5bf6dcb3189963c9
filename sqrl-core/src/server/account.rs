//! What a server stores per SQRL identity (SPEC 8.3), and the changes a decision
//! asks it to make.

use super::secret::SecretDigest;
use crate::keys::{IdentityKey, ServerUnlockKey, VerifyUnlockKey};
use crate::msg::ClientOptions;

/// The account flags a client sets with `opt=` (SPEC 2.2). The server keeps the
/// state of the most recent successful non-query command (PITFALLS 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccountOptions {
    /// `sqrlonly`: the user asks the site to refuse non-SQRL login.
    pub sqrl_only: bool,
    /// `hardlock`: the user asks the site to refuse non-SQRL account recovery.
    pub hardlock: bool,
}

impl AccountOptions {
    /// The flags a request's `opt=` sets (absence clears them).
    pub fn from_request(options: ClientOptions) -> Self {
        Self {
            sqrl_only: options.contains(ClientOptions::SQRLONLY),
            hardlock: options.contains(ClientOptions::HARDLOCK),
        }
    }
}

/// The SQRL association a server holds for one identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The Server Unlock Key, returned to the client when it needs to sign `urs`.
    pub suk: ServerUnlockKey,
    /// The Verify Unlock Key that checks `urs`.
    pub vuk: VerifyUnlockKey,
    /// SQRL login disabled for this account (only `enable` with `urs` clears it).
    pub disabled: bool,
    /// `sqrlonly` / `hardlock` as last set.
    pub options: AccountOptions,
}

impl AccountRecord {
    /// A new association: enabled, with the keys and options of the request
    /// that created it.
    pub fn new(suk: ServerUnlockKey, vuk: VerifyUnlockKey, options: AccountOptions) -> Self {
        Self {
            suk,
            vuk,
            disabled: false,
            options,
        }
    }
}

/// The stored facts a decision needs about the request's keys. The driver reads
/// them for the keys [`super::Incoming::lookups`] names, in the transaction
/// that applies the decision, and keeps them locked until it commits: the
/// decision is only as true as these records. (A decision that changes
/// nothing durable, such as every one that
/// [`super::Incoming::changes_nothing`] promises, holds on the snapshot it
/// was read from and needs no lock.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// The account associated with `idk`, if any.
    pub current: Option<AccountRecord>,
    /// Whether `idk` is on the durable list of superseded identities (SPEC 3.1
    /// TIF 0x200, PITFALLS 25).
    pub current_superseded: bool,
    /// The account associated with `pidk`, if the request has a `pidk` and an
    /// account exists for it.
    pub previous: Option<AccountRecord>,
    /// The indexed-secret digest kept for `idk` under the `sin` of the
    /// conversation the request continues ([`super::Conversation::sin`]);
    /// `None` when none is kept, or that conversation asked for none. See
    /// [`super::SecretWrite`].
    pub current_secret: Option<SecretDigest>,
    /// The same for `pidk`.
    pub previous_secret: Option<SecretDigest>,
}

/// The keys whose records a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookups {
    /// The request's `idk`: read its account and whether it is superseded.
    pub idk: IdentityKey,
    /// The request's `pidk`, if any: read its account.
    pub pidk: Option<IdentityKey>,
}

/// The account change a decision requires. The driver applies it atomically
/// (one transaction, together with storing the next conversation step) before
/// it sends the reply. Decided on locked [`Records`], it applies; if the
/// database still refuses it (a race the locks did not cover), the driver
/// rolls the whole step back and decides again on fresh records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mutation {
    /// Nothing changes (every `query`, every failure).
    None,
    /// A new identity: create the association `idk` → `suk`, `vuk` (new
    /// account, or the account an operator hook chooses).
    Create {
        /// The new identity key (unique).
        idk: IdentityKey,
        /// Its Server Unlock Key.
        suk: ServerUnlockKey,
        /// Its Verify Unlock Key.
        vuk: VerifyUnlockKey,
        /// `sqrlonly` / `hardlock` from the request.
        options: AccountOptions,
    },
    /// Identity replacement (SPEC 2.2 `ident` after TIF 0x02, 4.5): the account
    /// of `previous` is re-keyed to `idk` with the new `suk`/`vuk`, and
    /// `previous` goes on the superseded list (TIF 0x200 from then on).
    Replace {
        /// The identity key being retired (the request's `pidk`).
        previous: IdentityKey,
        /// The identity key the account now answers to (the request's `idk`).
        idk: IdentityKey,
        /// The new Server Unlock Key.
        suk: ServerUnlockKey,
        /// The new Verify Unlock Key.
        vuk: VerifyUnlockKey,
        /// `sqrlonly` / `hardlock` from the request.
        options: AccountOptions,
    },
    /// A successful `ident` of a known identity: only the flags are stored.
    SetOptions {
        /// The account's identity key.
        idk: IdentityKey,
        /// `sqrlonly` / `hardlock` from the request.
        options: AccountOptions,
    },
    /// `disable`: set the disabled flag (and the flags from `opt`).
    Disable {
        /// The account's identity key.
        idk: IdentityKey,
        /// `sqrlonly` / `hardlock` from the request.
        options: AccountOptions,
    },
    /// `enable` with a valid `urs`: clear the disabled flag (and set the flags
    /// from `opt`). `idk` is the key the account is stored under: the request's
    /// `idk`, or its `pidk` when only the previous identity is known (so a
    /// disabled account can be re-enabled before its identity is replaced).
    Enable {
        /// The account's identity key.
        idk: IdentityKey,
        /// `sqrlonly` / `hardlock` from the request.
        options: AccountOptions,
    },
    /// `remove` with a valid `urs`: delete the SQRL association of `idk`
    /// (the site account itself may stay, e.g. to associate a new identity).
    Remove {
        /// The identity key whose association goes.
        idk: IdentityKey,
    },
}

impl Mutation {
    /// Whether the decision changes nothing.
    pub fn is_none(&self) -> bool {
        matches!(self, Mutation::None)
    }

    /// The identity key the account is stored under once the change is
    /// applied (for [`Mutation::Remove`], the key whose association goes).
    pub fn idk(&self) -> Option<&IdentityKey> {
        match self {
            Mutation::None => None,
            Mutation::Create { idk, .. }
            | Mutation::Replace { idk, .. }
            | Mutation::SetOptions { idk, .. }
            | Mutation::Disable { idk, .. }
            | Mutation::Enable { idk, .. }
            | Mutation::Remove { idk } => Some(idk),
        }
    }

    /// Whether the account's browser sessions must end with this change, in
    /// the same transaction.
    ///
    /// `disable` always: a user stops SQRL logins when the identity may be in
    /// someone else's hands, and sessions it opened must not outlive that.
    /// Identity replacement (rekey) when the site chooses (`on_rekey`): the
    /// old identity is retired for the same reason, but the browser being
    /// logged in by the replacing `ident` gets its session afterwards either
    /// way. Never `remove`: SPEC 2.2 keeps the browser session so that a new
    /// identity can be associated.
    pub fn ends_sessions(&self, on_rekey: bool) -> bool {
        match self {
            Mutation::Disable { .. } => true,
            Mutation::Replace { .. } => on_rekey,
            _ => false,
        }
    }
}
