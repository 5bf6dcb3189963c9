//! The login page and the waiting browser's side of a login (SPEC 7, 8).
//!
//! A page load starts a login attempt: a nut, and a secret (`pag`) that only
//! this browser holds, in an `HttpOnly` cookie. The page learns of progress by
//! Server-Sent Events (`/login/events`), or by polling `/pag.sqrl` where
//! those fail. Once the user confirms on the device, the holder of the secret,
//! and nobody else, collects the login once at `/login/collect`, as a new
//! session of its own. Someone who only sees the QR code never can. A
//! same-device (CPS) login instead hands the client a single-use link
//! (`/login/complete?token=`) for the browser it redirects.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use maud::{Markup, PreEscaped, html};
use rand_core::OsRng;
use serde::Deserialize;
use sqrl_core::server::{Invitation, Nut, WaitingBrowser};

use crate::app::{AppState, ClientIp};
use crate::cookies::SiteCookies;
use crate::error::AppError;
use crate::html;
use crate::notify::Subscription;
use crate::qr;
use crate::return_to::ReturnTo;
use crate::routes::account;
use crate::store::{Attempt, AttemptState, LinkOutcome, NewAttempt, NewSession, Redeemed};
use crate::streams::StreamSlot;
use crate::token::Token;

const LOGIN_JS: &str = include_str!("../assets/login.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Longest wait between two looks at an attempt in the event stream, so an
/// expiry is reported even if no notification comes.
const EVENT_RECHECK: Duration = Duration::from_secs(15);

/// The content security policy of HTML pages: own scripts only; images may
/// come from the local SQRL client's CPS probe (SPEC 7), and over https (the
/// operator's logo).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: https: http://localhost:25519 http://127.0.0.1:25519; connect-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A started login attempt.
#[derive(Debug)]
pub struct Started {
    /// The first nut, which is also the attempt's id.
    pub nut: Nut,
    /// The browser's secret.
    pub pag: Token,
    /// The SQRL URL for the QR code.
    pub url: String,
    /// The same-device link (with `can=`).
    pub link: String,
}

fn invitation(
    state: &AppState,
    nut: Nut,
    attempt: &str,
    ip: std::net::IpAddr,
    now: u64,
) -> Invitation {
    let expires_at = now.saturating_add(state.config.nut_lifetime.as_secs());
    let browser = WaitingBrowser {
        ip,
        attempt: attempt.to_owned(),
    };
    // SPEC 1.1: `can=` only in the same-device link, where the client's
    // localhost server sends the browser back on cancel (PITFALLS 30).
    state
        .endpoint
        .invite(nut, Some(&state.url("/")), browser, expires_at)
}

/// Starts a login attempt for a browser at `ip`.
pub async fn start_attempt(
    state: &AppState,
    ip: std::net::IpAddr,
    user_agent: &str,
) -> Result<Started, AppError> {
    let now = state.clock.now();
    let nut = Nut::generate(&mut OsRng);
    let pag = Token::generate(&mut OsRng);
    let id = nut.as_str().to_owned();
    let invitation = invitation(state, nut.clone(), &id, ip, now);
    let attempt = NewAttempt {
        id,
        pag_hash: pag.hash(),
        browser_ip: ip,
        user_agent: clip(user_agent, 256),
        created_at: now,
        expires_at: now.saturating_add(state.config.attempt_lifetime.as_secs()),
    };
    let url = invitation.url.clone();
    let link = invitation.link.clone();
    state
        .store
        .create_attempt(attempt, invitation.nut, invitation.conversation)
        .await?;
    Ok(Started {
        nut,
        pag,
        url,
        link,
    })
}

/// Truncates text from a header to `max` bytes on a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The `User-Agent` header, if readable.
pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|ua| clip(ua, 256))
        .unwrap_or_default()
}

/// The attempt `nut` names, if the request holds its secret: `pag` from the
/// query, or the attempt's cookie. Unknown attempt and wrong or malformed
/// secret answer the same 404, so the answer reveals nothing about other
/// people's attempts.
pub async fn waiting_attempt(
    state: &AppState,
    nut: &str,
    pag: Option<&str>,
    cookies: &CookieJar,
) -> Result<Attempt, AppError> {
    waiting_attempt_of(state, &attempt_nut(nut)?, pag, cookies).await
}

/// The `nut=` of a request about a login attempt, checked.
fn attempt_nut(nut: &str) -> Result<Nut, AppError> {
    Nut::parse(nut).map_err(|_| AppError::bad_request("nut= is not a valid nut"))
}

/// [`waiting_attempt`] of a nut already checked.
async fn waiting_attempt_of(
    state: &AppState,
    nut: &Nut,
    pag: Option<&str>,
    cookies: &CookieJar,
) -> Result<Attempt, AppError> {
    const NOT_FOUND: AppError = AppError::Client(
        StatusCode::NOT_FOUND,
        "no such login attempt (expired, or not yours)",
    );
    let secret = match pag {
        Some(pag) if !pag.is_empty() => Token::parse(pag),
        _ => SiteCookies::of(state).attempt_secret(cookies, nut.as_str()),
    };
    let Some(secret) = secret else {
        return Err(NOT_FOUND);
    };
    let Some(attempt) = state.store.attempt(nut.as_str()).await? else {
        return Err(NOT_FOUND);
    };
    // Constant-time comparison of the hashes (issue 3: the right to collect
    // the login is bound to this secret).
    if !attempt.pag_hash.matches(&secret) {
        return Err(NOT_FOUND);
    }
    Ok(attempt)
}

/// What a waiting page shows: its attempt's state, or `expired` once the
/// attempt's time is up (whatever its stored state). The event stream, the
/// SSP API's `/pag.sqrl` and the page's script all speak these names; the
/// script is served with the list of terminal ones ([`script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// The attempt, live.
    Attempt(AttemptState),
    /// The attempt's time is up, or it is gone.
    Expired,
}

impl PageState {
    /// The state an attempt shows at `now`.
    pub fn of(attempt: &Attempt, now: u64) -> Self {
        if attempt.expires_at <= now {
            PageState::Expired
        } else {
            PageState::Attempt(attempt.state)
        }
    }

    /// Every state a page can show.
    pub fn all() -> impl Iterator<Item = PageState> {
        AttemptState::ALL
            .into_iter()
            .map(PageState::Attempt)
            .chain([PageState::Expired])
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PageState::Attempt(state) => state.as_str(),
            PageState::Expired => "expired",
        }
    }

    /// Whether nothing more can happen: the stream ends after reporting it.
    pub fn is_terminal(self) -> bool {
        match self {
            PageState::Attempt(state) => state.is_terminal(),
            PageState::Expired => true,
        }
    }
}

/// The state name the page shows for an attempt at `now`.
pub fn state_name(attempt: &Attempt, now: u64) -> &'static str {
    PageState::of(attempt, now).as_str()
}

/// What the page shows for an attempt: its state name, and once confirmed the
/// URL where the holder of the attempt's secret collects the session. With
/// `pag` (a caller of the SSP API that holds no cookie) the URL carries the
/// secret and is absolute; otherwise the page's cookie does the work.
pub fn page_state(
    state: &AppState,
    attempt: &Attempt,
    pag: Option<&str>,
) -> (&'static str, Option<String>) {
    let name = state_name(attempt, state.clock.now());
    if name != AttemptState::Confirmed.as_str() {
        return (name, None);
    }
    let url = match pag {
        Some(pag) => state.url(&format!("/login/collect?nut={}&pag={pag}", attempt.id)),
        None => state.path(&format!("/login/collect?nut={}", attempt.id)),
    };
    (name, Some(url))
}

/// The fingerprint of the identity that confirmed `attempt`, when the page
/// must show it and wait for a click before signing in: the confirming device
/// was not on the browser's network, so the code may have been relayed to, or
/// answered first by, someone else.
pub fn identity_check(attempt: &Attempt) -> Option<String> {
    if attempt.state != AttemptState::Confirmed {
        return None;
    }
    attempt
        .confirmed_by
        .as_ref()
        .filter(|confirmation| !confirmation.device_on_browser_network)
        .map(|confirmation| confirmation.idk.fingerprint())
}

/// A page of the login flow as a response.
fn html_response(state: &AppState, title: &str, body: Markup) -> Response {
    html::response(PAGE_CSP, html::page(&state.brand, title, body))
}

/// The QR code of `url` as an inline `<svg>` element.
fn inline_svg(url: &str) -> Result<String, AppError> {
    qr::svg(url).map_err(|e| AppError::Internal(format!("QR code: {e}")))
}

/// The QR code of `url` as markup for the page. Inserted unescaped: it is
/// SVG our own encoder drew (a square and one path of numbers; the URL is in
/// the modules, never written out as text), not anything a request supplied.
fn qr_markup(url: &str) -> Result<Markup, AppError> {
    inline_svg(url).map(PreEscaped)
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Where to send the browser once it is signed in (checked, see
    /// [`crate::return_to`]).
    pub rd: Option<String>,
    /// Show the code even to a browser already signed in: a relying party
    /// asked for a fresh sign-in (OpenID Connect `prompt=login`, `max_age`).
    pub fresh: Option<String>,
}

/// `GET /[?rd=]`: the login page. With `rd`, the login returns the browser
/// there (a page of a protected app behind the reverse proxy); a browser
/// already signed in goes there at once. A return URL that fails the check
/// is refused (400), never followed.
pub async fn page(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    let return_to = match query.rd.as_deref().filter(|rd| !rd.is_empty()) {
        Some(rd) => Some(ReturnTo::for_service(rd, &state).map_err(|refused| {
            state.metrics.refused("return-url");
            AppError::bad_request(refused.message())
        })?),
        None => None,
    };
    if query.fresh.is_none() && account::current_session(&state, &cookies).await?.is_some() {
        let destination = match &return_to {
            Some(url) => url.as_str().to_owned(),
            None => state.path("/account"),
        };
        return Ok(Redirect::to(&destination).into_response());
    }
    let started = start_attempt(&state, ip, &user_agent(&headers)).await?;
    let body = login_page(
        &state,
        &started,
        qr_markup(&started.url)?,
        state.config.nut_rotation,
    );
    let mut cookies = cookies.add(attempt_cookie(&state, &started));
    if let Some(url) = &return_to {
        // Kept beside the attempt's secret, signed with it: the login that
        // completes this attempt, and no other, returns there.
        cookies = cookies.add(SiteCookies::of(&state).return_to(
            started.nut.as_str(),
            &started.pag,
            url.as_str(),
            state.config.attempt_lifetime,
        ));
    }
    Ok((cookies, html_response(&state, "Sign in", body)).into_response())
}

/// The body of the login page. The ids, and the data attributes of the
/// script element, are what `login.js` works with.
fn login_page(state: &AppState, started: &Started, qr: Markup, rotation: Duration) -> Markup {
    html! {
        h1 { "Sign in with SQRL" }
        p { "Scan the code with your SQRL app, then confirm on your device." }
        p class="newcomer" id="newcomer" {
            "New to SQRL? It signs you in with no password: install a SQRL app on your "
            "phone or computer, scan this code with it, and say yes. "
            a href=(state.brand.help_url) rel="noopener noreferrer" { "What is SQRL? Get an app" }
        }
        div id="qr" class="qr" aria-label="SQRL code" { (qr) }
        div id="expired" class="expired" hidden {
            p { "A code only lives a few minutes, so that nobody can use one later." }
            p { button type="button" id="fresh-code" class="button" { "Get a fresh code" } }
        }
        p id="local-app" hidden {
            "Your SQRL app is running on this computer: "
            "signing in on this device is the safest way."
        }
        p { a id="link" class="button" href=(started.link) { "Sign in with SQRL on this device" } }
        p class="url" { code id="url" { (started.url) } }
        p id="status" role="status" aria-live="polite" { "Waiting for your SQRL app\u{2026}" }
        div id="check" class="check" hidden {
            p { "You are about to be signed in as the SQRL identity with this fingerprint:" }
            p class="fingerprint" id="check-fingerprint" {}
            p {
                "Your SQRL app shows the fingerprint of your identity when you sign in. "
                "If it is not the same, or you did not just confirm a sign-in, do not continue: "
                "someone else may have answered this code."
            }
            p {
                button type="button" id="check-continue" { "Continue" }
                " "
                button type="button" id="check-cancel" { "Cancel" }
            }
        }
        noscript {
            p {
                "Without JavaScript this page cannot follow the login; "
                "use the link above with a SQRL app on this device."
            }
        }
        script id="sqrl" src=(state.path("/static/login.js")) data-nut=(started.nut.as_str())
            data-link=(started.link) data-rotate=(rotation.as_secs())
            data-prefix=(state.config.path_prefix) {}
    }
}

/// The cookie holding a started attempt's secret, for the browser that
/// started it.
pub fn attempt_cookie(state: &AppState, started: &Started) -> Cookie<'static> {
    SiteCookies::of(state).attempt(
        started.nut.as_str(),
        &started.pag,
        state.config.attempt_lifetime,
    )
}

/// The page's script, preceded by the names of the terminal states as
/// [`PageState`] defines them, so the script never keeps its own list.
fn script_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let terminal: Vec<&str> = PageState::all()
            .filter(|state| state.is_terminal())
            .map(PageState::as_str)
            .collect();
        format!(
            "var SQRL_TERMINAL_STATES = {};\n{LOGIN_JS}",
            serde_json::Value::from(terminal)
        )
    })
}

/// `GET /static/login.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        script_source(),
    )
        .into_response()
}

/// `GET /static/local-time.js`.
pub async fn local_time_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        crate::html::LOCAL_TIME_JS,
    )
        .into_response()
}

/// `GET /static/style.css`.
pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

/// Query of the waiting page's requests.
#[derive(Debug, Deserialize)]
pub struct AttemptQuery {
    /// The attempt (the page's first nut).
    pub nut: String,
    /// The secret, when not sent as a cookie.
    pub pag: Option<String>,
}

/// `POST /login/rotate?nut=`: a fresh nut for a still-pending page (issue 3:
/// the code on an open page changes at least every 60 seconds).
pub async fn rotate(
    State(state): State<AppState>,
    Query(query): Query<AttemptQuery>,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    let attempt = waiting_attempt(&state, &query.nut, query.pag.as_deref(), &cookies).await?;
    let now = state.clock.now();
    // The IP compared with the client's stays the one that loaded the page.
    let nut = Nut::generate(&mut OsRng);
    let invitation = invitation(&state, nut, &attempt.id, attempt.browser_ip, now);
    let url = invitation.url.clone();
    let link = invitation.link.clone();
    if !state
        .store
        .rotate_nut(&attempt.id, now, invitation.nut, invitation.conversation)
        .await?
    {
        return Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "state": attempt.state.as_str() })),
        )
            .into_response());
    }
    Ok(Json(serde_json::json!({
        "url": url,
        "link": link,
        "svg": inline_svg(&url)?,
    }))
    .into_response())
}

struct EventLoop {
    state: AppState,
    attempt: String,
    subscription: Subscription,
    shutdown: tokio::sync::watch::Receiver<bool>,
    last: Option<String>,
    /// Woken by a notification since the last event (for the latency metric).
    notified: bool,
    /// The last event was just read: wait for a change (or this long) before
    /// reading again. A notification sent since the wait before that read is
    /// kept by the subscription, so waiting first misses nothing.
    current: Option<Duration>,
    /// The attempt as the request's own check read it, after subscribing:
    /// the first event reports it instead of reading it again.
    opened_with: Option<Attempt>,
    done: bool,
    /// This stream's place among the open ones, given back when the stream
    /// is dropped (ended, or the client went away).
    slot: StreamSlot,
}

impl EventLoop {
    /// The next state change to report, waiting for one if needed.
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            if let Some(recheck) = self.current.take() {
                if !self.wait(recheck).await {
                    return None;
                }
                continue;
            }
            let attempt = match self.opened_with.take() {
                Some(attempt) => Some(attempt),
                None => match self.state.store.attempt(&self.attempt).await {
                    Ok(attempt) => attempt,
                    Err(error) => {
                        tracing::warn!(%error, "event stream: storage failure, closing");
                        return None;
                    }
                },
            };
            let now = self.state.clock.now();
            let (name, wait) = match &attempt {
                None => ("expired", EVENT_RECHECK),
                Some(attempt) => {
                    let left = Duration::from_secs(attempt.expires_at.saturating_sub(now).max(1));
                    (state_name(attempt, now), left.min(EVENT_RECHECK))
                }
            };
            if self.last.as_deref() != Some(name) {
                let (name, url, check) = match &attempt {
                    Some(attempt) => {
                        let (name, url) = page_state(&self.state, attempt, None);
                        (name, url, identity_check(attempt))
                    }
                    None => (name, None, None),
                };
                self.done = match &attempt {
                    Some(attempt) => PageState::of(attempt, now).is_terminal(),
                    None => true,
                };
                self.last = Some(name.to_owned());
                if std::mem::take(&mut self.notified)
                    && let Some(at) = self.subscription.last_notified()
                {
                    self.state.metrics.page_notified(at.elapsed());
                }
                let data = serde_json::json!({ "state": name, "url": url, "check": check });
                self.current = Some(wait);
                return Some(Event::default().data(data.to_string()));
            }
            if !self.wait(wait).await {
                return None;
            }
        }
    }

    /// Waits for a notification or `recheck`; `false` when the stream must
    /// end (notifications stopped, the server shuts down, or a newer stream
    /// of the same attempt took this one's place).
    async fn wait(&mut self, recheck: Duration) -> bool {
        tokio::select! {
            alive = self.subscription.changed() => {
                self.notified = true;
                alive
            }
            _ = tokio::time::sleep(recheck) => true,
            _ = self.shutdown.changed() => false,
            () = self.slot.replaced() => false,
        }
    }
}

/// `GET /login/events?nut=`: the page's live state as Server-Sent Events,
/// one JSON `{"state", "url", "check"}` per change: `pending`, `scanned`,
/// `confirmed` (with the single-use `url`, and in `check` the fingerprint of
/// the confirming identity when its device was on another network: the page
/// shows it and waits for a click), `logged-in`, `client-session`,
/// `rejected`, `expired`.
///
/// Open streams are capped (see [`crate::streams`]): over a cap the answer is
/// 429 (this address) or 503 (all), and the page polls instead.
pub async fn events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<AttemptQuery>,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    // Subscribe before the read the first event reports, so that a change
    // committed after that read is still delivered. Only a well-formed nut
    // reaches the notifier; one that turns out not to be a waiting attempt
    // of this browser drops its subscription with the refusal, and never
    // takes a stream slot.
    let nut = attempt_nut(&query.nut)?;
    let subscription = state.notifier.subscribe(nut.as_str());
    let attempt = waiting_attempt_of(&state, &nut, query.pag.as_deref(), &cookies).await?;
    let slot = match StreamSlot::acquire(&state, &attempt.id, ip) {
        Ok(slot) => slot,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let event_loop = EventLoop {
        shutdown: state.shutdown.clone(),
        state,
        attempt: attempt.id.clone(),
        subscription,
        last: None,
        notified: false,
        current: None,
        opened_with: Some(attempt),
        done: false,
        slot,
    };
    let stream = futures_util::stream::unfold(event_loop, |mut event_loop| async move {
        let event = event_loop.next().await?;
        Some((Ok::<Event, Infallible>(event), event_loop))
    });
    // Proxies such as nginx buffer responses by default, which would hold every
    // event back; this header asks them not to (the page also falls back to
    // polling when the stream stays silent).
    Ok((
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

/// `GET /login/collect?nut=[&pag=]`: the browser holding a confirmed
/// attempt's secret (cookie, or `pag`) gets a new session of its own.
pub async fn collect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<AttemptQuery>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    // With the secret in the cookie, only the page itself (or the person
    // typing the URL) may collect: another site that learnt the nut (say,
    // from a photo of the code it then answered) must not navigate this
    // browser into a session of its choosing past the page's own check.
    // With `pag` in the query the caller holds the secret itself (an SSP
    // integration on another origin).
    if query.pag.as_deref().is_none_or(str::is_empty) {
        account::require_same_origin(&state, &headers)?;
    }
    let attempt = waiting_attempt(&state, &query.nut, query.pag.as_deref(), &cookies).await?;
    let now = state.clock.now();
    let session_token = Token::generate(&mut OsRng);
    let session = new_session(&state, &session_token, ip, &headers, now);
    let secret = match query.pag.as_deref().filter(|pag| !pag.is_empty()) {
        Some(pag) => Token::parse(pag),
        None => SiteCookies::of(&state).attempt_secret(&cookies, &attempt.id),
    };
    match state
        .store
        .collect_attempt(&attempt.id, now, session)
        .await?
    {
        Some(redeemed) => {
            let return_to = held_return(&state, &cookies, &attempt.id, secret.as_ref());
            Ok(logged_in(&state, ip, &session_token, &redeemed, return_to, &cookies).await)
        }
        None => Ok(link_gone(&state)),
    }
}

fn new_session(
    state: &AppState,
    token: &Token,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    now: u64,
) -> NewSession {
    NewSession {
        token_hash: token.hash(),
        ip,
        user_agent: user_agent(headers),
        created_at: now,
        expires_at: now.saturating_add(state.config.session_lifetime.as_secs()),
    }
}

fn link_gone(state: &AppState) -> Response {
    let body = html! {
        h1 { "This sign-in link has expired or was already used" }
        p { a href=(state.path("/")) { "Start again" } }
    };
    let mut response = html_response(state, "Sign-in link expired", body);
    *response.status_mut() = StatusCode::GONE;
    response
}

/// Where the login of `attempt` returns the browser to: the URL its login
/// page was opened with (`rd=`), as the signed cookie beside the attempt's
/// `secret` holds it, if it still passes the check.
fn held_return(
    state: &AppState,
    cookies: &CookieJar,
    attempt: &str,
    secret: Option<&Token>,
) -> Option<ReturnTo> {
    let url = SiteCookies::of(state).held_return(cookies, attempt, secret?)?;
    ReturnTo::for_service(&url, state).ok()
}

/// The response that hands the browser its session cookie and sends it on:
/// to the URL of the `ask` button the user chose on the device (SPEC 3; a
/// root-anchored path the operator configured), else to where the login
/// page was asked to return (`rd=`), else to the account page.
async fn logged_in(
    state: &AppState,
    ip: std::net::IpAddr,
    token: &Token,
    redeemed: &Redeemed,
    return_to: Option<ReturnTo>,
    request_cookies: &CookieJar,
) -> Response {
    state.metrics.login(redeemed.method.as_str());
    tracing::info!(%ip, account = redeemed.account_id, method = redeemed.method.as_str(), "browser logged in");
    let destination = match (
        redeemed
            .answer
            .as_ref()
            .and_then(|answer| answer.url.as_deref()),
        &return_to,
    ) {
        (Some(chosen), _) => chosen.to_owned(),
        (None, Some(url)) => url.as_str().to_owned(),
        (None, None) => state.path("/account"),
    };
    let site = SiteCookies::of(state);
    let mut cookies = CookieJar::new().add(site.session(token, state.config.session_lifetime));
    if let Some(attempt) = &redeemed.attempt {
        // The attempt is over: its secret is of no more use to the browser,
        // nor where it was to return.
        cookies = cookies.add(site.removal(site.attempt_name(attempt)));
        let return_name = site.return_name(attempt);
        if request_cookies.get(&return_name).is_some() {
            cookies = cookies.add(site.removal(return_name));
        }
        state
            .notifier
            .notify_committed(attempt, redeemed.published)
            .await;
    }
    (cookies, Redirect::to(&destination)).into_response()
}

/// Query of `/login/complete`.
#[derive(Debug, Deserialize)]
pub struct CompleteQuery {
    /// The single-use token.
    pub token: String,
}

/// `GET /login/complete?token=`: turns a single-use CPS link (`url=`, SPEC 7)
/// into a new session of this browser's own; for a link confirmed from
/// another network, first a page naming the identity, whose button posts
/// back here ([`confirm_complete`]).
pub async fn complete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<CompleteQuery>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    redeem(&state, ip, &query.token, &headers, &cookies, false).await
}

/// `POST /login/complete` (form field `token`): the person saw the identity
/// a link confirmed from another network signs in as, and clicked on.
pub async fn confirm_complete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    cookies: CookieJar,
    Form(form): Form<CompleteQuery>,
) -> Result<Response, AppError> {
    account::require_same_origin(&state, &headers)?;
    redeem(&state, ip, &form.token, &headers, &cookies, true).await
}

async fn redeem(
    state: &AppState,
    ip: std::net::IpAddr,
    token: &str,
    headers: &HeaderMap,
    cookies: &CookieJar,
    confirmed: bool,
) -> Result<Response, AppError> {
    let Some(link) = Token::parse(token) else {
        return Ok(link_gone(state));
    };
    let now = state.clock.now();
    let session_token = Token::generate(&mut OsRng);
    let session = new_session(state, &session_token, ip, headers, now);
    let held = SiteCookies::of(state).held_attempts(cookies);
    let presented = held
        .iter()
        .map(|(attempt, secret)| (attempt.clone(), secret.hash()))
        .collect();
    match state
        .store
        .redeem_link(link.hash(), now, session, presented, confirmed)
        .await?
    {
        LinkOutcome::Confirm { idk } => Ok(confirm_identity(state, &link, &idk)),
        LinkOutcome::Redeemed(redeemed) => {
            let return_to = redeemed.attempt.as_deref().and_then(|attempt| {
                let secret = held
                    .iter()
                    .find(|(held, _)| held == attempt)
                    .map(|(_, secret)| secret);
                held_return(state, cookies, attempt, secret)
            });
            Ok(logged_in(state, ip, &session_token, &redeemed, return_to, cookies).await)
        }
        LinkOutcome::Gone => Ok(link_gone(state)),
        LinkOutcome::OtherBrowser => {
            state.metrics.refused("other-browser");
            tracing::warn!(%ip, "sign-in link opened in a browser that did not start the login");
            Ok(other_browser(state))
        }
    }
}

/// The page shown before a same-device link confirmed from another network
/// signs this browser in: whose identity, and a button (a same-origin form
/// post) to go on.
fn confirm_identity(
    state: &AppState,
    link: &Token,
    idk: &sqrl_core::keys::IdentityKey,
) -> Response {
    let body = html! {
        h1 { "Sign in as this SQRL identity?" }
        p {
            "A SQRL app on another network confirmed this sign-in. You are about to be "
            "signed in as the identity with this fingerprint:"
        }
        p class="fingerprint" id="check-fingerprint" { (idk.fingerprint()) }
        p {
            "Your SQRL app shows the fingerprint of your identity when you sign in. "
            "If it is not the same, or you did not just sign in, do not continue: "
            "someone else may have answered your code."
        }
        form method="post" action=(state.path("/login/complete")) {
            input type="hidden" name="token" value=(link.encode());
            button type="submit" id="check-continue" { "Continue" }
        }
        p { a href=(state.path("/")) { "Cancel" } }
    };
    html_response(state, "Confirm sign-in", body)
}

/// The answer to a same-device link opened where the login did not begin:
/// whoever sent this browser there may be trying to sign it in to their own
/// account (login CSRF).
fn other_browser(state: &AppState) -> Response {
    let body = html! {
        h1 { "This sign-in link belongs to another browser" }
        p {
            "A SQRL sign-in link only works in the browser whose sign-in page "
            "started it. If you did not just sign in with SQRL on this computer, "
            "someone may have sent you this link to sign you in to their account."
        }
        p { a href=(state.path("/")) { "Sign in" } }
    };
    let mut response = html_response(state, "Sign-in link refused", body);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_script_has_a_message_for_every_state() {
        for state in PageState::all() {
            let key = format!("\"{}\":", state.as_str());
            assert!(LOGIN_JS.contains(&key), "login.js has no message for {key}");
        }
    }

    #[test]
    fn the_script_is_told_the_terminal_states() {
        let source = script_source();
        let first = source.lines().next().unwrap();
        assert_eq!(
            first,
            r#"var SQRL_TERMINAL_STATES = ["logged-in","client-session","rejected","expired"];"#
        );
        assert!(!LOGIN_JS.contains("var terminal = {"), "no second list");
    }
}
