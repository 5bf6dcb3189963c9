//! What relying parties and resource servers do with tokens: read the
//! person's claims (`/oidc/userinfo`, OpenID Connect Core §5.3), ask whether
//! a token is live (`/oidc/introspect`, RFC 7662), and give one up
//! (`/oidc/revoke`, RFC 7009).
//!
//! Introspection and revocation answer only about the calling client's own
//! tokens: a token of another client is, to it, no token at all.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::clients::Client;
use super::error::{ErrorCode, OAuthError};
use super::token::{Fields, authenticate};
use crate::app::AppState;
use crate::store::oidc::TokenKind;
use crate::token::Token;

/// The bearer token of `Authorization: Bearer …`.
fn bearer(headers: &HeaderMap) -> Option<Token> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Token::parse(token.trim()))
        .flatten()
}

/// `GET` or `POST /oidc/userinfo`.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let answer = claims(&state, &headers).await;
    respond(&state, answer.map(|claims| Json(claims).into_response()))
}

/// The response of an answer, or of its refusal (counted by code).
fn respond(state: &AppState, answer: Result<Response, OAuthError>) -> Response {
    answer.unwrap_or_else(|error| {
        state.metrics.oidc(error.code.as_str());
        error.into_response()
    })
}

async fn claims(state: &AppState, headers: &HeaderMap) -> Result<Value, OAuthError> {
    let provider = state.provider_or_error()?;
    let invalid = || OAuthError::new(ErrorCode::InvalidToken, "unknown, expired or revoked token");
    let token = bearer(headers).ok_or_else(invalid)?;
    let now = state.clock.now();
    let Some(view) = state.store.token(token.hash(), now).await? else {
        return Err(invalid());
    };
    if view.kind != TokenKind::Access {
        return Err(invalid());
    }
    // A client no longer registered holds no live token.
    if provider.config.client(&view.grant.client_id).is_none() {
        return Err(invalid());
    }
    let mut claims = json!({ "sub": view.grant.subject });
    if view.grant.scope.split(' ').any(|scope| scope == "sqrl") {
        let account = state.store.account(view.grant.account_id).await?;
        if let Some(identity) = account.and_then(|account| account.identity) {
            claims["sqrl_fingerprint"] = Value::String(identity.idk.fingerprint());
        }
    }
    Ok(claims)
}

/// The authenticated client of an introspection or revocation request, and
/// its `token` (`None` when it cannot be one of ours).
fn client_and_token<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'s Client, Option<Token>), OAuthError> {
    let provider = state.provider_or_error()?;
    let fields = Fields::parse(body)?;
    let client = authenticate(provider, headers, &fields)?;
    Ok((client, Token::parse(fields.require("token")?)))
}

/// `POST /oidc/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let answer = async {
        let (client, token) = client_and_token(&state, &headers, &body)?;
        let inactive = json!({ "active": false });
        let Some(token) = token else {
            return Ok(inactive);
        };
        let Some(view) = state.store.token(token.hash(), state.clock.now()).await? else {
            return Ok(inactive);
        };
        if view.grant.client_id != client.id {
            return Ok(inactive);
        }
        Ok::<_, OAuthError>(json!({
            "active": true,
            "client_id": client.id,
            "sub": view.grant.subject,
            "scope": view.grant.scope,
            "token_type": match view.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            },
            "iat": view.created_at,
            "exp": view.expires_at,
            "iss": state.issuer(),
            "aud": client.id,
            "auth_time": view.grant.auth_time,
        }))
    }
    .await;
    respond(&state, answer.map(|body| Json(body).into_response()))
}

/// `POST /oidc/revoke`: `200` whether or not the token was live (RFC 7009
/// §2.2), so a client learns nothing about other tokens.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let answer = async {
        let (client, token) = client_and_token(&state, &headers, &body)?;
        if let Some(token) = token
            && state.store.revoke_token(token.hash(), &client.id).await?
        {
            state.metrics.oidc("token-revoked");
            tracing::info!(client = client.id, "token revoked by its client");
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    respond(
        &state,
        answer.map(|()| axum::http::StatusCode::OK.into_response()),
    )
}
