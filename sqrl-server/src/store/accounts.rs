//! Accounts and their SQRL associations, as the account page and the
//! operator API see them. (The protocol's own reads and writes of
//! associations happen in [`super::Attempts::step`].)

use async_trait::async_trait;
use sqrl_core::keys::{IdentityKey, ServerUnlockKey, VerifyUnlockKey};

use super::StoreError;

/// A request that contradicts stored state (operator API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The identity key is already associated with an account.
    #[error("identity already associated")]
    IdentityTaken,
    /// The identity key was superseded and may not be associated again.
    #[error("identity was superseded")]
    IdentitySuperseded,
    /// The account already has a SQRL identity.
    #[error("account already has a SQRL identity")]
    AccountHasIdentity,
    /// The account does not exist.
    #[error("no such account")]
    NoAccount,
}

/// A SQRL association an operator makes (SPEC 8.3): the identity key and
/// the unlock keys its owner's client made for this site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssociation {
    /// The per-site identity key.
    pub idk: IdentityKey,
    /// Its Server Unlock Key.
    pub suk: ServerUnlockKey,
    /// Its Verify Unlock Key.
    pub vuk: VerifyUnlockKey,
}

/// An account's SQRL association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityView {
    /// The per-site identity key.
    pub idk: IdentityKey,
    /// SQRL login disabled by the user.
    pub disabled: bool,
    /// `sqrlonly` as last set.
    pub sqrl_only: bool,
    /// `hardlock` as last set.
    pub hardlock: bool,
    /// When the association was made.
    pub created_at: u64,
    /// The `sin`s for which an indexed secret is stored (never the secrets).
    pub indexed_secrets: Vec<String>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Row id.
    pub id: i64,
    /// Creation time.
    pub created_at: u64,
    /// Its SQRL association, if it has one.
    pub identity: Option<IdentityView>,
    /// Identity keys this account answered to before (superseded).
    pub superseded: Vec<IdentityKey>,
}

/// Accounts and associations. Every method is one transaction.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// An account and its association.
    async fn account(&self, account_id: i64) -> Result<Option<AccountView>, StoreError>;

    /// The account an identity key is associated with.
    async fn account_by_identity(
        &self,
        idk: &IdentityKey,
    ) -> Result<Option<AccountView>, StoreError>;

    /// Associates an identity with an account (a new one when `account_id`
    /// is `None`). Returns the account id.
    async fn associate(
        &self,
        account_id: Option<i64>,
        association: NewAssociation,
        now: u64,
    ) -> Result<Result<i64, Conflict>, StoreError>;

    /// Deletes an identity's association (the account stays) and ends every
    /// session of its account, recording `session.revoked` for each and
    /// `identity.removed` (by the operator) in the same transaction. `false`
    /// if there was none.
    async fn remove_identity(&self, idk: &IdentityKey, now: u64) -> Result<bool, StoreError>;

    /// The account's handle: an opaque name for it that never changes (not
    /// when its identity is replaced either) and says nothing about other
    /// accounts, for the reverse proxy to hand to the apps it protects. The
    /// first call for an account stores `fresh` (a random value) as its
    /// handle; every later one returns the stored one. `None` if there is no
    /// such account.
    async fn account_handle(
        &self,
        account_id: i64,
        fresh: &str,
    ) -> Result<Option<String>, StoreError>;
}
