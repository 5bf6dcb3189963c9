//! A third-party web app with a "Log in with SQRL" button: an OpenID Connect
//! relying party of sqrl-server's provider, built on the `openidconnect`
//! crate. What any app does: discovery at start-up; at `/login` a code flow
//! with PKCE (S256), `state` and `nonce`; at `/callback` the code exchanged
//! with the client secret, the ID token verified (signature against the
//! published keys, issuer, audience, expiry, nonce) and userinfo read; then a
//! session of the app's own.
//!
//! Register the app with sqrl-server (in the file `--config` names):
//!
//! ```toml
//! [[oidc.clients]]
//! client_id = "demo"
//! name = "Demo App"
//! client_secret = "a random secret of 32 characters or more"
//! redirect_uris = ["http://127.0.0.1:3000/callback"]
//! ```
//!
//! and run it, then open <http://127.0.0.1:3000/>:
//!
//! ```text
//! RP_CLIENT_SECRET='...' cargo run -p sqrl-server --example relying_party -- \
//!     --issuer http://127.0.0.1:8080 --client-id demo --port 3000
//! ```
//!
//! `tests/server/oidc_openidconnect.rs` runs it against a real server, through a
//! whole sign-in and the replies it must refuse.

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine as _;
use clap::Parser;
use maud::{DOCTYPE, Markup, html};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, UserInfoClaims,
};
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// How long a person has from "Log in" to coming back (scan and consent).
const LOGIN_LIFETIME: Duration = Duration::from_secs(600);
/// Logins in progress at most: each holds memory before anyone signed in.
const MAX_PENDING: usize = 10_000;
/// The `state` of the login this browser started.
const LOGIN_COOKIE: &str = "rp_login";
/// The app's own session.
const SESSION_COOKIE: &str = "rp_session";

/// The app's settings.
#[derive(Debug, Clone, Parser)]
#[command(about = "An example app that offers \"Log in with SQRL\" through sqrl-server")]
pub struct Settings {
    /// The provider's issuer: sqrl-server's public origin and path prefix.
    #[arg(long)]
    pub issuer: String,
    /// The `client_id` of the app's `[[oidc.clients]]` table.
    #[arg(long)]
    pub client_id: String,
    /// Its client secret (the environment keeps it out of `ps`).
    #[arg(long, env = "RP_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub client_secret: ClientSecret,
    /// The port on 127.0.0.1; the redirect URI is http://127.0.0.1:<port>/callback.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

fn secret(text: &str) -> Result<ClientSecret, Infallible> {
    Ok(ClientSecret::new(text.to_owned()))
}

/// The client as discovery set it up: the token and userinfo endpoints are
/// whatever the provider published.
type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider's claim of scope `sqrl`: the identity's fingerprint, as the
/// person's own account page at the provider shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SqrlClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sqrl_fingerprint: Option<String>,
}
impl AdditionalClaims for SqrlClaims {}

/// A login started at `/login` and not yet back.
#[derive(Debug)]
struct Pending {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    started: Instant,
}

/// A signed-in person, as the app shows them.
#[derive(Debug, Clone)]
struct SignedIn {
    subject: String,
    fingerprint: Option<String>,
    id_token_claims: String,
    userinfo: String,
}

#[derive(Debug)]
struct App {
    client: OidcClient,
    issuer: String,
    http: reqwest::Client,
    /// Logins in progress, by the SHA-256 of their `state`.
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    /// Signed-in browsers, by the SHA-256 of their session cookie (a map
    /// lookup is not constant-time; a lookup by hash reveals nothing).
    sessions: Mutex<HashMap<[u8; 32], SignedIn>>,
}

/// Discovers the provider and returns the app's routes.
pub async fn app(settings: &Settings) -> Result<Router, String> {
    // Following redirects would let a provider aim the app's requests
    // anywhere (SSRF), as the crate's documentation warns.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {}", chain(&e)))?;
    let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| format!("--issuer: {e}"))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|e| format!("discovery at {}: {}", settings.issuer, chain(&e)))?;
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{}/callback", settings.port))
        .map_err(|e| format!("redirect URI: {e}"))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(settings.client_secret.clone()),
    )
    .set_redirect_uri(redirect);
    let app = Arc::new(App {
        client,
        issuer: settings.issuer.clone(),
        http,
        pending: Mutex::default(),
        sessions: Mutex::default(),
    });
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .with_state(app))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = Settings::parse();
    let served = async {
        let app = app(&settings).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
            .await
            .map_err(|e| format!("port {}: {e}", settings.port))?;
        println!("The example app is at http://127.0.0.1:{}/", settings.port);
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    };
    match served.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("relying_party: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `GET /`: the person if signed in, else the button.
async fn home(State(app): State<Arc<App>>, jar: CookieJar) -> Html<String> {
    let signed_in = jar
        .get(SESSION_COOKIE)
        .and_then(|cookie| lock(&app.sessions).get(&digest(cookie.value())).cloned());
    page(match signed_in {
        None => html! {
            h1 { "Example app" }
            p { "This app keeps no passwords: a SQRL login service tells it who you are." }
            form method="get" action="/login" { button { "Log in with SQRL" } }
        },
        Some(person) => html! {
            h1 { "Signed in" }
            p { "Your subject here: " code id="subject" { (person.subject) } }
            @if let Some(fingerprint) = &person.fingerprint {
                p { "Your SQRL identity: " code id="fingerprint" { (fingerprint) } }
            }
            h2 { "ID token claims (verified)" }
            pre { (person.id_token_claims) }
            h2 { "Userinfo" }
            pre { (person.userinfo) }
            form method="post" action="/logout" { button { "Log out" } }
        },
    })
}

/// `GET /login`: off to the provider, with PKCE, `state` and `nonce`.
async fn login(State(app): State<Arc<App>>, jar: CookieJar) -> Response {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = app
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("sqrl".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    {
        let mut pending = lock(&app.pending);
        pending.retain(|_, login| login.started.elapsed() < LOGIN_LIFETIME);
        if pending.len() >= MAX_PENDING {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many logins in progress; try again in a few minutes.",
            );
        }
        let login = Pending {
            verifier,
            nonce,
            started: Instant::now(),
        };
        pending.insert(digest(state.secret()), login);
    }
    // Only the browser that started a login may finish it. SameSite=Lax: the
    // provider's redirect back is a top-level navigation, which carries it.
    // (Over https, add `.secure(true)`.)
    let cookie = Cookie::build((LOGIN_COOKIE, state.secret().clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax);
    (jar.add(cookie), Redirect::to(url.as_str())).into_response()
}

/// The provider's reply, `/callback?code=…&state=…&iss=…` or an error.
#[derive(Debug, Deserialize)]
struct Reply {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback`: the person is back; a session if all checks pass.
async fn callback(
    State(app): State<Arc<App>>,
    jar: CookieJar,
    Query(reply): Query<Reply>,
) -> Response {
    let started = jar
        .get(LOGIN_COOKIE)
        .map(|cookie| cookie.value().to_owned());
    // Whatever the outcome, the login this browser started is over.
    let jar = jar.remove(Cookie::build(LOGIN_COOKIE).path("/"));
    let person = match sign_in(&app, started, reply).await {
        Ok(person) => person,
        Err((status, why)) => return (jar, failure(status, &why)).into_response(),
    };
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let session = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    lock(&app.sessions).insert(digest(&session), person);
    let cookie = Cookie::build((SESSION_COOKIE, session))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax);
    (jar.add(cookie), Redirect::to("/")).into_response()
}

/// Checks the reply against the login it answers, and asks the provider
/// who signed in.
/// `started` is the `state` of the login this browser started (its cookie).
async fn sign_in(
    app: &App,
    started: Option<String>,
    reply: Reply,
) -> Result<SignedIn, (StatusCode, String)> {
    let refused = |why: &str| (StatusCode::BAD_REQUEST, why.to_owned());
    let failed =
        |what: &str, e: &dyn Error| (StatusCode::BAD_GATEWAY, format!("{what}: {}", chain(e)));
    let started = started.ok_or_else(|| refused("No login was started in this browser."))?;
    let login = lock(&app.pending)
        .remove(&digest(&started))
        .filter(|login| login.started.elapsed() < LOGIN_LIFETIME)
        .ok_or_else(|| refused("This login has expired or was already used; log in again."))?;
    // Login CSRF: someone else's reply (their code) must not sign this
    // browser in as them.
    let same_state = reply
        .state
        .as_deref()
        .is_some_and(|state| bool::from(state.as_bytes().ct_eq(started.as_bytes())));
    if !same_state {
        return Err(refused(
            "The reply's state does not match the login this browser started.",
        ));
    }
    // RFC 9207: the reply must come from our provider, not from another one
    // the person was sent to (a mix-up), before its code goes anywhere.
    if reply.iss.as_deref() != Some(app.issuer.as_str()) {
        return Err(refused("The reply names another issuer."));
    }
    if let Some(error) = reply.error {
        let detail = reply.error_description.unwrap_or_default();
        return Err((
            StatusCode::FORBIDDEN,
            format!("The login service said {error}: {detail}"),
        ));
    }
    let code = reply
        .code
        .ok_or_else(|| refused("The reply has no code."))?;

    let tokens = app
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| failed("token endpoint", &e))?
        .set_pkce_verifier(login.verifier)
        .request_async(&app.http)
        .await
        .map_err(|e| failed("code exchange", &e))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| (StatusCode::BAD_GATEWAY, "no ID token".to_owned()))?;
    // Signature (with the algorithms discovery announced), iss, aud, exp, nonce.
    let claims = id_token
        .claims(&app.client.id_token_verifier(), &login.nonce)
        .map_err(|e| failed("ID token refused", &e))?;
    // The crate checks that userinfo speaks of the same subject.
    let userinfo: UserInfoClaims<SqrlClaims, CoreGenderClaim> = app
        .client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .map_err(|e| failed("userinfo endpoint", &e))?
        .request_async(&app.http)
        .await
        .map_err(|e| failed("userinfo", &e))?;
    Ok(SignedIn {
        subject: claims.subject().to_string(),
        fingerprint: userinfo.additional_claims().sqrl_fingerprint.clone(),
        id_token_claims: pretty(claims),
        userinfo: pretty(&userinfo),
    })
}

/// `POST /logout`: forgets the person here (their sign-in at the provider
/// stays). A cross-site form cannot do it: the cookie is SameSite=Lax.
async fn logout(State(app): State<Arc<App>>, jar: CookieJar) -> Response {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        lock(&app.sessions).remove(&digest(cookie.value()));
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/")).into_response()
}

fn page(body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Example app" } }
                body { main { (body) } }
            }
        }
        .into_string(),
    )
}

fn failure(status: StatusCode, why: &str) -> Response {
    let body = page(html! {
        h1 { "Login failed" }
        p { (why) }
        p { a href="/" { "Back" } }
    });
    (status, body).into_response()
}

/// Claims as indented JSON, for the page.
fn pretty(claims: &impl Serialize) -> String {
    serde_json::to_string_pretty(claims).unwrap_or_default()
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A lock that a panicked holder does not poison for good: the maps stay
/// consistent, each change being one insert or remove.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error and its causes, the way the crate's errors explain themselves.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}
