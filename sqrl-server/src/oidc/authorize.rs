//! The authorization endpoint: `GET /oidc/authorize` (the relying party
//! sends the browser here) and `POST /oidc/authorize` (the consent screen's
//! answer).
//!
//! A request walks one way: [`parse`] checks it whole (client, exact
//! redirect URI, response type, scopes, PKCE, prompt); then `decide` asks
//! for a SQRL sign-in if there is no session or it is not fresh enough
//! (`prompt=login`, `max_age`), for consent if the person has not allowed
//! this client these scopes, and otherwise issues a single-use code and
//! sends the browser back to the client.
//!
//! The sign-in is the ordinary login page, told to return here (`rd=`):
//! the authorization request comes back whole, with `login_after` added
//! when a fresh sign-in was demanded, so that the session made by that
//! sign-in, and no older one, satisfies it. `login_after` only ever asks for
//! more than the relying party did: a value older than one login attempt is
//! ignored, and the ID token's `auth_time` says when the person really
//! signed in.

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::html;
use rand_core::OsRng;
use url::Url;

use super::Provider;
use super::clients::Client;
use super::error::{ErrorCode, OAuthError};
use super::pkce;
use super::token::Fields;
use crate::app::AppState;
use crate::cookies::SiteCookies;
use crate::error::AppError;
use crate::routes::account::{current_session, require_same_origin};
use crate::store::oidc::{NewCode, NewGrant};
use crate::store::{LoginMethod, SessionInfo};
use crate::token::Token;

/// How long an authorization code may wait to be redeemed.
pub const CODE_LIFETIME: u64 = 60;

/// The longest `state` or `nonce` accepted.
const MAX_VALUE_LEN: usize = 512;

/// What the relying party asked with `prompt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// No screen may be shown.
    pub none: bool,
    /// A fresh sign-in, even with a session.
    pub login: bool,
    /// The consent screen, even if consent was given before.
    pub consent: bool,
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The client.
    pub client: Client,
    /// Where the answer goes (one of the client's, exactly).
    pub redirect_uri: String,
    /// Echoed to the client.
    pub state: Option<String>,
    /// Echoed in the ID token.
    pub nonce: Option<String>,
    /// The scopes to grant: `openid` and those asked for that the client may have.
    pub scopes: Vec<String>,
    /// The PKCE `S256` challenge.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, seconds.
    pub max_age: Option<u64>,
    /// A sign-in demanded by this request happened after this time.
    pub login_after: Option<u64>,
    /// `acr_values` asks for proof that the person sits at this browser:
    /// a same-device (CPS) sign-in.
    pub wants_same_device: bool,
    /// The request as it came (a query string), to come back to.
    pub query: String,
}

/// Why a request is refused, and where that is said.
#[derive(Debug)]
pub enum Refused {
    /// On a page here: the client or redirect URI cannot be trusted, so the
    /// browser is sent nowhere.
    Page(String),
    /// To the client's redirect URI.
    Redirect {
        /// Where.
        redirect_uri: String,
        /// The request's `state`.
        state: Option<String>,
        /// What.
        error: OAuthError,
    },
}

/// Checks an authorization request (`query`, a URL query string).
pub fn parse(query: &str, provider: &Provider) -> Result<AuthRequest, Refused> {
    let (params, repeated) = Fields::read(query.as_bytes());
    let get = |name: &str| params.get(name);
    // Until the client and its redirect URI are known to be real, nothing
    // may be sent to the redirect URI.
    if let Some(name) = repeated
        .as_deref()
        .filter(|n| ["client_id", "redirect_uri"].contains(n))
    {
        return Err(Refused::Page(format!("{name} is given more than once")));
    }
    let Some(client_id) = get("client_id") else {
        return Err(Refused::Page("client_id is missing".into()));
    };
    let Some(client) = provider.config.client(client_id) else {
        return Err(Refused::Page(format!(
            "no client {client_id:?} is registered here"
        )));
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return Err(Refused::Page("redirect_uri is missing".into()));
    };
    if !client
        .redirect_uris
        .iter()
        .any(|known| known == redirect_uri)
    {
        return Err(Refused::Page(format!(
            "redirect_uri is not one registered for {client_id:?}"
        )));
    }
    let state = get("state").map(str::to_owned);
    let refuse = |code: ErrorCode, description: String| Refused::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone().filter(|s| s.len() <= MAX_VALUE_LEN),
        error: OAuthError::new(code, description),
    };
    let invalid = |description: &str| refuse(ErrorCode::InvalidRequest, description.to_owned());
    if let Some(name) = repeated {
        return Err(invalid(&format!("{name} is given more than once")));
    }
    if get("request").is_some() || get("request_uri").is_some() {
        return Err(invalid("request objects are not supported"));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(invalid("response_type is missing")),
        Some(other) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?}: only \"code\""),
            ));
        }
    }
    if get("response_mode").is_some_and(|mode| mode != "query") {
        return Err(invalid("response_mode: only \"query\""));
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_VALUE_LEN) {
        return Err(invalid("state is too long"));
    }
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_VALUE_LEN) {
        return Err(invalid("nonce is too long"));
    }
    let asked: Vec<&str> = get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !asked.contains(&"openid") {
        return Err(refuse(
            ErrorCode::InvalidScope,
            "scope must include openid".into(),
        ));
    }
    // Scopes the provider does not offer, or this client may not have,
    // are left out (OpenID Connect Core §3.1.2.1), never an error.
    let scopes: Vec<String> = client
        .scopes
        .iter()
        .filter(|scope| asked.contains(&scope.as_str()))
        .cloned()
        .collect();
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(challenge), Some("S256")) if pkce::well_formed(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => return Err(invalid("code_challenge is malformed")),
        (Some(_), _) => return Err(invalid("code_challenge_method must be S256")),
        (None, Some(_)) => return Err(invalid("code_challenge_method without code_challenge")),
    };
    if client.is_public() && code_challenge.is_none() {
        return Err(invalid("a public client must use PKCE (S256)"));
    }
    let mut prompt = Prompt::default();
    for value in get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // One identity per SQRL client: there is no account to choose.
            "select_account" => {}
            other => return Err(invalid(&format!("prompt {other:?} is unknown"))),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(invalid("prompt=none may not be combined"));
    }
    let number = |name: &str| -> Result<Option<u64>, Refused> {
        get(name)
            .map(|text| {
                text.parse::<u64>()
                    .map_err(|_| invalid(&format!("{name} must be a number of seconds")))
            })
            .transpose()
    };
    let max_age = number("max_age")?;
    let login_after = number("login_after")?;
    // Voluntary, as OpenID Connect makes `acr_values`: a sign-in is asked
    // for; the `acr` claim says what the person did.
    let wants_same_device = get("acr_values").is_some_and(|values| {
        values
            .split(' ')
            .any(|value| value == super::ACR_SAME_DEVICE)
    });
    Ok(AuthRequest {
        client: client.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce,
        scopes,
        code_challenge,
        prompt,
        max_age,
        login_after,
        wants_same_device,
        query: query.to_owned(),
    })
}

impl AuthRequest {
    /// Whether `session` will not do for this request at `now`: a sign-in
    /// was demanded (`prompt=login`, an exceeded `max_age`, or a same-device
    /// sign-in asked by `acr_values` that this session is not) and the
    /// session does not come from it. A fresh sign-in answers the demand
    /// whichever way the person chose to sign in.
    fn needs_fresh_login(&self, session: &SessionInfo, now: u64, window: u64) -> bool {
        let demanded = self.prompt.login
            || self
                .max_age
                .is_some_and(|max_age| now.saturating_sub(session.created_at) > max_age)
            || (self.wants_same_device && session.method != Some(LoginMethod::SameDevice));
        let answered = self.login_after.is_some_and(|after| {
            after.saturating_add(window) >= now && session.created_at >= after
        });
        demanded && !answered
    }

    /// This request again, for the login page to return to: `login_after`
    /// set to `now` when a fresh sign-in is demanded.
    fn return_query(&self, fresh_from: Option<u64>) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(self.query.as_bytes()) {
            if name != "login_after" {
                out.append_pair(&name, &value);
            }
        }
        if let Some(now) = fresh_from {
            out.append_pair("login_after", &now.to_string());
        }
        out.finish()
    }
}

/// The person's answer on the consent screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allow.
    Allow,
    /// Refuse.
    Deny,
}

/// `GET /oidc/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    let provider = state.provider()?;
    let request = match parse(query.as_deref().unwrap_or(""), provider) {
        Ok(request) => request,
        Err(refused) => return Ok(refusal(&state, refused)),
    };
    decide(&state, &request, &cookies, None).await
}

/// `POST /oidc/authorize`: the consent screen's form (the request, and
/// `decision`).
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    cookies: CookieJar,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    require_same_origin(&state, &headers)?;
    let provider = state.provider()?;
    let field = |name: &str| {
        form.iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    };
    let decision = match field("decision") {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => return Err(AppError::bad_request("decision must be allow or deny")),
    };
    let request = match parse(field("request").unwrap_or(""), provider) {
        Ok(request) => request,
        Err(refused) => return Ok(refusal(&state, refused)),
    };
    decide(&state, &request, &cookies, Some(decision)).await
}

/// Signs in, asks for consent, or answers with a code.
async fn decide(
    state: &AppState,
    request: &AuthRequest,
    cookies: &CookieJar,
    decision: Option<Decision>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let window = state.config.attempt_lifetime.as_secs() + 60;
    let session = current_session(state, cookies).await?;
    let fresh_needed = session
        .as_ref()
        .is_some_and(|session| request.needs_fresh_login(session, now, window));
    let session = match session {
        Some(session) if !fresh_needed => session,
        _ if request.prompt.none => {
            return Ok(to_client(
                state,
                request,
                Err(OAuthError::new(
                    ErrorCode::LoginRequired,
                    "the person is not signed in",
                )),
            ));
        }
        other => {
            let back = format!(
                "{}?{}",
                state.url("/oidc/authorize"),
                request.return_query(fresh_needed.then_some(now))
            );
            let encoded: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
            // With a session, the login page must still show its code.
            let fresh = if other.is_some() { "&fresh=1" } else { "" };
            return Ok(
                Redirect::to(&format!("{}?rd={encoded}{fresh}", state.path("/"))).into_response(),
            );
        }
    };

    let store = &state.store;
    match decision {
        Some(Decision::Deny) => {
            return Ok(to_client(
                state,
                request,
                Err(OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the person refused",
                )),
            ));
        }
        Some(Decision::Allow) => {
            store
                .give_consent(
                    session.account_id,
                    &request.client.id,
                    &request.scopes.join(" "),
                    now,
                )
                .await?;
        }
        None => {
            let given = store
                .consent(session.account_id, &request.client.id)
                .await?;
            let covered = given.is_some_and(|given| {
                let given: Vec<&str> = given.split(' ').collect();
                request
                    .scopes
                    .iter()
                    .all(|scope| given.contains(&scope.as_str()))
            });
            if !covered || request.prompt.consent {
                if request.prompt.none {
                    return Ok(to_client(
                        state,
                        request,
                        Err(OAuthError::new(
                            ErrorCode::ConsentRequired,
                            "the person has not allowed this client",
                        )),
                    ));
                }
                return Ok(consent_page(state, request));
            }
        }
    }

    let Some(session_token) = SiteCookies::of(state).session_token(cookies) else {
        return Err(AppError::Internal("a session without its cookie".into()));
    };
    let subject = match super::token::subject(state, &request.client, session.account_id).await {
        Ok(subject) => subject,
        Err(error) => return Ok(to_client(state, request, Err(error))),
    };
    let code = Token::generate(&mut OsRng);
    let amr = match session.method {
        Some(LoginMethod::SameDevice) => "sqrl cps",
        Some(LoginMethod::CrossDevice) => "sqrl xdev",
        None => "sqrl",
    };
    let issued = store
        .issue_code(
            NewGrant {
                client_id: request.client.id.clone(),
                account_id: session.account_id,
                session_id: session.id,
                scope: request.scopes.join(" "),
                nonce: request.nonce.clone(),
                auth_time: session.created_at,
                amr: amr.to_owned(),
                subject,
                sid: super::session_id(&session_token),
                logout_uri: request.client.backchannel_logout_uri.clone(),
            },
            NewCode {
                code_hash: code.hash(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                expires_at: now + CODE_LIFETIME,
            },
            now,
        )
        .await?;
    if issued.is_none() {
        // The session ended between the lookup and now.
        return Ok(to_client(
            state,
            request,
            Err(OAuthError::new(
                ErrorCode::LoginRequired,
                "the session has ended",
            )),
        ));
    }
    state.metrics.oidc("code-issued");
    tracing::info!(
        account = session.account_id,
        client = request.client.id,
        "authorization code issued"
    );
    Ok(to_client(state, request, Ok(code.encode())))
}

/// The browser sent back to the client with a code or an error, the
/// request's `state`, and the issuer (RFC 9207).
fn to_client(
    state: &AppState,
    request: &AuthRequest,
    outcome: Result<String, OAuthError>,
) -> Response {
    if let Err(error) = &outcome {
        state.metrics.oidc(error.code.as_str());
    }
    redirect_to_client(
        state,
        &request.redirect_uri,
        request.state.as_deref(),
        outcome,
    )
}

fn redirect_to_client(
    state: &AppState,
    redirect_uri: &str,
    request_state: Option<&str>,
    outcome: Result<String, OAuthError>,
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        // Registered URIs were parsed at start-up.
        return AppError::Internal(format!("redirect URI {redirect_uri:?}")).into_response();
    };
    {
        let mut pairs = url.query_pairs_mut();
        match &outcome {
            Ok(code) => {
                pairs.append_pair("code", code);
            }
            Err(error) => {
                pairs.append_pair("error", error.code.as_str());
                pairs.append_pair("error_description", &error.description);
            }
        }
        if let Some(value) = request_state {
            pairs.append_pair("state", value);
        }
        pairs.append_pair("iss", &state.issuer());
    }
    Redirect::to(url.as_str()).into_response()
}

/// A refused request: on a page, or back to the client.
fn refusal(state: &AppState, refused: Refused) -> Response {
    match refused {
        Refused::Page(reason) => {
            state.metrics.oidc("refused-request");
            tracing::info!(reason, "authorization request refused");
            let body = html! {
                h1 { "This sign-in request cannot be used" }
                p { "The site that sent you here made a request this service does not accept:" }
                p { code { (reason) } }
                p { "Go back to the site and try again, or tell its operator." }
            };
            let mut response = crate::html::response(
                super::PAGE_CSP,
                crate::html::page(&state.brand, "Sign-in request refused", body),
            );
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Refused::Redirect {
            redirect_uri,
            state: request_state,
            error,
        } => {
            state.metrics.oidc(error.code.as_str());
            redirect_to_client(state, &redirect_uri, request_state.as_deref(), Err(error))
        }
    }
}

/// What each scope gives the client, as the consent screen says it.
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "that you are the same person each time you sign in",
        "sqrl" => "your SQRL identity's fingerprint, as your account page shows it",
        _ => "",
    }
}

/// The consent screen: which client, what it receives, allow or refuse.
fn consent_page(state: &AppState, request: &AuthRequest) -> Response {
    let client = &request.client;
    let body = html! {
        h1 { "Sign in to " (client.name) "?" }
        p { strong { (client.name) } " asks to sign you in with your SQRL identity. It will receive:" }
        ul id="consent-scopes" {
            @for scope in &request.scopes {
                li data-scope=(scope) { (describe_scope(scope)) }
            }
        }
        p { "It will be sent back to " code { (origin_of(&request.redirect_uri)) } "." }
        form method="post" action=(state.path("/oidc/authorize")) {
            input type="hidden" name="request" value=(request.query);
            button type="submit" name="decision" value="allow" id="allow" { "Allow" }
            " "
            button type="submit" name="decision" value="deny" id="deny" { "Refuse" }
        }
    };
    // The form's answer is a redirect to the client: browsers hold it to
    // the policy's form-action, so the client's origin is named there.
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        origin_of(&request.redirect_uri)
    );
    page_with_csp(crate::html::page(&state.brand, "Allow sign-in", body), &csp)
}

/// A page served with its own content security policy.
pub fn page_with_csp(page: maud::Markup, csp: &str) -> Response {
    let mut response = page.into_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let csp = HeaderValue::from_str(csp).unwrap_or(HeaderValue::from_static(super::PAGE_CSP));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    response
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    Url::parse(url).map_or_else(|_| String::new(), |url| url.origin().ascii_serialization())
}
