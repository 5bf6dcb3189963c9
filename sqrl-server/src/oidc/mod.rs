//! An OpenID Connect provider whose sign-in is SQRL: a site's own app (or
//! any OpenID Connect relying party) sends the browser here, the person
//! signs in with the login page that exists (a QR code or the same-device
//! link), allows the app once, and the app receives an ID token naming the
//! person by a subject identifier of its own.
//!
//! Implemented: OpenID Connect Core 1.0 for the authorization code flow
//! (`response_type=code`, `response_mode=query`), Discovery 1.0, PKCE
//! (RFC 7636, `S256`), `client_secret_basic` and `client_secret_post`
//! client authentication and public clients, refresh token rotation with
//! reuse detection, token revocation (RFC 7009), token introspection
//! (RFC 7662), the `iss` authorization response parameter (RFC 9207),
//! pairwise subject identifiers, `prompt` (`none`, `login`, `consent`),
//! `max_age` and `acr_values` (a same-device sign-in) for a fresh SQRL sign-in, Back-Channel Logout 1.0
//! ([`logout`]) and RP-Initiated Logout 1.0 ([`end_session`]).
//!
//! Tokens are bound to the browser session they came from ([`crate::store::oidc`]):
//! logout, revoking the session on the account page, or disabling or
//! removing the SQRL identity ends them all at once.
//!
//! Modules: [`clients`] (registration and client authentication),
//! [`keys`] (ES256 signing keys in the store, rotated), [`authorize`] (the
//! authorization endpoint and consent), [`token`] (the token endpoint and ID
//! tokens), [`resource`] (userinfo, introspection, revocation), [`error`]
//! (each refusal and its wire form), [`pkce`], [`register`] (`sqrl-server
//! client ...`: a client's table and secret for the operator).

pub mod authorize;
pub mod clients;
pub mod cors;
pub mod end_session;
pub mod error;
pub mod keys;
pub mod logout;
pub mod pkce;
pub mod register;
pub mod resource;
pub mod sealing;
pub mod token;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::AppState;
use clients::{OidcConfig, SCOPES};
use error::OAuthError;
use keys::{KeyRing, RotationPolicy};

/// The content security policy of the provider's pages without a form to
/// the client.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `acr` of a sign-in by a SQRL client on another device (or unknown).
pub const ACR_SQRL: &str = "urn:sqrl:xdev";

/// `acr` of a sign-in by a SQRL client on the browser's own device (CPS):
/// proof the person sits at the browser.
pub const ACR_SAME_DEVICE: &str = "urn:sqrl:cps";

/// The `sid` relying parties know a browser session by: derived from the
/// session cookie's hash, so the same for every grant of the session, and
/// telling nothing about the cookie or about other sessions.
pub fn session_id(session_token: &crate::token::Token) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"sqrl-oidc-sid\0");
    hasher.update(session_token.hash().as_bytes());
    sqrl_core::base64url::encode(&hasher.finalize()[..16])
}

/// The provider: its clients and settings, and its signing keys.
#[derive(Debug)]
pub struct Provider {
    /// Clients and lifetimes.
    pub config: OidcConfig,
    /// Signing keys.
    pub keys: KeyRing,
}

impl Provider {
    /// The provider for `config`.
    pub fn new(config: OidcConfig) -> Self {
        let keep_published = config.id_token_lifetime.max(config.access_token_lifetime);
        let keys = KeyRing::new(
            RotationPolicy {
                sign_for: config.key_rotation,
                keep_published,
            },
            config.key_encryption_key.clone(),
        );
        Self { config, keys }
    }
}

/// The provider's routes, each at `at(path)` (under the path prefix).
pub fn routes(state: &AppState, at: &dyn Fn(&str) -> String) -> Router<AppState> {
    // What a browser app (a public client) calls from its own origin.
    let token_side = Router::new()
        .route(&at("/oidc/token"), post(token::token))
        .route(
            &at("/oidc/userinfo"),
            get(resource::userinfo).post(resource::userinfo),
        )
        .route(&at("/oidc/revoke"), post(resource::revoke))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::token_side,
        ));
    Router::new()
        .route(&at("/.well-known/openid-configuration"), get(discovery))
        .route(&at("/oidc/jwks"), get(jwks))
        .route(
            &at("/oidc/authorize"),
            get(authorize::authorize).post(authorize::consent),
        )
        .merge(token_side)
        .route(&at("/oidc/introspect"), post(resource::introspect))
        .route(
            &at("/oidc/logout"),
            get(end_session::get).post(end_session::post),
        )
}

/// `GET /.well-known/openid-configuration` (Discovery 1.0 §4).
async fn discovery(State(state): State<AppState>) -> Response {
    let endpoint = |path: &str| state.url(path);
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let body = json!({
        "issuer": state.issuer(),
        "authorization_endpoint": endpoint("/oidc/authorize"),
        "token_endpoint": endpoint("/oidc/token"),
        "userinfo_endpoint": endpoint("/oidc/userinfo"),
        "jwks_uri": endpoint("/oidc/jwks"),
        "revocation_endpoint": endpoint("/oidc/revoke"),
        "introspection_endpoint": endpoint("/oidc/introspect"),
        "end_session_endpoint": endpoint("/oidc/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": keys::SigningAlg::ALL.map(keys::SigningAlg::as_str),
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "azp", "sid", "sqrl_fingerprint"],
        "acr_values_supported": [ACR_SQRL, ACR_SAME_DEVICE],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    cors::public(cacheable(Json(body).into_response(), 300))
}

/// `GET /oidc/jwks`: the published signing keys.
async fn jwks(State(state): State<AppState>) -> Response {
    let answer = async {
        let provider = state.provider_or_error()?;
        Ok::<_, OAuthError>(
            provider
                .keys
                .key_set(&state.store, state.clock.now())
                .await?,
        )
    }
    .await;
    match answer {
        // Short enough that a key published a day ahead reaches every cache.
        Ok(set) => cors::public(cacheable(Json(set).into_response(), 300)),
        Err(error) => error.into_response(),
    }
}

/// `response`, cacheable by anyone for `seconds`.
fn cacheable(mut response: Response, seconds: u32) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
