//! [`OidcStore`] on SQLite: writes on the writer thread (one transaction
//! each, synced before the reply), reads from the reader pool.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use zeroize::Zeroizing;

use super::{SqliteStore, exec, first};
use crate::store::StoreError;
use crate::store::oidc::sql;
use crate::store::oidc::{
    CodeTaken, ConnectedApp, Grant, NewCode, NewGrant, NewTokens, OidcStore, Rotation,
    StoredSigningKey, TokenKind, TokenView,
};
use crate::store::rows::{corrupt, from_sql_time, sql_time};
use crate::token::TokenHash;

/// The grant whose columns start at `at`.
fn grant_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Grant> {
    Ok(Grant {
        id: row.get(at)?,
        client_id: row.get(at + 1)?,
        account_id: row.get(at + 2)?,
        session_id: row.get(at + 3)?,
        scope: row.get(at + 4)?,
        nonce: row.get(at + 5)?,
        auth_time: from_sql_time(row.get(at + 6)?),
        amr: row.get(at + 7)?,
        subject: row.get(at + 8)?,
        sid: row.get(at + 9)?,
    })
}

/// A found token row: kind text, used, created, expires, grant.
type TokenRow = (String, bool, i64, i64, Grant);

fn find_token(
    conn: &Connection,
    hash: TokenHash,
    now: u64,
) -> Result<Option<TokenRow>, StoreError> {
    first(
        conn,
        sql::FIND_TOKEN,
        params![hash.as_bytes(), sql_time(now)],
        |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                grant_at(row, 4)?,
            ))
        },
    )
}

fn insert_tokens(
    tx: &Connection,
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
        inserted += exec(
            tx,
            sql::INSERT_TOKEN,
            params![
                hash.as_bytes(),
                grant_id,
                kind.as_str(),
                sql_time(now),
                sql_time(expires_at)
            ],
        )?;
    }
    Ok(inserted == 2)
}

#[async_trait]
impl OidcStore for SqliteStore {
    async fn signing_keys(&self, now: u64) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::SIGNING_KEYS)?;
            let keys = statement
                .query_map([sql_time(now)], |row| {
                    Ok(StoredSigningKey {
                        kid: row.get(0)?,
                        alg: row.get(1)?,
                        private_der: Zeroizing::new(row.get(2)?),
                        created_at: from_sql_time(row.get(3)?),
                        signs_from: from_sql_time(row.get(4)?),
                        signs_until: from_sql_time(row.get(5)?),
                        published_until: from_sql_time(row.get(6)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(keys)
        })
        .await
    }

    async fn add_signing_key(&self, key: StoredSigningKey) -> Result<(), StoreError> {
        self.write(move |tx| {
            exec(
                tx,
                sql::ADD_SIGNING_KEY,
                params![
                    key.kid,
                    key.alg,
                    key.private_der.as_slice(),
                    sql_time(key.created_at),
                    sql_time(key.signs_from),
                    sql_time(key.signs_until),
                    sql_time(key.published_until)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn issue_code(
        &self,
        grant: NewGrant,
        code: NewCode,
        now: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(move |tx| {
            let Some(grant_id) = first(
                tx,
                sql::INSERT_GRANT,
                params![
                    grant.client_id,
                    grant.account_id,
                    grant.session_id,
                    grant.scope,
                    grant.nonce,
                    sql_time(grant.auth_time),
                    grant.amr,
                    sql_time(now),
                    grant.subject,
                    grant.sid,
                    grant.logout_uri
                ],
                |row| row.get::<_, i64>(0),
            )?
            else {
                return Ok(None);
            };
            exec(
                tx,
                sql::INSERT_CODE,
                params![
                    code.code_hash.as_bytes(),
                    grant_id,
                    code.redirect_uri,
                    code.code_challenge,
                    sql_time(code.expires_at)
                ],
            )?;
            Ok(Some(grant_id))
        })
        .await
    }

    async fn take_code(&self, code_hash: TokenHash, now: u64) -> Result<CodeTaken, StoreError> {
        self.write(move |tx| {
            let found = first(
                tx,
                sql::FIND_CODE,
                params![code_hash.as_bytes(), sql_time(now)],
                |row| {
                    Ok((
                        row.get::<_, bool>(0)?,
                        from_sql_time(row.get(1)?),
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        grant_at(row, 4)?,
                    ))
                },
            )?;
            let Some((used, expires_at, redirect_uri, code_challenge, grant)) = found else {
                return Ok(CodeTaken::Unknown);
            };
            if used {
                exec(tx, sql::DELETE_GRANT, [grant.id])?;
                return Ok(CodeTaken::Replayed);
            }
            if expires_at <= now {
                return Ok(CodeTaken::Unknown);
            }
            exec(tx, sql::SPEND_CODE, [code_hash.as_bytes()])?;
            Ok(CodeTaken::Fresh {
                grant: Box::new(grant),
                redirect_uri,
                code_challenge,
            })
        })
        .await
    }

    async fn issue_tokens(
        &self,
        grant_id: i64,
        tokens: NewTokens,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| insert_tokens(tx, grant_id, &tokens, now))
            .await
    }

    async fn rotate_refresh(
        &self,
        old: TokenHash,
        client_id: &str,
        tokens: NewTokens,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |tx| {
            let Some((kind, used, _, expires_at, grant)) = find_token(tx, old, now)? else {
                return Ok(Rotation::Unknown);
            };
            if TokenKind::parse(&kind) != Some(TokenKind::Refresh) || grant.client_id != client_id {
                return Ok(Rotation::Unknown);
            }
            if used {
                exec(tx, sql::DELETE_GRANT, [grant.id])?;
                return Ok(Rotation::Reused);
            }
            if from_sql_time(expires_at) <= now {
                return Ok(Rotation::Unknown);
            }
            exec(tx, sql::SPEND_TOKEN, [old.as_bytes()])?;
            if !insert_tokens(tx, grant.id, &tokens, now)? {
                return Ok(Rotation::Unknown);
            }
            exec(
                tx,
                sql::TOUCH_SESSION,
                params![grant.session_id, sql_time(now)],
            )?;
            Ok(Rotation::Rotated(grant))
        })
        .await
    }

    async fn token(&self, hash: TokenHash, now: u64) -> Result<Option<TokenView>, StoreError> {
        self.read(move |conn| {
            let Some((kind, used, created_at, expires_at, grant)) = find_token(conn, hash, now)?
            else {
                return Ok(None);
            };
            let kind =
                TokenKind::parse(&kind).ok_or_else(|| corrupt("oidc_tokens", "unknown kind"))?;
            let expires_at = from_sql_time(expires_at);
            Ok((!used && expires_at > now).then(|| TokenView {
                kind,
                created_at: from_sql_time(created_at),
                expires_at,
                grant,
            }))
        })
        .await
    }

    async fn revoke_token(&self, hash: TokenHash, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |tx| {
            let found = first(
                tx,
                sql::TOKEN_OF_CLIENT,
                params![hash.as_bytes(), client_id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )?;
            match found {
                None => Ok(false),
                Some((kind, grant)) => {
                    if TokenKind::parse(&kind) == Some(TokenKind::Refresh) {
                        exec(tx, sql::DELETE_GRANT, [grant])?;
                    } else {
                        exec(tx, sql::DELETE_TOKEN, [hash.as_bytes()])?;
                    }
                    Ok(true)
                }
            }
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: i64) -> Result<(), StoreError> {
        self.write(move |tx| {
            exec(tx, sql::DELETE_GRANT, [grant_id])?;
            Ok(())
        })
        .await
    }

    async fn consent(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let client_id = client_id.to_owned();
        self.read(move |conn| {
            first(conn, sql::CONSENT, params![account_id, client_id], |row| {
                row.get(0)
            })
        })
        .await
    }

    async fn give_consent(
        &self,
        account_id: i64,
        client_id: &str,
        scope: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let (client_id, scope) = (client_id.to_owned(), scope.to_owned());
        self.write(move |tx| {
            exec(
                tx,
                sql::GIVE_CONSENT,
                params![account_id, client_id, scope, sql_time(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn pairwise_subject(
        &self,
        account_id: i64,
        sector: &str,
        fresh: &str,
    ) -> Result<Option<String>, StoreError> {
        let sector = sector.to_owned();
        let known = {
            let sector = sector.clone();
            self.read(move |conn| {
                first(conn, sql::SUBJECT, params![account_id, sector], |row| {
                    row.get::<_, String>(0)
                })
            })
            .await?
        };
        if known.is_some() {
            return Ok(known);
        }
        let fresh = fresh.to_owned();
        self.write(move |tx| {
            exec(tx, sql::MINT_SUBJECT, params![account_id, sector, fresh])?;
            first(tx, sql::SUBJECT, params![account_id, sector], |row| {
                row.get::<_, String>(0)
            })
        })
        .await
    }

    async fn connected_apps(
        &self,
        account_id: i64,
        now: u64,
    ) -> Result<Vec<ConnectedApp>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::CONNECTED_APPS)?;
            let apps = statement
                .query_map(params![account_id, sql_time(now)], |row| {
                    Ok(ConnectedApp {
                        client_id: row.get(0)?,
                        scope: row.get(1)?,
                        allowed_at: from_sql_time(row.get(2)?),
                        holds_tokens: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(apps)
        })
        .await
    }

    async fn disconnect(&self, account_id: i64, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |tx| {
            let consents = exec(tx, sql::WITHDRAW_CONSENT, params![account_id, client_id])?;
            let grants = exec(
                tx,
                sql::DELETE_GRANTS_OF_CLIENT,
                params![account_id, client_id],
            )?;
            Ok(consents + grants > 0)
        })
        .await
    }
}
