//! The token endpoint (`POST /oidc/token`): a code, or a refresh token,
//! exchanged for an access token, a refresh token and an ID token.
//!
//! * The client authenticates: `client_secret_basic` (RFC 6749 §2.3.1, the
//!   id and secret form-encoded inside Basic) or `client_secret_post`; a
//!   public client names itself and has no secret. Two methods at once, a
//!   secret for a public client, or none for a confidential one is
//!   `invalid_client`.
//! * A code is spent on first presentation, whatever follows. If it was
//!   issued to another client, to another redirect URI, or the PKCE
//!   verifier does not answer its challenge, its grant is revoked. A code
//!   presented a second time revokes the grant and every token issued from
//!   it (RFC 6749 §4.1.2).
//! * A refresh token is rotated: each use returns a new one, and the old one
//!   presented again revokes the grant, the whole family (OAuth 2.0
//!   Security BCP §4.14).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand_core::OsRng;
use serde::Serialize;

use super::Provider;
use super::clients::{Client, SubjectType};
use super::error::{ErrorCode, OAuthError};
use super::pkce;
use crate::app::AppState;
use crate::store::oidc::{CodeTaken, Grant, NewTokens, Rotation};
use crate::token::Token;

/// A form's fields, each at most once.
pub struct Fields(Vec<(String, String)>);

impl std::fmt::Debug for Fields {
    /// Names only: a field may be a secret or a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Fields {
    /// Reads a form body or a query string, and the first name in it given
    /// more than once (RFC 6749 §3.1: no parameter may be).
    pub fn read(body: &[u8]) -> (Self, Option<String>) {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut repeated = None;
        for (name, value) in url::form_urlencoded::parse(body) {
            if fields.iter().any(|(known, _)| *known == name) {
                repeated.get_or_insert_with(|| name.clone().into_owned());
            }
            fields.push((name.into_owned(), value.into_owned()));
        }
        (Self(fields), repeated)
    }

    /// Reads a form body; a field given twice is `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        match Self::read(body) {
            (fields, None) => Ok(fields),
            (_, Some(name)) => Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("{name} is given more than once"),
            )),
        }
    }

    /// A field, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// A field that must be given.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, format!("{name} is missing")))
    }
}

/// The client a token-side request comes from, authenticated.
pub fn authenticate<'p>(
    provider: &'p Provider,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<&'p Client, OAuthError> {
    let refused = |why: &str| OAuthError::new(ErrorCode::InvalidClient, why.to_owned());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let (id, secret) = match (basic, fields.get("client_secret")) {
        (Some(_), Some(_)) => return Err(refused("authenticate one way, not two")),
        (Some(encoded), None) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| refused("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| refused("malformed Basic credentials"))?;
            let unescape = |text: &str| -> String {
                url::form_urlencoded::parse(format!("x={text}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())
                    .unwrap_or_default()
            };
            let id = unescape(id);
            if fields.get("client_id").is_some_and(|named| named != id) {
                return Err(refused("client_id differs from the credentials"));
            }
            (id, Some(unescape(secret)))
        }
        (None, secret) => (
            fields
                .get("client_id")
                .ok_or_else(|| refused("no client authentication"))?
                .to_owned(),
            secret.map(str::to_owned),
        ),
    };
    let Some(client) = provider.config.client(&id) else {
        return Err(refused("unknown client"));
    };
    match (&client.secret, secret) {
        (None, None) => Ok(client),
        (Some(hash), Some(secret)) if hash.matches(&secret) => Ok(client),
        (None, Some(_)) => Err(refused("a public client has no secret")),
        _ => Err(refused("wrong or missing client secret")),
    }
}

/// The token response.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    id_token: String,
    scope: String,
}

/// The claims of an ID token.
#[derive(Debug, Serialize)]
pub struct IdTokenClaims<'a> {
    iss: String,
    sub: String,
    aud: &'a str,
    azp: &'a str,
    exp: u64,
    iat: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    amr: Vec<&'a str>,
    acr: &'a str,
    sid: &'a str,
}

/// `POST /oidc/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => {
            state.metrics.oidc(error.code.as_str());
            tracing::info!(
                error = error.code.as_str(),
                reason = error.description,
                "token request refused"
            );
            error.into_response()
        }
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let provider = state
        .oidc
        .as_deref()
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, "the provider is off"))?;
    let fields = Fields::parse(body)?;
    let client = authenticate(provider, headers, &fields)?;
    let now = state.clock.now();
    let tokens = Minted::new(provider, now);
    let grant = match fields.require("grant_type")? {
        "authorization_code" => redeem_code(state, client, &fields, &tokens, now).await?,
        "refresh_token" => {
            let Some(old) = Token::parse(fields.require("refresh_token")?) else {
                return Err(OAuthError::new(
                    ErrorCode::InvalidGrant,
                    "unknown refresh token",
                ));
            };
            match state
                .store
                .rotate_refresh(old.hash(), &client.id, tokens.record(), now)
                .await?
            {
                Rotation::Rotated(grant) => grant,
                Rotation::Reused => {
                    tracing::warn!(
                        client = client.id,
                        "refresh token reused: its grant is revoked"
                    );
                    return Err(OAuthError::new(
                        ErrorCode::InvalidGrant,
                        "refresh token already used; every token of its grant is revoked",
                    ));
                }
                Rotation::Unknown => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidGrant,
                        "unknown refresh token",
                    ));
                }
            }
        }
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?}"),
            ));
        }
    };
    let id_token = id_token(state, provider, client, &grant, now).await?;
    state.metrics.oidc("tokens-issued");
    let response = TokenResponse {
        access_token: tokens.access.encode(),
        token_type: "Bearer",
        expires_in: provider.config.access_token_lifetime.as_secs(),
        refresh_token: tokens.refresh.encode(),
        id_token,
        scope: grant.scope.clone(),
    };
    Ok(([(header::PRAGMA, "no-cache")], Json(response)).into_response())
}

/// Fresh tokens and their expiry.
struct Minted {
    access: Token,
    refresh: Token,
    access_expires_at: u64,
    refresh_expires_at: u64,
}

impl Minted {
    fn new(provider: &Provider, now: u64) -> Self {
        Self {
            access: Token::generate(&mut OsRng),
            refresh: Token::generate(&mut OsRng),
            access_expires_at: now + provider.config.access_token_lifetime.as_secs(),
            refresh_expires_at: now + provider.config.refresh_token_lifetime.as_secs(),
        }
    }

    fn record(&self) -> NewTokens {
        NewTokens {
            access: self.access.hash(),
            access_expires_at: self.access_expires_at,
            refresh: self.refresh.hash(),
            refresh_expires_at: self.refresh_expires_at,
        }
    }
}

/// Spends a code and records tokens for its grant.
async fn redeem_code(
    state: &AppState,
    client: &Client,
    fields: &Fields,
    tokens: &Minted,
    now: u64,
) -> Result<Grant, OAuthError> {
    let invalid = |why: &str| OAuthError::new(ErrorCode::InvalidGrant, why.to_owned());
    let Some(code) = Token::parse(fields.require("code")?) else {
        return Err(invalid("unknown code"));
    };
    let redirect_uri = fields.require("redirect_uri")?;
    let (grant, sent_to, challenge) = match state.store.take_code(code.hash(), now).await? {
        CodeTaken::Fresh {
            grant,
            redirect_uri,
            code_challenge,
        } => (*grant, redirect_uri, code_challenge),
        CodeTaken::Replayed => {
            tracing::warn!(
                client = client.id,
                "authorization code replayed: its grant is revoked"
            );
            return Err(invalid(
                "code already used; every token issued from it is revoked",
            ));
        }
        CodeTaken::Unknown => return Err(invalid("unknown or expired code")),
    };
    let verifier = fields.get("code_verifier");
    let refusal = if grant.client_id != client.id {
        Some("the code was issued to another client")
    } else if sent_to != redirect_uri {
        Some("redirect_uri differs from the authorization request's")
    } else {
        match (&challenge, verifier) {
            (Some(challenge), Some(verifier)) if pkce::verifies(verifier, challenge) => None,
            (Some(_), Some(_)) => Some("code_verifier does not match the code_challenge"),
            (Some(_), None) => Some("code_verifier is missing"),
            // A verifier for a code issued without a challenge: someone
            // stripped the challenge from the request.
            (None, Some(_)) => Some("the authorization request had no code_challenge"),
            (None, None) => None,
        }
    };
    if let Some(why) = refusal {
        state.store.revoke_grant(grant.id).await?;
        return Err(invalid(why));
    }
    if !state
        .store
        .issue_tokens(grant.id, tokens.record(), now)
        .await?
    {
        return Err(invalid("the grant was revoked"));
    }
    Ok(grant)
}

/// The subject `client` knows the grant's account by.
pub async fn subject(
    state: &AppState,
    client: &Client,
    account_id: i64,
) -> Result<String, OAuthError> {
    let fresh = Token::generate(&mut OsRng).encode();
    let subject = match &client.subject {
        SubjectType::Pairwise { sector } => {
            state
                .store
                .pairwise_subject(account_id, sector, &fresh)
                .await?
        }
        SubjectType::Public => state.store.account_handle(account_id, &fresh).await?,
    };
    subject.ok_or_else(|| OAuthError::new(ErrorCode::InvalidGrant, "the account is gone"))
}

/// The signed ID token of a grant.
async fn id_token(
    state: &AppState,
    provider: &Provider,
    client: &Client,
    grant: &Grant,
    now: u64,
) -> Result<String, OAuthError> {
    let amr: Vec<&str> = grant.amr.split(' ').filter(|v| !v.is_empty()).collect();
    let acr = if amr.contains(&"cps") {
        super::ACR_SAME_DEVICE
    } else {
        super::ACR_SQRL
    };
    let claims = IdTokenClaims {
        iss: state.issuer(),
        sub: grant.subject.clone(),
        aud: &client.id,
        azp: &client.id,
        exp: now + provider.config.id_token_lifetime.as_secs(),
        iat: now,
        auth_time: grant.auth_time,
        nonce: grant.nonce.as_deref(),
        amr,
        acr,
        sid: &grant.sid,
    };
    Ok(provider
        .keys
        .sign(&state.store, &claims, client.id_token_alg, None, now)
        .await?)
}
