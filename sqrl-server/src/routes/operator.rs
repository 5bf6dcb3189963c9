//! The operator API (bearer token): look up, associate and remove users by
//! their SQRL identity. Off unless an operator token is configured.
//!
//! ```text
//! GET    /api/identities/{idk}   the account an identity key belongs to
//! DELETE /api/identities/{idk}   remove that association (the account stays)
//! GET    /api/accounts/{id}      an account and its association
//! POST   /api/associations       {"idk", "suk", "vuk", "account_id"?}: associate an
//!                                identity with an existing account, or a new one
//! ```

use axum::extract::{Path, State};
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
use crate::routes::account::fingerprint;
use crate::store::{AccountView, Conflict};

/// The operator routes (nested under `/api`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identities/{idk}", get(lookup).delete(remove))
        .route("/accounts/{id}", get(account))
        .route("/associations", post(associate))
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

fn view_json(view: &AccountView) -> serde_json::Value {
    serde_json::json!({
        "account_id": view.id,
        "created_at": view.created_at,
        "identity": view.identity.as_ref().map(|identity| serde_json::json!({
            "idk": identity.idk.to_base64url(),
            "fingerprint": fingerprint(&identity.idk),
            "disabled": identity.disabled,
            "sqrl_only": identity.sqrl_only,
            "hardlock": identity.hardlock,
            "created_at": identity.created_at,
        })),
        "superseded": view.superseded.iter().map(IdentityKey::to_base64url).collect::<Vec<_>>(),
    })
}

fn parse_idk(text: &str) -> Result<IdentityKey, AppError> {
    IdentityKey::from_base64url(text)
        .map_err(|_| AppError::bad_request("idk is not a base64url Ed25519 public key"))
}

async fn lookup(
    State(state): State<AppState>,
    Path(idk): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&state, &headers)?;
    let idk = parse_idk(&idk)?;
    match state.store.account_by_identity(&idk).await? {
        Some(view) => Ok(Json(view_json(&view)).into_response()),
        None => Err(AppError::not_found("identity not associated")),
    }
}

async fn remove(
    State(state): State<AppState>,
    Path(idk): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&state, &headers)?;
    let idk = parse_idk(&idk)?;
    if state.store.remove_identity(&idk).await? {
        tracing::info!(idk = %fingerprint(&idk), "operator removed an association");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::not_found("identity not associated"))
    }
}

async fn account(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&state, &headers)?;
    match state.store.account(id).await? {
        Some(view) => Ok(Json(view_json(&view)).into_response()),
        None => Err(AppError::not_found("no such account")),
    }
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Association>,
) -> Result<Response, AppError> {
    authorize(&state, &headers)?;
    let idk = parse_idk(&body.idk)?;
    let suk = ServerUnlockKey::from_base64url(&body.suk)
        .map_err(|_| AppError::bad_request("suk is not 32 bytes of base64url"))?;
    let vuk = VerifyUnlockKey::from_base64url(&body.vuk)
        .map_err(|_| AppError::bad_request("vuk is not a base64url Ed25519 public key"))?;
    let now = state.clock.now();
    match state
        .store
        .associate(body.account_id, idk, suk, vuk, now)
        .await?
    {
        Ok(account_id) => {
            tracing::info!(account = account_id, idk = %fingerprint(&idk), "operator associated an identity");
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
