//! `GET /forward-auth`: the question a reverse proxy asks before it passes a
//! request on to an app it protects (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `ForwardAuth`, HAProxy): is the browser that sent
//! it signed in here?
//!
//! * Signed in: `200`, and the user in a header (`Remote-User`, or
//!   `--forward-auth-user-header`) for the proxy to copy to the app. The
//!   value is the account's handle: random, the same for the account for
//!   good (across identity replacement too), and telling nothing about other
//!   accounts. Accounts have no display name, so there is no `Remote-Name`.
//! * Not signed in: a browser navigation (`Accept: text/html`) is sent to the
//!   login page with `302`, whose `rd=` brings it back to the page it asked
//!   for; anything else gets `401` with `WWW-Authenticate`, and the same login
//!   URL in `Location` (nginx's `auth_request` passes no redirect on: its
//!   configuration turns the `401` into one with that URL).
//!
//! The page asked for is what the proxy says it was: `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Forwarded-Uri` (Caddy, Traefik), or
//! `X-Original-URL` (nginx), believed only from a trusted proxy
//! (`--trusted-proxies`), and then only if it passes the return URL check
//! ([`crate::return_to`]); otherwise the login page gets no `rd=`.
//!
//! Nothing in the response comes from the request's headers: a `Remote-User`
//! a client sent is never echoed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use rand_core::{OsRng, RngCore as _};
use sqrl_core::base64url;

use crate::app::AppState;
use crate::error::AppError;
use crate::return_to::ReturnTo;
use crate::routes::account;

/// Random bytes in an account handle: 128 bits, never guessed or repeated.
const HANDLE_BYTES: usize = 16;

/// `GET /forward-auth`.
pub async fn check(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    if let Some(session) = account::current_session(&state, &cookies).await? {
        let mut fresh = [0u8; HANDLE_BYTES];
        OsRng.fill_bytes(&mut fresh);
        let handle = state
            .store
            .account_handle(session.account_id, &base64url::encode(fresh))
            .await?;
        if let Some(value) = handle.and_then(|handle| HeaderValue::from_str(&handle).ok()) {
            let mut response = (StatusCode::OK, "signed in\n").into_response();
            response
                .headers_mut()
                .insert(state.config.forward_auth_user_header.clone(), value);
            return Ok(response);
        }
    }

    let peer = connection.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    );
    let login = login_url(&state, original_url(&state, peer, &headers).as_ref());
    let Ok(location) = HeaderValue::from_str(&login) else {
        return Err(AppError::Internal(format!("login URL {login:?}")));
    };
    if accepts_html(&headers) {
        return Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response());
    }
    let challenge = format!("SQRL realm=\"{}\"", state.origin.http_origin());
    let challenge = HeaderValue::from_str(&challenge)
        .map_err(|_| AppError::Internal(format!("challenge {challenge:?}")))?;
    Ok((
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, challenge),
            (header::LOCATION, location),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        format!("not signed in: sign in at {login}\n"),
    )
        .into_response())
}

/// The login page, with `rd=` when the page asked for is known.
fn login_url(state: &AppState, original: Option<&ReturnTo>) -> String {
    let page = state.url("/");
    match original {
        Some(url) => {
            let encoded: String =
                url::form_urlencoded::byte_serialize(url.as_str().as_bytes()).collect();
            format!("{page}?rd={encoded}")
        }
        None => page,
    }
}

/// Whether the request is a browser's navigation (it accepts HTML).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

/// The URL of the page the proxy was asked for, as a trusted proxy states
/// it, if it is one a login may return to.
fn original_url(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> Option<ReturnTo> {
    let peer = peer.to_canonical();
    if !state
        .config
        .trusted_proxies
        .iter()
        .any(|net| net.contains(peer))
    {
        return None;
    }
    // One value each: a header sent twice says two things.
    let single = |name: &str| {
        let mut values = headers.get_all(name).iter();
        let value = values.next()?.to_str().ok()?;
        values.next().is_none().then_some(value.trim())
    };
    // Proxies append to these when there are several: then which is meant?
    let not_a_list = |value: &str| !value.contains(',');
    let text = match single("x-original-url") {
        Some(url) => url.to_owned(),
        None => {
            let proto = single("x-forwarded-proto").filter(|v| not_a_list(v))?;
            let host = single("x-forwarded-host").filter(|v| not_a_list(v))?;
            let uri = single("x-forwarded-uri").unwrap_or("/");
            if !uri.starts_with('/') || uri.starts_with("//") {
                return None;
            }
            format!("{proto}://{host}{uri}")
        }
    };
    ReturnTo::for_service(&text, state).ok()
}
