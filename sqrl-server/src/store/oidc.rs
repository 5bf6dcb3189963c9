//! What the OpenID Connect provider ([`crate::oidc`]) keeps: its signing
//! keys, the grants people gave relying parties, the codes and tokens issued
//! for them, consents, and pairwise subject identifiers.
//!
//! A grant belongs to the browser session it was given in (a foreign key
//! with `ON DELETE CASCADE`), and its codes and tokens to the grant: when a
//! session ends — logout, revocation on the account page, the identity
//! disabled or removed, expiry — every token derived from it is gone in the
//! same transaction, on every instance, with nothing to forget. Tokens are
//! stored as SHA-256 hashes ([`TokenHash`]) like the session cookies.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::StoreError;
use crate::token::TokenHash;

/// A stored signing key. The private key never leaves the store but to
/// sign; it is wiped when dropped.
#[derive(Clone)]
pub struct StoredSigningKey {
    /// The key id (`kid`).
    pub kid: String,
    /// The JOSE algorithm (`ES256`).
    pub alg: String,
    /// The private key, PKCS #8 DER.
    pub private_der: Zeroizing<Vec<u8>>,
    /// When it was made (it is published from then on).
    pub created_at: u64,
    /// When it starts signing.
    pub signs_from: u64,
    /// When it stops signing.
    pub signs_until: u64,
    /// When it leaves the published key set.
    pub published_until: u64,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("signs_from", &self.signs_from)
            .field("signs_until", &self.signs_until)
            .field("published_until", &self.published_until)
            .finish_non_exhaustive()
    }
}

/// A grant to be recorded with its authorization code.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The relying party.
    pub client_id: String,
    /// Whose.
    pub account_id: i64,
    /// The browser session it was given in.
    pub session_id: i64,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The relying party's `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the person signed in with SQRL (the session's start).
    pub auth_time: u64,
    /// How (`amr` values, space-separated).
    pub amr: String,
    /// The client's subject identifier for the person.
    pub subject: String,
    /// The client's identifier for the session (`sid`).
    pub sid: String,
    /// Where the client is told when the session ends (back-channel logout).
    pub logout_uri: Option<String>,
}

/// An authorization code to be recorded.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// SHA-256 of the code.
    pub code_hash: TokenHash,
    /// The redirect URI the code was sent to (the token request must name it).
    pub redirect_uri: String,
    /// The PKCE `S256` challenge, if the request carried one.
    pub code_challenge: Option<String>,
    /// Expiry.
    pub expires_at: u64,
}

/// A live grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Row id.
    pub id: i64,
    /// The relying party.
    pub client_id: String,
    /// Whose.
    pub account_id: i64,
    /// The session it belongs to.
    pub session_id: i64,
    /// Scopes, space-separated.
    pub scope: String,
    /// The `nonce` of the authorization request.
    pub nonce: Option<String>,
    /// When the person signed in.
    pub auth_time: u64,
    /// `amr` values, space-separated.
    pub amr: String,
    /// The client's subject identifier for the person.
    pub subject: String,
    /// The client's identifier for the session.
    pub sid: String,
}

/// A code taken for redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTaken {
    /// First use: the code is now spent.
    Fresh {
        /// Its grant (boxed: the other outcomes are small).
        grant: Box<Grant>,
        /// Where it was sent.
        redirect_uri: String,
        /// Its PKCE challenge.
        code_challenge: Option<String>,
    },
    /// The code was used before: its grant, and every token issued from it,
    /// has just been revoked.
    Replayed,
    /// Unknown, expired, or its grant is gone.
    Unknown,
}

/// An access and a refresh token to be recorded for a grant.
#[derive(Debug, Clone)]
pub struct NewTokens {
    /// SHA-256 of the access token.
    pub access: TokenHash,
    /// Its expiry.
    pub access_expires_at: u64,
    /// SHA-256 of the refresh token.
    pub refresh: TokenHash,
    /// Its expiry.
    pub refresh_expires_at: u64,
}

/// Which kind a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Bearer for userinfo and resource servers.
    Access,
    /// Redeemed once at the token endpoint for new tokens.
    Refresh,
}

impl TokenKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// A live token and its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// Which kind.
    pub kind: TokenKind,
    /// Issued.
    pub created_at: u64,
    /// Expiry.
    pub expires_at: u64,
    /// The grant it derives from.
    pub grant: Grant,
}

/// What became of a refresh token presented for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Spent; the new tokens are recorded for this grant.
    Rotated(Grant),
    /// It had been used before: the whole grant is revoked.
    Reused,
    /// Unknown, expired, another client's, or its grant is gone.
    Unknown,
}

/// A relying party a person allowed, as their account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    /// The relying party (it may since have left the configuration).
    pub client_id: String,
    /// The scopes allowed, space-separated.
    pub scope: String,
    /// When the person last allowed it.
    pub allowed_at: u64,
    /// Whether it holds a live access or refresh token: one it could use
    /// right now, from a session that has not ended.
    pub holds_tokens: bool,
}

/// The provider's storage. Every method is one transaction.
#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    /// The signing keys still published at `now`.
    async fn signing_keys(&self, now: u64) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Adds a signing key.
    async fn add_signing_key(&self, key: StoredSigningKey) -> Result<(), StoreError>;

    /// Records a grant and its first authorization code, if the session is
    /// still live at `now`; the grant's id, or `None` when it is not.
    async fn issue_code(
        &self,
        grant: NewGrant,
        code: NewCode,
        now: u64,
    ) -> Result<Option<i64>, StoreError>;

    /// Takes a code for redemption (see [`CodeTaken`]).
    async fn take_code(&self, code_hash: TokenHash, now: u64) -> Result<CodeTaken, StoreError>;

    /// Records tokens for a live grant; `false` if the grant is gone.
    async fn issue_tokens(
        &self,
        grant_id: i64,
        tokens: NewTokens,
        now: u64,
    ) -> Result<bool, StoreError>;

    /// Spends refresh token `old` of `client_id` and records `tokens` in its
    /// place (see [`Rotation`]). A refresh counts as use of the session.
    async fn rotate_refresh(
        &self,
        old: TokenHash,
        client_id: &str,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError>;

    /// A live token: not expired, not a spent refresh token, its grant and
    /// session live.
    async fn token(&self, hash: TokenHash, now: u64) -> Result<Option<TokenView>, StoreError>;

    /// Revokes a token of `client_id` (RFC 7009): an access token alone, a
    /// refresh token with its whole grant. `false` if there was none.
    async fn revoke_token(&self, hash: TokenHash, client_id: &str) -> Result<bool, StoreError>;

    /// Revokes a grant and everything issued from it.
    async fn revoke_grant(&self, grant_id: i64) -> Result<(), StoreError>;

    /// The scopes `account_id` allowed `client_id`, if it did.
    async fn consent(&self, account_id: i64, client_id: &str)
    -> Result<Option<String>, StoreError>;

    /// Remembers that `account_id` allowed `client_id` `scope`.
    async fn give_consent(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &str,
        now: u64,
    ) -> Result<(), StoreError>;

    /// The account's subject identifier for `sector`, minted from `fresh`
    /// on first use; `None` if the account is gone.
    async fn pairwise_subject(
        &self,
        account_id: i64,
        sector: &str,
        fresh: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The relying parties `account_id` allowed, the latest allowed first,
    /// each with whether it holds a live token at `now`.
    async fn connected_apps(
        &self,
        account_id: i64,
        now: u64,
    ) -> Result<Vec<ConnectedApp>, StoreError>;

    /// Disconnects `client_id` from `account_id`: withdraws the consent
    /// (its next authorization asks again) and revokes every grant, so
    /// every code and token the client holds for the account, from every
    /// session. `false` if the account had neither consent nor grant for it.
    async fn disconnect(&self, account_id: i64, client_id: &str) -> Result<bool, StoreError>;
}

/// The statements, written once for both backends with `?N` placeholders
/// (PostgreSQL's `$N` come from [`sql::dollars`]). Booleans are written
/// `TRUE`/`FALSE`, which SQLite reads as 1 and 0.
pub(super) mod sql {
    /// PostgreSQL's spelling of a statement below.
    pub(in crate::store) fn dollars(sql: &str) -> String {
        sql.replace('?', "$")
    }

    /// The grant columns every query below selects last, in
    /// [`super::Grant`]'s order.
    macro_rules! grant_columns {
        () => {
            "g.id, g.client_id, g.account_id, g.session_id, g.scope, g.nonce, g.auth_time, g.amr, \
             g.subject, g.sid"
        };
    }

    pub(in crate::store) const SIGNING_KEYS: &str = "SELECT kid, alg, private_der, created_at,
            signs_from, signs_until, published_until
       FROM oidc_signing_keys WHERE published_until > ?1 ORDER BY signs_from, kid";

    pub(in crate::store) const ADD_SIGNING_KEY: &str = "INSERT INTO oidc_signing_keys
        (kid, alg, private_der, created_at, signs_from, signs_until, published_until)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

    /// A grant, only while its session lives (`?3` session, `?8` now).
    pub(in crate::store) const INSERT_GRANT: &str = "INSERT INTO oidc_grants
        (client_id, account_id, session_id, scope, nonce, auth_time, amr, created_at,
         subject, sid, logout_uri)
        SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
         WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?3 AND expires_at > ?8)
        RETURNING id";

    pub(in crate::store) const INSERT_CODE: &str = "INSERT INTO oidc_codes
        (code_hash, grant_id, redirect_uri, code_challenge, expires_at)
        VALUES (?1, ?2, ?3, ?4, ?5)";

    /// A code with its grant, while the grant's session lives.
    pub(in crate::store) const FIND_CODE: &str = concat!(
        "SELECT c.used, c.expires_at, c.redirect_uri, c.code_challenge, ",
        grant_columns!(),
        " FROM oidc_codes c JOIN oidc_grants g ON g.id = c.grant_id
           JOIN sessions s ON s.id = g.session_id
          WHERE c.code_hash = ?1 AND s.expires_at > ?2"
    );

    pub(in crate::store) const SPEND_CODE: &str =
        "UPDATE oidc_codes SET used = TRUE WHERE code_hash = ?1";

    pub(in crate::store) const DELETE_GRANT: &str = "DELETE FROM oidc_grants WHERE id = ?1";

    /// One token for a grant that still exists: hash, grant, kind, now, expiry.
    pub(in crate::store) const INSERT_TOKEN: &str = "INSERT INTO oidc_tokens
        (token_hash, grant_id, kind, created_at, expires_at)
        SELECT ?1, id, ?3, ?4, ?5 FROM oidc_grants WHERE id = ?2";

    /// A token with its grant, while the grant's session lives.
    pub(in crate::store) const FIND_TOKEN: &str = concat!(
        "SELECT t.kind, t.used, t.created_at, t.expires_at, ",
        grant_columns!(),
        " FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id
           JOIN sessions s ON s.id = g.session_id
          WHERE t.token_hash = ?1 AND s.expires_at > ?2"
    );

    pub(in crate::store) const SPEND_TOKEN: &str =
        "UPDATE oidc_tokens SET used = TRUE WHERE token_hash = ?1";

    pub(in crate::store) const DELETE_TOKEN: &str = "DELETE FROM oidc_tokens WHERE token_hash = ?1";

    /// A refresh counts as use of the session (`?1` session, `?2` now).
    pub(in crate::store) const TOUCH_SESSION: &str =
        "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2";

    /// The kind and grant of a token of client `?2`.
    pub(in crate::store) const TOKEN_OF_CLIENT: &str = "SELECT t.kind, t.grant_id
         FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id
        WHERE t.token_hash = ?1 AND g.client_id = ?2";

    pub(in crate::store) const CONSENT: &str =
        "SELECT scope FROM oidc_consents WHERE account_id = ?1 AND client_id = ?2";

    pub(in crate::store) const GIVE_CONSENT: &str = "INSERT INTO oidc_consents
        (account_id, client_id, scope, granted_at) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (account_id, client_id)
        DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at";

    /// Mints the account's subject for a sector unless it has one.
    pub(in crate::store) const MINT_SUBJECT: &str = "INSERT INTO oidc_subjects
        (account_id, sector, subject)
        SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)
        ON CONFLICT (account_id, sector) DO NOTHING";

    pub(in crate::store) const SUBJECT: &str =
        "SELECT subject FROM oidc_subjects WHERE account_id = ?1 AND sector = ?2";

    /// What pruning deletes (`?1` now): spent and expired codes and
    /// tokens, and keys no longer published.
    pub(in crate::store) const PRUNE: [&str; 3] = [
        "DELETE FROM oidc_codes WHERE expires_at <= ?1",
        "DELETE FROM oidc_tokens WHERE expires_at <= ?1",
        "DELETE FROM oidc_signing_keys WHERE published_until <= ?1",
    ];

    /// The consents of account `?1`, each with whether the client holds a
    /// token that [`FIND_TOKEN`] would still give out at `?2`.
    pub(in crate::store) const CONNECTED_APPS: &str = "SELECT c.client_id, c.scope, c.granted_at,
            EXISTS (SELECT 1 FROM oidc_grants g
                      JOIN oidc_tokens t ON t.grant_id = g.id
                      JOIN sessions s ON s.id = g.session_id
                     WHERE g.account_id = c.account_id AND g.client_id = c.client_id
                       AND t.used = FALSE AND t.expires_at > ?2 AND s.expires_at > ?2)
       FROM oidc_consents c WHERE c.account_id = ?1
      ORDER BY c.granted_at DESC, c.client_id";

    pub(in crate::store) const WITHDRAW_CONSENT: &str =
        "DELETE FROM oidc_consents WHERE account_id = ?1 AND client_id = ?2";

    /// Every grant of client `?2` for account `?1`; their codes and tokens
    /// go with them (`ON DELETE CASCADE`).
    pub(in crate::store) const DELETE_GRANTS_OF_CLIENT: &str =
        "DELETE FROM oidc_grants WHERE account_id = ?1 AND client_id = ?2";
}
