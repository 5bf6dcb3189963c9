//! The logged-in side: the account page (identity fingerprint, sessions with
//! revoke, the OpenID Connect apps allowed, with disconnect, login history)
//! and logout.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{Markup, html};

use crate::app::AppState;
use crate::browser::describe_user_agent;
use crate::cookies::SiteCookies;
use crate::error::AppError;
use crate::html;
use crate::oidc::authorize::describe_scope;
use crate::store::oidc::ConnectedApp;
use crate::store::{AccountView, AskAnswer, LoginEvent, LoginMethod, SessionInfo};
use crate::webhooks::SessionEnd;

/// The content security policy of the account page: no script but our own
/// file that shows times in the viewer's zone.
const ACCOUNT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The oldest last use a live session may have: sessions unused for the
/// configured idle timeout are over.
fn idle_cutoff(state: &AppState, now: u64) -> u64 {
    now.saturating_sub(state.config.session_idle_timeout.as_secs())
}

/// How many logins the account page lists.
const HISTORY_LIMIT: u32 = 50;

/// The session the request's cookie names, if live. No session cookie, or
/// one that does not parse as a token, is no session.
pub async fn current_session(
    state: &AppState,
    cookies: &CookieJar,
) -> Result<Option<SessionInfo>, AppError> {
    let Some(token) = SiteCookies::of(state).session_token(cookies) else {
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
fn answer_label(answer: Option<&AskAnswer>) -> Markup {
    let Some(answer) = answer else {
        return html! {};
    };
    html! {
        @match answer.button.index() {
            Some(index) => { "button " (index) }
            None => "acknowledged",
        }
        @if let Some(label) = &answer.label {
            " \u{201c}" (label) "\u{201d}"
        }
        @if let Some(url) = &answer.url {
            " \u{2192} " code { (url) }
        }
    }
}

/// `GET /account`.
pub async fn page(State(state): State<AppState>, cookies: CookieJar) -> Result<Response, AppError> {
    let Some(session) = current_session(&state, &cookies).await? else {
        return Ok(Redirect::to(&state.path("/")).into_response());
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
    let apps = state.store.connected_apps(session.account_id, now).await?;
    let body = html! {
        h1 { "Your account" }
        (new_sign_ins(&history, &session))
        (identity_section(account.as_ref()))
        (active_sessions(&state, &sessions, session.id))
        (connected_apps(&state, &apps))
        (recent_logins(&history))
        form method="post" action=(state.path("/logout")) { button type="submit" { "Log out" } }
        script src=(state.path("/static/local-time.js")) {}
    };
    Ok(html::response(
        ACCOUNT_CSP,
        html::page(&state.brand, "Your account", body),
    ))
}

/// Sign-ins to the account since this browser's own: the notice that tells
/// a person "that was not me" while there is still a session to revoke.
fn new_sign_ins(history: &[LoginEvent], this_session: &SessionInfo) -> Markup {
    let newer: Vec<&LoginEvent> = history
        .iter()
        .filter(|event| event.at > this_session.created_at)
        .collect();
    html! {
        @if !newer.is_empty() {
            section class="notice" id="new-sign-ins" role="status" {
                @for event in &newer {
                    p {
                        strong { "New sign-in" }
                        " from " (describe_user_agent(&event.user_agent))
                        " at " (html::local_time(event.at))
                        " (address " (event.ip) ")."
                    }
                }
                p {
                    "Not you? Revoke that session below, then disable SQRL login for this site "
                    "from your SQRL app and replace your identity with your rescue code."
                }
            }
        }
    }
}

/// The identity the account signs in with, and how many it had before.
fn identity_section(account: Option<&AccountView>) -> Markup {
    let identity = account.and_then(|account| account.identity.as_ref());
    let retired = account.map_or(0, |account| account.superseded.len());
    html! {
        section {
            h2 { "SQRL identity" }
            @if let Some(identity) = identity {
                p { "Fingerprint of your identity for this site:" }
                p class="fingerprint" id="fingerprint" { (identity.idk.fingerprint()) }
                p {
                    "Associated " (html::local_time(identity.created_at))
                    @let flags = identity_flags(identity.disabled, identity.sqrl_only, identity.hardlock);
                    @if !flags.is_empty() { "; " (flags.join(", ")) }
                    "."
                }
            } @else {
                p { "No SQRL identity is associated with this account any more." }
            }
        }
        @if retired > 0 {
            p {
                (retired)
                @if retired == 1 { " earlier identity of this account was retired." }
                @else { " earlier identities of this account were retired." }
            }
        }
    }
}

/// The options the identity set that change how it signs in.
fn identity_flags(disabled: bool, sqrl_only: bool, hardlock: bool) -> Vec<&'static str> {
    [
        (disabled, "SQRL login disabled"),
        (sqrl_only, "SQRL only"),
        (hardlock, "hardlock"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

/// The account's live sessions, each but this browser's with a revoke button.
fn active_sessions(state: &AppState, sessions: &[SessionInfo], this_session: i64) -> Markup {
    html! {
        section {
            h2 { "Active sessions" }
            table class="stack" {
                thead { tr { th { "Signed in" } th { "Last seen" } th { "Address" } th { "Browser" } th {} } }
                tbody {
                    @for other in sessions {
                        tr {
                            td data-label="Signed in" { (html::local_time(other.created_at)) }
                            td data-label="Last seen" { (html::local_time(other.last_seen_at)) }
                            td data-label="Address" { (other.ip) }
                            td data-label="Browser" title=(other.user_agent) { (describe_user_agent(&other.user_agent)) }
                            td {
                                @if other.id == this_session {
                                    em { "this browser" }
                                } @else {
                                    form method="post" action=(state.path(&format!("/account/sessions/{}/revoke", other.id))) {
                                        button type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The relying parties the person allowed to sign them in (OpenID
/// Connect), each with a disconnect button. Shown when the provider is on,
/// or when apps allowed before it was turned off are still remembered.
fn connected_apps(state: &AppState, apps: &[ConnectedApp]) -> Markup {
    if state.oidc.is_none() && apps.is_empty() {
        return html! {};
    }
    html! {
        section id="connected-apps" {
            h2 { "Connected apps" }
            @if apps.is_empty() {
                p { "You have not allowed any app to sign you in." }
            } @else {
                table class="stack" {
                    thead { tr { th { "App" } th { "Receives" } th { "Allowed" } th { "Access" } th {} } }
                    tbody {
                        @for app in apps {
                            tr data-client=(app.client_id) {
                                td data-label="App" { (app_name(state, &app.client_id)) }
                                td data-label="Receives" {
                                    @for (i, scope) in app.scope.split_whitespace().enumerate() {
                                        @if i > 0 { "; " }
                                        span data-scope=(scope) {
                                            @match describe_scope(scope) {
                                                "" => (scope),
                                                described => (described),
                                            }
                                        }
                                    }
                                }
                                td data-label="Allowed" { (html::local_time(app.allowed_at)) }
                                td data-label="Access" class="access" {
                                    @if app.holds_tokens { "holds live tokens" } @else { "no live tokens" }
                                }
                                td {
                                    form method="post" action=(state.path("/account/apps/disconnect")) {
                                        input type="hidden" name="client_id" value=(app.client_id);
                                        button type="submit" { "Disconnect" }
                                    }
                                }
                            }
                        }
                    }
                }
                p {
                    "Disconnecting signs the app out everywhere and withdraws your permission: "
                    "it has to ask again the next time."
                }
            }
        }
    }
}

/// What the account page calls a client: its configured name, or its id
/// (with a note) once it is no longer registered.
fn app_name(state: &AppState, client_id: &str) -> Markup {
    let registered = state
        .oidc
        .as_deref()
        .and_then(|provider| provider.config.client(client_id));
    html! {
        @match registered {
            Some(client) => { (client.name) }
            None => { code { (client_id) } " " em { "(no longer registered)" } }
        }
    }
}

/// The account's latest logins.
fn recent_logins(history: &[LoginEvent]) -> Markup {
    html! {
        section {
            h2 { "Recent logins" }
            table class="stack" {
                thead { tr { th { "Time" } th { "Address" } th { "Browser" } th { "How" } th { "Answer" } } }
                tbody {
                    @for event in history {
                        tr {
                            td data-label="Time" { (html::local_time(event.at)) }
                            td data-label="Address" { (event.ip) }
                            td data-label="Browser" title=(event.user_agent) { (describe_user_agent(&event.user_agent)) }
                            td data-label="How" { (method_label(event.method)) }
                            td data-label="Answer" class="answer" { (answer_label(event.answer.as_ref())) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /account/sessions/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    require_same_origin(&state, &headers)?;
    let Some(session) = current_session(&state, &cookies).await? else {
        return Err(AppError::Client(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    let now = state.clock.now();
    let revoked = state
        .store
        .revoke_session(session.account_id, id, SessionEnd::Revoked, now)
        .await?;
    if !revoked {
        return Err(AppError::not_found("no such session"));
    }
    tracing::info!(
        account = session.account_id,
        session = id,
        by_session = session.id,
        "session revoked from the account page"
    );
    Ok(Redirect::to(&state.path("/account")).into_response())
}

/// Ends the browser's own `session` (a logout), logged as `what`.
pub async fn end_own_session(
    state: &AppState,
    session: &SessionInfo,
    what: &'static str,
) -> Result<(), AppError> {
    state
        .store
        .revoke_session(
            session.account_id,
            session.id,
            SessionEnd::Logout,
            state.clock.now(),
        )
        .await?;
    tracing::info!(account = session.account_id, session = session.id, "{what}");
    Ok(())
}

/// The disconnect button's form.
#[derive(Debug, serde::Deserialize)]
pub struct DisconnectForm {
    /// The relying party to disconnect.
    client_id: String,
}

/// `POST /account/apps/disconnect`: withdraws the consent to a relying
/// party and revokes all its tokens for this account.
pub async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    cookies: CookieJar,
    form: Result<Form<DisconnectForm>, FormRejection>,
) -> Result<Response, AppError> {
    // The origin check comes before the body is even looked at.
    require_same_origin(&state, &headers)?;
    let Some(session) = current_session(&state, &cookies).await? else {
        return Err(AppError::Client(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    let Ok(Form(form)) = form else {
        return Err(AppError::Client(
            StatusCode::BAD_REQUEST,
            "the form must name the app to disconnect",
        ));
    };
    // Only the account's own apps: another account's consents and grants
    // are invisible here, so they cannot be told from apps never allowed.
    let disconnected = state
        .store
        .disconnect(session.account_id, &form.client_id)
        .await?;
    if !disconnected {
        return Err(AppError::not_found("no such connected app"));
    }
    // Logged only once found: the id is then one the configuration held.
    tracing::info!(
        account = session.account_id,
        client = %form.client_id,
        by_session = session.id,
        "app disconnected from the account page"
    );
    Ok(Redirect::to(&state.path("/account")).into_response())
}

/// `POST /logout`: ends this browser's session.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    require_same_origin(&state, &headers)?;
    if let Some(session) = current_session(&state, &cookies).await? {
        end_own_session(&state, &session, "logged out").await?;
    }
    let cookies = CookieJar::new().add(SiteCookies::of(&state).session_removal());
    Ok((cookies, Redirect::to(&state.path("/"))).into_response())
}
