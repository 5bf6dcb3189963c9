//! [`OidcStore`] on PostgreSQL: each method one transaction; a code or a
//! refresh token is locked (`FOR UPDATE`) while it is spent, so two
//! instances redeeming one at once see it used exactly once, and the second
//! revokes the grant.

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use zeroize::Zeroizing;

use super::{PostgresStore, exec, get, opt};
use crate::store::StoreError;
use crate::store::oidc::sql::{self, dollars};
use crate::store::oidc::{
    CodeTaken, ConnectedApp, Grant, NewCode, NewGrant, NewTokens, OidcStore, Rotation,
    StoredSigningKey, TokenKind, TokenView,
};
use crate::store::rows::{corrupt, from_sql_time, sql_time};
use crate::token::TokenHash;

/// The grant whose columns start at `at`.
fn grant_at(row: &Row, at: usize) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: get(row, at)?,
        client_id: get(row, at + 1)?,
        account_id: get(row, at + 2)?,
        session_id: get(row, at + 3)?,
        scope: get(row, at + 4)?,
        nonce: get(row, at + 5)?,
        auth_time: from_sql_time(get(row, at + 6)?),
        amr: get(row, at + 7)?,
        subject: get(row, at + 8)?,
        sid: get(row, at + 9)?,
    })
}

async fn insert_tokens<C: deadpool_postgres::GenericClient>(
    c: &C,
    grant_id: i64,
    tokens: &NewTokens,
    now: u64,
) -> Result<bool, StoreError> {
    let mut inserted = 0;
    for (hash, kind, expires_at) in [
        (tokens.access, TokenKind::Access, tokens.access_expires_at),
        (
            tokens.refresh,
            TokenKind::Refresh,
            tokens.refresh_expires_at,
        ),
    ] {
        let params: [&(dyn ToSql + Sync); 5] = [
            &hash.as_bytes().as_slice(),
            &grant_id,
            &kind.as_str(),
            &sql_time(now),
            &sql_time(expires_at),
        ];
        inserted += exec(c, &dollars(sql::INSERT_TOKEN), &params).await?;
    }
    Ok(inserted == 2)
}

#[async_trait]
impl OidcStore for PostgresStore {
    async fn signing_keys(&self, now: u64) -> Result<Vec<StoredSigningKey>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&dollars(sql::SIGNING_KEYS)).await?;
        client
            .query(&statement, &[&sql_time(now)])
            .await?
            .iter()
            .map(|row| {
                Ok(StoredSigningKey {
                    kid: get(row, 0)?,
                    alg: get(row, 1)?,
                    private_der: Zeroizing::new(get(row, 2)?),
                    created_at: from_sql_time(get(row, 3)?),
                    signs_from: from_sql_time(get(row, 4)?),
                    signs_until: from_sql_time(get(row, 5)?),
                    published_until: from_sql_time(get(row, 6)?),
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, key: StoredSigningKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        exec(
            &client,
            &dollars(sql::ADD_SIGNING_KEY),
            &[
                &key.kid,
                &key.alg,
                &key.private_der.as_slice(),
                &sql_time(key.created_at),
                &sql_time(key.signs_from),
                &sql_time(key.signs_until),
                &sql_time(key.published_until),
            ],
        )
        .await?;
        Ok(())
    }

    async fn issue_code(
        &self,
        grant: NewGrant,
        code: NewCode,
        now: u64,
    ) -> Result<Option<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = opt(
            &tx,
            &dollars(sql::INSERT_GRANT),
            &[
                &grant.client_id,
                &grant.account_id,
                &grant.session_id,
                &grant.scope,
                &grant.nonce,
                &sql_time(grant.auth_time),
                &grant.amr,
                &sql_time(now),
                &grant.subject,
                &grant.sid,
                &grant.logout_uri,
            ],
        )
        .await?
        else {
            return Ok(None);
        };
        let grant_id: i64 = get(&row, 0)?;
        exec(
            &tx,
            &dollars(sql::INSERT_CODE),
            &[
                &code.code_hash.as_bytes().as_slice(),
                &grant_id,
                &code.redirect_uri,
                &code.code_challenge,
                &sql_time(code.expires_at),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(grant_id))
    }

    async fn take_code(&self, code_hash: TokenHash, now: u64) -> Result<CodeTaken, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hash = code_hash.as_bytes().as_slice();
        let Some(row) = opt(
            &tx,
            &format!("{} FOR UPDATE OF c", dollars(sql::FIND_CODE)),
            &[&hash, &sql_time(now)],
        )
        .await?
        else {
            return Ok(CodeTaken::Unknown);
        };
        let grant = grant_at(&row, 4)?;
        if get::<bool>(&row, 0)? {
            exec(&tx, &dollars(sql::DELETE_GRANT), &[&grant.id]).await?;
            tx.commit().await?;
            return Ok(CodeTaken::Replayed);
        }
        if from_sql_time(get(&row, 1)?) <= now {
            return Ok(CodeTaken::Unknown);
        }
        exec(&tx, &dollars(sql::SPEND_CODE), &[&hash]).await?;
        tx.commit().await?;
        Ok(CodeTaken::Fresh {
            redirect_uri: get(&row, 2)?,
            code_challenge: get(&row, 3)?,
            grant: Box::new(grant),
        })
    }

    async fn issue_tokens(
        &self,
        grant_id: i64,
        tokens: NewTokens,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let issued = insert_tokens(&tx, grant_id, &tokens, now).await?;
        if issued {
            tx.commit().await?;
        }
        Ok(issued)
    }

    async fn rotate_refresh(
        &self,
        old: TokenHash,
        client_id: &str,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hash = old.as_bytes().as_slice();
        let Some(row) = opt(
            &tx,
            &format!("{} FOR UPDATE OF t", dollars(sql::FIND_TOKEN)),
            &[&hash, &sql_time(now)],
        )
        .await?
        else {
            return Ok(Rotation::Unknown);
        };
        let grant = grant_at(&row, 4)?;
        let kind: String = get(&row, 0)?;
        if TokenKind::parse(&kind) != Some(TokenKind::Refresh) || grant.client_id != client_id {
            return Ok(Rotation::Unknown);
        }
        if get::<bool>(&row, 1)? {
            exec(&tx, &dollars(sql::DELETE_GRANT), &[&grant.id]).await?;
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        if from_sql_time(get(&row, 3)?) <= now {
            return Ok(Rotation::Unknown);
        }
        exec(&tx, &dollars(sql::SPEND_TOKEN), &[&hash]).await?;
        if !insert_tokens(&tx, grant.id, &tokens, now).await? {
            return Ok(Rotation::Unknown);
        }
        exec(
            &tx,
            &dollars(sql::TOUCH_SESSION),
            &[&grant.session_id, &sql_time(now)],
        )
        .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(grant))
    }

    async fn token(&self, hash: TokenHash, now: u64) -> Result<Option<TokenView>, StoreError> {
        let client = self.client().await?;
        let Some(row) = opt(
            &client,
            &dollars(sql::FIND_TOKEN),
            &[&hash.as_bytes().as_slice(), &sql_time(now)],
        )
        .await?
        else {
            return Ok(None);
        };
        let kind: String = get(&row, 0)?;
        let kind = TokenKind::parse(&kind).ok_or_else(|| corrupt("oidc_tokens", "unknown kind"))?;
        let expires_at = from_sql_time(get(&row, 3)?);
        if get::<bool>(&row, 1)? || expires_at <= now {
            return Ok(None);
        }
        Ok(Some(TokenView {
            kind,
            created_at: from_sql_time(get(&row, 2)?),
            expires_at,
            grant: grant_at(&row, 4)?,
        }))
    }

    async fn revoke_token(&self, hash: TokenHash, client_id: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let hash = hash.as_bytes().as_slice();
        let Some(row) = opt(&tx, &dollars(sql::TOKEN_OF_CLIENT), &[&hash, &client_id]).await?
        else {
            return Ok(false);
        };
        let kind: String = get(&row, 0)?;
        if TokenKind::parse(&kind) == Some(TokenKind::Refresh) {
            let grant: i64 = get(&row, 1)?;
            exec(&tx, &dollars(sql::DELETE_GRANT), &[&grant]).await?;
        } else {
            exec(&tx, &dollars(sql::DELETE_TOKEN), &[&hash]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_grant(&self, grant_id: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        exec(&client, &dollars(sql::DELETE_GRANT), &[&grant_id]).await?;
        Ok(())
    }

    async fn consent(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        opt(&client, &dollars(sql::CONSENT), &[&account_id, &client_id])
            .await?
            .map(|row| get(&row, 0))
            .transpose()
    }

    async fn give_consent(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        exec(
            &client,
            &dollars(sql::GIVE_CONSENT),
            &[&account_id, &client_id, &scope, &sql_time(now)],
        )
        .await?;
        Ok(())
    }

    async fn pairwise_subject(
        &self,
        account_id: i64,
        sector: &str,
        fresh: &str,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let subject = |row: Row| get::<String>(&row, 0);
        if let Some(row) = opt(&client, &dollars(sql::SUBJECT), &[&account_id, &sector]).await? {
            return subject(row).map(Some);
        }
        exec(
            &client,
            &dollars(sql::MINT_SUBJECT),
            &[&account_id, &sector, &fresh],
        )
        .await?;
        opt(&client, &dollars(sql::SUBJECT), &[&account_id, &sector])
            .await?
            .map(subject)
            .transpose()
    }

    async fn connected_apps(
        &self,
        account_id: i64,
        now: u64,
    ) -> Result<Vec<ConnectedApp>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&dollars(sql::CONNECTED_APPS)).await?;
        client
            .query(&statement, &[&account_id, &sql_time(now)])
            .await?
            .iter()
            .map(|row| {
                Ok(ConnectedApp {
                    client_id: get(row, 0)?,
                    scope: get(row, 1)?,
                    allowed_at: from_sql_time(get(row, 2)?),
                    holds_tokens: get(row, 3)?,
                })
            })
            .collect()
    }

    async fn disconnect(&self, account_id: i64, client_id: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let consents = exec(
            &tx,
            &dollars(sql::WITHDRAW_CONSENT),
            &[&account_id, &client_id],
        )
        .await?;
        let grants = exec(
            &tx,
            &dollars(sql::DELETE_GRANTS_OF_CLIENT),
            &[&account_id, &client_id],
        )
        .await?;
        tx.commit().await?;
        Ok(consents + grants > 0)
    }
}
