//! Cross-origin requests from browser apps: a public client (a single-page
//! app) calls the token, userinfo and revocation endpoints from its own
//! origin, which browsers allow only if the answer names that origin
//! (CORS). Only the origins of public clients' registered redirect URIs are
//! named; a confidential client's server needs no CORS, and any other page
//! gets no permission, so its script cannot read the answers. Discovery and
//! the key set are public documents: any origin may read them.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::app::AppState;

/// How long a browser may keep a preflight's answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "600";

/// The origin of the request if a public client may call from it.
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    let provider = state.oidc.as_deref()?;
    provider
        .config
        .clients
        .iter()
        .filter(|client| client.is_public())
        .flat_map(|client| &client.redirect_uris)
        .filter_map(|uri| Url::parse(uri).ok())
        .any(|uri| uri.origin().ascii_serialization() == text)
        .then(|| origin.clone())
}

/// Answers preflights and names the allowed origin on the token-side
/// endpoints' answers.
pub async fn token_side(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = allowed_origin(&state, request.headers());
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        if allowed.is_some() {
            let headers = preflight.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        }
        preflight
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    // The answer differs by origin: caches must keep them apart.
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `response`, readable by scripts of any origin (a public document).
pub fn public(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
