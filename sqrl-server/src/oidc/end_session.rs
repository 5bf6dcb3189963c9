//! RP-Initiated Logout 1.0: `GET`/`POST /oidc/logout`, where a relying
//! party sends the browser to end the person's session here too.
//!
//! * `post_logout_redirect_uri` is followed only if it is registered, exactly,
//!   for the client the request names (`client_id`, or the audience of
//!   `id_token_hint`); otherwise the request is refused on a page, never
//!   followed: an open redirect otherwise.
//! * `id_token_hint` must be an ID token this provider signed (it may have
//!   expired). When it names the browser's own session (`sid`), the session
//!   ends at once; without it, or for another session, the person is asked
//!   first, with a form that only a page of this site can submit — a link on
//!   another site must not sign anyone out.
//! * Ending the session ends every token issued from it and tells the other
//!   relying parties by back-channel ([`super::logout`]).

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::html;
use url::Url;

use super::token::Fields;
use crate::app::AppState;
use crate::cookies::SiteCookies;
use crate::error::AppError;
use crate::routes::account::{current_session, end_own_session, require_same_origin};

/// A checked logout request.
#[derive(Debug)]
struct LogoutRequest {
    /// Where to go afterwards, with `state`.
    redirect: Option<(String, Option<String>)>,
    /// The session the relying party knows (`sid` of the hint).
    sid: Option<String>,
    /// The request as it came, for the confirmation form.
    query: String,
}

/// `GET /oidc/logout`.
pub async fn get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    end(&state, query.as_deref().unwrap_or(""), &cookies, false).await
}

/// `POST /oidc/logout`: the confirmation form (`request`, `confirm=yes`).
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    cookies: CookieJar,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let field = |name: &str| {
        form.iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    };
    let confirmed = field("confirm") == Some("yes");
    if confirmed {
        require_same_origin(&state, &headers)?;
    }
    end(&state, field("request").unwrap_or(""), &cookies, confirmed).await
}

async fn end(
    state: &AppState,
    query: &str,
    cookies: &CookieJar,
    confirmed: bool,
) -> Result<Response, AppError> {
    let request = match parse(state, query).await {
        Ok(request) => request,
        Err(reason) => {
            state.metrics.oidc("refused-logout");
            let body = html! {
                h1 { "This sign-out request cannot be used" }
                p { code { (reason) } }
            };
            let mut response = crate::html::response(
                super::PAGE_CSP,
                crate::html::page(&state.brand, "Sign-out request refused", body),
            );
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let site = SiteCookies::of(state);
    let session = current_session(state, cookies).await?;
    if let Some(session) = session {
        let own = site
            .session_token(cookies)
            .map(|token| super::session_id(&token));
        let named_by_hint = request.sid.is_some() && request.sid == own;
        if !(named_by_hint || confirmed) {
            return Ok(confirmation(state, &request));
        }
        end_own_session(state, &session, "logged out by a relying party").await?;
        state.metrics.oidc("rp-logout");
    }
    let jar = CookieJar::new().add(site.session_removal());
    let response = match request.redirect {
        Some((uri, request_state)) => {
            let mut url = Url::parse(&uri)
                .map_err(|_| AppError::Internal(format!("post-logout URI {uri:?}")))?;
            if let Some(value) = request_state {
                url.query_pairs_mut().append_pair("state", &value);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => crate::html::response(
            super::PAGE_CSP,
            crate::html::page(
                &state.brand,
                "Signed out",
                html! { h1 { "You are signed out" } p { a href=(state.path("/")) { "Sign in again" } } },
            ),
        ),
    };
    Ok((jar, response).into_response())
}

/// Checks a logout request: its parameters once each, the hint signed
/// here, the return URI registered for the client.
async fn parse(state: &AppState, query: &str) -> Result<LogoutRequest, String> {
    let provider = state
        .provider()
        .map_err(|_| "OpenID Connect is off".to_owned())?;
    let params = Fields::parse(query.as_bytes()).map_err(|error| error.description)?;
    let get = |name: &str| params.get(name).map(str::to_owned);
    let mut client_id = get("client_id");
    let mut sid = None;
    if let Some(hint) = get("id_token_hint") {
        let claims = provider
            .keys
            .verify(&state.store, &hint, &state.issuer(), state.clock.now())
            .await
            .map_err(|_| "id_token_hint is not an ID token of this provider".to_owned())?;
        let audience = claims["aud"].as_str().map(str::to_owned);
        if client_id.is_some() && client_id != audience {
            return Err("client_id is not the audience of id_token_hint".into());
        }
        client_id = audience;
        sid = claims["sid"].as_str().map(str::to_owned);
    }
    let redirect = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = client_id
                .as_deref()
                .and_then(|id| provider.config.client(id))
                .ok_or("post_logout_redirect_uri needs client_id or id_token_hint")?;
            if !client.post_logout_redirect_uris.contains(&uri) {
                return Err(format!(
                    "post_logout_redirect_uri is not one registered for {:?}",
                    client.id
                ));
            }
            Some((uri, get("state")))
        }
    };
    Ok(LogoutRequest {
        redirect,
        sid,
        query: query.to_owned(),
    })
}

/// "Sign out?", with a form only this site's pages can submit.
fn confirmation(state: &AppState, request: &LogoutRequest) -> Response {
    let body = html! {
        h1 { "Sign out?" }
        p { "An app asks to sign you out of " (state.brand.site_name) "." }
        form method="post" action=(state.path("/oidc/logout")) {
            input type="hidden" name="request" value=(request.query);
            button type="submit" name="confirm" value="yes" id="sign-out" { "Sign out" }
        }
    };
    // The answer may redirect to the relying party: allow its origin.
    let csp = match &request.redirect {
        Some((uri, _)) => {
            let origin = Url::parse(uri)
                .map_or_else(|_| String::new(), |url| url.origin().ascii_serialization());
            format!(
                "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
            )
        }
        None => super::PAGE_CSP.to_owned(),
    };
    super::authorize::page_with_csp(crate::html::page(&state.brand, "Sign out", body), &csp)
}
