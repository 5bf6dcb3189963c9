//! The operator API (bearer token): look up, associate and remove users by
//! their SQRL identity. Off unless an operator token is configured.
//!
//! ```text
//! GET    /api/identities/{idk}   the account an identity key belongs to (whether
//!                                an indexed secret is stored, never its value)
//! DELETE /api/identities/{idk}   remove that association (the account stays)
//! GET    /api/accounts/{id}      an account and its association
//! POST   /api/associations       {"idk", "suk", "vuk", "account_id"?}: associate an
//!                                identity with an existing account, or a new one
//! GET    /api/webhooks           login events not yet delivered, and given up
//!                                ({"pending", "dead"})
//! GET    /api/oidc/clients       the OpenID Connect clients the configuration
//!                                registers (never a secret or its hash)
//! ```

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sqrl_core::keys::{IdentityKey, ServerUnlockKey, VerifyUnlockKey};
use subtle::ConstantTimeEq as _;

use crate::app::AppState;
use crate::error::AppError;
use crate::store::{AccountView, Conflict, NewAssociation};

/// The operator routes (nested under `/api`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identities/{idk}", get(lookup).delete(remove))
        .route("/accounts/{id}", get(account))
        .route("/associations", post(associate))
        .route("/webhooks", get(webhooks))
        .route("/oidc/clients", get(oidc_clients))
}

/// Checks the bearer token in constant time (hashes first, so the length of
/// the configured token does not leak either).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.config.operator_token else {
        return Err(AppError::not_found("operator API disabled"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = Sha256::digest(expected.as_str().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(AppError::Client(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

/// Proof that the request carries the operator token: the first argument of
/// every operator handler (and of `/metrics`), so nothing else is looked at
/// before the check.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        authorize(state, &parts.headers).map(|()| Operator)
    }
}

/// The identity key in the path (`/identities/{idk}`).
struct IdkPath(IdentityKey);

impl FromRequestParts<AppState> for IdkPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::bad_request("missing identity key"))?;
        parse_idk(&text).map(IdkPath)
    }
}

/// The account as JSON, or 404 with `missing`.
fn view_or_not_found(
    state: &AppState,
    view: Option<AccountView>,
    missing: &'static str,
) -> Result<Response, AppError> {
    match view {
        Some(view) => Ok(Json(view_json(state, &view)).into_response()),
        None => Err(AppError::not_found(missing)),
    }
}

/// An account as JSON. Of indexed secrets (SPEC 4.6) only whether one is
/// stored is shown: `ins_stored` for the configured `sin`, and the `sin`s
/// that have one.
fn view_json(state: &AppState, view: &AccountView) -> serde_json::Value {
    let sin = state.policy.sin();
    serde_json::json!({
        "account_id": view.id,
        "created_at": view.created_at,
        "identity": view.identity.as_ref().map(|identity| serde_json::json!({
            "idk": identity.idk.to_base64url(),
            "fingerprint": identity.idk.fingerprint(),
            "disabled": identity.disabled,
            "sqrl_only": identity.sqrl_only,
            "hardlock": identity.hardlock,
            "created_at": identity.created_at,
            "ins_stored": sin.is_some_and(|sin| identity.indexed_secrets.iter().any(|s| s == sin)),
            "ins_sins": identity.indexed_secrets,
        })),
        "superseded": view.superseded.iter().map(IdentityKey::to_base64url).collect::<Vec<_>>(),
    })
}

fn parse_idk(text: &str) -> Result<IdentityKey, AppError> {
    IdentityKey::from_base64url(text)
        .map_err(|_| AppError::bad_request("idk is not a base64url Ed25519 public key"))
}

async fn lookup(
    _: Operator,
    State(state): State<AppState>,
    IdkPath(idk): IdkPath,
) -> Result<Response, AppError> {
    let view = state.store.account_by_identity(&idk).await?;
    view_or_not_found(&state, view, "identity not associated")
}

async fn remove(
    _: Operator,
    State(state): State<AppState>,
    IdkPath(idk): IdkPath,
) -> Result<Response, AppError> {
    if state.store.remove_identity(&idk, state.clock.now()).await? {
        tracing::info!(idk = %idk.fingerprint(), "operator removed an association");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::not_found("identity not associated"))
    }
}

async fn account(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let view = state.store.account(id).await?;
    view_or_not_found(&state, view, "no such account")
}

async fn webhooks(_: Operator, State(state): State<AppState>) -> Result<Response, AppError> {
    let counts = state.store.outbox_counts().await?;
    Ok(Json(serde_json::json!({ "pending": counts.pending, "dead": counts.dead })).into_response())
}

/// The registered OpenID Connect clients, as the running configuration has
/// them: what an operator checks after editing `[[oidc.clients]]`.
async fn oidc_clients(_: Operator, State(state): State<AppState>) -> Response {
    use crate::oidc::clients::SubjectType;
    let clients: Vec<serde_json::Value> = state
        .config
        .oidc
        .clients
        .iter()
        .map(|client| {
            let (subject_type, sector) = match &client.subject {
                SubjectType::Pairwise { sector } => ("pairwise", Some(sector.as_str())),
                SubjectType::Public => ("public", None),
            };
            serde_json::json!({
                "client_id": client.id,
                "name": client.name,
                "public": client.is_public(),
                "redirect_uris": client.redirect_uris,
                "post_logout_redirect_uris": client.post_logout_redirect_uris,
                "backchannel_logout_uri": client.backchannel_logout_uri,
                "scopes": client.scopes,
                "subject_type": subject_type,
                "sector": sector,
                "id_token_signed_response_alg": client.id_token_alg.as_str(),
            })
        })
        .collect();
    Json(serde_json::json!({ "clients": clients })).into_response()
}

/// Body of `POST /api/associations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Association {
    idk: String,
    suk: String,
    vuk: String,
    account_id: Option<i64>,
}

async fn associate(
    _: Operator,
    State(state): State<AppState>,
    Json(body): Json<Association>,
) -> Result<Response, AppError> {
    let idk = parse_idk(&body.idk)?;
    let association = NewAssociation {
        idk,
        suk: ServerUnlockKey::from_base64url(&body.suk)
            .map_err(|_| AppError::bad_request("suk is not 32 bytes of base64url"))?,
        vuk: VerifyUnlockKey::from_base64url(&body.vuk)
            .map_err(|_| AppError::bad_request("vuk is not a base64url Ed25519 public key"))?,
    };
    let now = state.clock.now();
    match state
        .store
        .associate(body.account_id, association, now)
        .await?
    {
        Ok(account_id) => {
            tracing::info!(account = account_id, idk = %idk.fingerprint(), "operator associated an identity");
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({ "account_id": account_id })),
            )
                .into_response())
        }
        Err(conflict) => {
            let status = match conflict {
                Conflict::NoAccount => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            Ok((
                status,
                Json(serde_json::json!({ "error": conflict.to_string() })),
            )
                .into_response())
        }
    }
}
