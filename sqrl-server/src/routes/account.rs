//! The logged-in side: the account page (identity fingerprint, sessions with
//! revoke, login history) and logout.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::error::AppError;
use crate::html;
use crate::routes::login::{read_cookie, set_cookie};
use crate::store::{AskAnswer, LoginMethod, SessionInfo};
use crate::token::Token;

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "sqrl_session";

/// The session cookie's name over https: the `__Host-` prefix makes the
/// browser refuse it unless it is `Secure`, for `Path=/` and set by this
/// host itself (no `Domain`), so a sibling subdomain cannot plant or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-sqrl_session";

/// The session cookie's name for this origin.
pub fn session_cookie(state: &AppState) -> &'static str {
    if state.origin.is_secure() {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The oldest last use a live session may have: sessions unused for the
/// configured idle timeout are over.
fn idle_cutoff(state: &AppState, now: u64) -> u64 {
    now.saturating_sub(state.config.session_idle_timeout.as_secs())
}

/// How many logins the account page lists.
const HISTORY_LIMIT: u32 = 50;

/// The session the request's cookie names, if live.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionInfo>, AppError> {
    let Some(token) = read_cookie(headers, session_cookie(state))
        .as_deref()
        .and_then(Token::parse)
    else {
        return Ok(None);
    };
    let now = state.clock.now();
    Ok(state
        .store
        .session(token.hash(), now, idle_cutoff(state, now))
        .await?)
}

/// Refuses cross-site form posts (belt and braces on top of
/// `SameSite=Lax`) with 403.
///
/// The browser's own word comes first: `Sec-Fetch-Site` (every current
/// browser sends it) says whether the request came from one of our pages.
/// Only without it does `Origin` decide; `Origin: null`, which a browser
/// sends for privacy-sensitive contexts, is then not proof of anything and is
/// refused. A request with neither header is not a browser's form post (old
/// browsers, scripts holding the cookie) and the cookie's `SameSite` stands.
pub fn require_same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let allowed = match header_text("sec-fetch-site") {
        Some(site) => site == "same-origin" || site == "none",
        None => header_text(header::ORIGIN.as_str())
            .is_none_or(|origin| origin == state.origin.http_origin()),
    };
    if allowed {
        Ok(())
    } else {
        state.metrics.refused("cross-site-post");
        tracing::warn!(
            sec_fetch_site = header_text("sec-fetch-site"),
            origin = header_text(header::ORIGIN.as_str()),
            "cross-site form post refused"
        );
        Err(AppError::Client(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ))
    }
}

fn method_label(method: LoginMethod) -> &'static str {
    match method {
        LoginMethod::CrossDevice => "cross-device (code scanned, confirmed on a device)",
        LoginMethod::SameDevice => "same-device (SQRL app on this computer)",
    }
}

/// How the login history shows the answer to the `ask` (SPEC 3): the
/// button, its label as asked, and where the browser was sent.
fn answer_label(answer: Option<&AskAnswer>) -> String {
    let Some(answer) = answer else {
        return String::new();
    };
    let mut text = match answer.button.index() {
        Some(index) => format!("button {index}"),
        None => "acknowledged".to_owned(),
    };
    if let Some(label) = &answer.label {
        let _ = write!(text, " \u{201c}{}\u{201d}", html::escape(label));
    }
    if let Some(url) = &answer.url {
        let _ = write!(text, " \u{2192} <code>{}</code>", html::escape(url));
    }
    text
}

/// `GET /account`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some(session) = current_session(&state, &headers).await? else {
        return Ok(Redirect::to("/").into_response());
    };
    let now = state.clock.now();
    let account = state.store.account(session.account_id).await?;
    let sessions = state
        .store
        .sessions(session.account_id, now, idle_cutoff(&state, now))
        .await?;
    let history = state
        .store
        .login_history(session.account_id, HISTORY_LIMIT)
        .await?;

    let mut body = String::new();
    let _ = write!(body, "<h1>Your account</h1>");
    match account.as_ref().and_then(|a| a.identity.as_ref()) {
        Some(identity) => {
            let mut flags = Vec::new();
            if identity.disabled {
                flags.push("SQRL login disabled");
            }
            if identity.sqrl_only {
                flags.push("SQRL only");
            }
            if identity.hardlock {
                flags.push("hardlock");
            }
            let _ = write!(
                body,
                "<section><h2>SQRL identity</h2>\
                 <p>Fingerprint of your identity for this site:</p>\
                 <p class=\"fingerprint\" id=\"fingerprint\">{}</p>\
                 <p>Associated {}{}.</p></section>",
                identity.idk.fingerprint(),
                html::timestamp(identity.created_at),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!("; {}", flags.join(", "))
                }
            );
        }
        None => {
            let _ = write!(
                body,
                "<section><h2>SQRL identity</h2><p>No SQRL identity is associated with \
                 this account any more.</p></section>"
            );
        }
    }
    if let Some(account) = &account {
        if !account.superseded.is_empty() {
            let _ = write!(
                body,
                "<p>{} earlier identit{} of this account {} retired.</p>",
                account.superseded.len(),
                if account.superseded.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                if account.superseded.len() == 1 {
                    "was"
                } else {
                    "were"
                },
            );
        }
    }

    let _ = write!(
        body,
        "<section><h2>Active sessions</h2><table><thead><tr><th>Signed in</th>\
         <th>Last seen</th><th>Address</th><th>Browser</th><th></th></tr></thead><tbody>"
    );
    for other in &sessions {
        let action = if other.id == session.id {
            "<em>this browser</em>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/account/sessions/{}/revoke\">\
                 <button type=\"submit\">Revoke</button></form>",
                other.id
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            html::timestamp(other.created_at),
            html::timestamp(other.last_seen_at),
            html::escape(&other.ip),
            html::escape(&other.user_agent),
        );
    }
    let _ = write!(body, "</tbody></table></section>");

    let _ = write!(
        body,
        "<section><h2>Recent logins</h2><table><thead><tr><th>Time</th><th>Address</th>\
         <th>Browser</th><th>How</th><th>Answer</th></tr></thead><tbody>"
    );
    for event in &history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"answer\">{}</td></tr>",
            html::timestamp(event.at),
            html::escape(&event.ip),
            html::escape(&event.user_agent),
            method_label(event.method),
            answer_label(event.answer.as_ref()),
        );
    }
    let _ = write!(
        body,
        "</tbody></table></section>\
         <form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form>"
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        html::page("Your account", &body),
    )
        .into_response())
}

/// `POST /account/sessions/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_same_origin(&state, &headers)?;
    let Some(session) = current_session(&state, &headers).await? else {
        return Err(AppError::Client(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    if !state.store.revoke_session(session.account_id, id).await? {
        return Err(AppError::not_found("no such session"));
    }
    Ok(Redirect::to("/account").into_response())
}

/// `POST /logout`: ends this browser's session.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    require_same_origin(&state, &headers)?;
    if let Some(session) = current_session(&state, &headers).await? {
        state
            .store
            .revoke_session(session.account_id, session.id)
            .await?;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie(&state), "", 0, "Lax"),
    );
    Ok(response)
}
