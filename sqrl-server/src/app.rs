//! The shared state, the router and its layers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sqrl_core::server::{Endpoint, Policy};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;

use crate::clock::Clock;
use crate::config::{Config, PublicOrigin};
use crate::metrics::Metrics;
use crate::net;
use crate::notify::Notifier;
use crate::ratelimit::{self, RateLimiter};
use crate::routes;
use crate::store::Store;
use crate::streams::EventStreams;

/// The path clients POST to (SPEC 9: `/cli.sqrl`).
pub const CLIENT_PATH: &str = "/cli.sqrl";

/// Why the application state could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The origin does not make a valid SQRL endpoint.
    #[error("public origin: {0}")]
    Origin(#[from] sqrl_core::url::UrlError),
    /// The `ask`/`sin` settings are not valid protocol values.
    #[error("ask/sin: {0}")]
    Policy(#[from] sqrl_core::msg::MessageError),
}

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

/// The fields of [`AppState`].
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The public origin.
    pub origin: PublicOrigin,
    /// The SQRL client endpoint (`sqrl://host/cli.sqrl` or `qrl://...`).
    pub endpoint: Endpoint,
    /// The protocol settings handed to `sqrl_core::server`.
    pub policy: Policy,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Live updates to waiting pages.
    pub notifier: Arc<dyn Notifier>,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-address rate limit.
    pub limiter: Option<RateLimiter>,
    /// The clock.
    pub clock: Clock,
    /// The `Strict-Transport-Security` value, when the origin is https.
    pub hsts: Option<HeaderValue>,
    /// Conversations with no login page behind them (memory only).
    pub retries: crate::retry::RetryConversations,
    /// Flips to `true` when the server shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
    /// Open login event streams, capped per attempt, per address and in all.
    pub event_streams: EventStreams,
    /// How the pages present the site.
    pub brand: crate::html::Branding,
    /// The OpenID Connect provider, when clients are registered.
    pub oidc: Option<Arc<crate::oidc::Provider>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.inner
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the operator token: print only what is public.
        f.debug_struct("Shared")
            .field("origin", &self.origin)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        config: Config,
        origin: PublicOrigin,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, StateError> {
        let endpoint = Endpoint::from_origin(
            &origin.http_origin(),
            &format!("{}{CLIENT_PATH}", config.path_prefix),
        )?;
        let policy = config.policy()?;
        let limiter = config.rate_limit.map(RateLimiter::new);
        let hsts = (origin.is_secure() && !config.hsts_max_age.is_zero()).then(|| {
            HeaderValue::from_str(&format!("max-age={}", config.hsts_max_age.as_secs()))
                .unwrap_or(HeaderValue::from_static("max-age=31536000"))
        });
        let event_streams = EventStreams::new(&config.limits);
        let brand = crate::html::Branding {
            prefix: config.path_prefix.clone(),
            site_name: config.site_name.clone().unwrap_or_else(|| {
                let origin = origin.http_origin();
                origin
                    .split_once("://")
                    .map_or(origin.clone(), |(_, authority)| authority.to_owned())
            }),
            logo_url: config.logo_url.clone(),
            help_url: config.help_url.clone(),
        };
        let oidc = config
            .oidc
            .enabled()
            .then(|| Arc::new(crate::oidc::Provider::new(config.oidc.clone())));
        Ok(Self {
            inner: Arc::new(Shared {
                config,
                origin,
                endpoint,
                policy,
                store,
                notifier,
                metrics: Metrics::default(),
                limiter,
                clock,
                hsts,
                retries: crate::retry::RetryConversations::new(crate::retry::DEFAULT_CAPACITY),
                shutdown,
                event_streams,
                brand,
                oidc,
            }),
        })
    }

    /// An absolute URL on this service for `path`, a route as the router
    /// declares it (`/account`), under the path prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin.http_origin(), self.path(path))
    }

    /// The OpenID Connect issuer: the public origin and path prefix.
    pub fn issuer(&self) -> String {
        self.url("")
    }

    /// The OpenID Connect provider, or 404 when it is off.
    pub fn provider(&self) -> Result<&crate::oidc::Provider, crate::error::AppError> {
        self.oidc.as_deref().ok_or(crate::error::AppError::Client(
            StatusCode::NOT_FOUND,
            "OpenID Connect is off here: no clients are registered",
        ))
    }

    /// The OpenID Connect provider, or an OAuth error when it is off.
    pub fn provider_or_error(
        &self,
    ) -> Result<&crate::oidc::Provider, crate::oidc::error::OAuthError> {
        self.oidc.as_deref().ok_or_else(|| {
            crate::oidc::error::OAuthError::new(
                crate::oidc::error::ErrorCode::InvalidRequest,
                "OpenID Connect is off here: no clients are registered",
            )
        })
    }

    /// The root-anchored path of route `path` under the path prefix, for
    /// links and redirects (`/account` is `/auth/account` under `/auth`).
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.config.path_prefix)
    }
}

/// The client's address after trusted-proxy resolution (PITFALLS 26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The router with every route and layer, each route under the path
/// prefix (and the login page at the prefix itself as well as below it).
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let prefix = state.config.path_prefix.clone();
    let at = |path: &str| format!("{prefix}{path}");

    let mut routes = Router::new()
        .route(&at("/"), get(routes::login::page))
        .route(&at("/login/events"), get(routes::login::events))
        .route(&at("/static/login.js"), get(routes::login::script))
        .route(&at("/static/style.css"), get(routes::login::style))
        .route(
            &at("/static/local-time.js"),
            get(routes::login::local_time_script),
        )
        .route(&at("/login/rotate"), post(routes::login::rotate))
        .route(&at("/login/collect"), get(routes::login::collect))
        .route(
            &at("/login/complete"),
            get(routes::login::complete).post(routes::login::confirm_complete),
        )
        .route(&at(CLIENT_PATH), post(routes::client::client))
        .route(&at("/nut.sqrl"), get(routes::ssp::nut))
        .route(&at("/png.sqrl"), get(routes::ssp::png))
        .route(&at("/pag.sqrl"), get(routes::ssp::pag))
        .route(&at("/account"), get(routes::account::page))
        .route(
            &at("/account/sessions/{id}/revoke"),
            post(routes::account::revoke),
        )
        .route(
            &at("/account/apps/disconnect"),
            post(routes::account::disconnect),
        )
        .route(&at("/logout"), post(routes::account::logout))
        .route(&at("/forward-auth"), get(routes::forward_auth::check))
        .route(&at("/favicon.ico"), get(routes::ops::favicon))
        .route(&at("/healthz"), get(routes::ops::healthz))
        .route(&at("/readyz"), get(routes::ops::readyz))
        .route(&at("/metrics"), get(routes::ops::metrics))
        .nest(&at("/api"), routes::operator::router());
    if state.oidc.is_some() {
        routes = routes.merge(crate::oidc::routes(&state, &at));
    }
    if !prefix.is_empty() {
        // `/auth` as well as `/auth/`: what a person types.
        routes = routes.route(&prefix, get(routes::login::page));
    }
    // One layer holding the whole stack, not one layer each: axum boxes
    // every route once per layer, and a request clones each box on its way
    // down, every inner box again with it. Four separate layers cost an SSP
    // login 447 allocations, this one 375 (README, "Benchmarks"). The
    // front door stays outermost, so it also logs the body limit's 413.
    routes
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(state.clone(), front_door))
                .layer(RequestBodyLimitLayer::new(body_limit))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Resolves the client IP, applies the defences every request meets, counts
/// and logs the response (one access line) and adds headers every response
/// carries.
async fn front_door(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = net::client_ip(peer, request.headers(), &state.config.trusted_proxies);
    request.extensions_mut().insert(ClientIp(ip));
    let method = request.method().clone();
    // The pattern, never the path: paths and queries may carry tokens.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);

    let mut response = admit(&state, ip, request, next).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.http_response(route, status, elapsed);
    tracing::info!(
        target: crate::logging::ACCESS_TARGET,
        %ip,
        method = method.as_str(),
        route,
        status,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Login links carry single-use tokens in their query: never leak them.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if let Some(hsts) = &state.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

/// The defences in front of every handler: the request must name our
/// origin and stay within the rate limit. Then the handler answers.
async fn admit(state: &AppState, ip: IpAddr, request: Request, next: Next) -> Response {
    // Health checks come from load balancers that address the instance, not
    // the public name.
    let exempt = matches!(
        request
            .uri()
            .path()
            .strip_prefix(state.config.path_prefix.as_str()),
        Some("/healthz" | "/readyz")
    );
    if !exempt && !host_is_ours(state, &request) {
        state.metrics.refused("misdirected");
        tracing::info!(%ip, host = ?request.headers().get(header::HOST), "misdirected request refused");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "this service answers only for {}\n",
                state.origin.http_origin()
            ),
        )
            .into_response();
    }
    if let Some(limiter) = state.limiter.as_ref().filter(|_| !exempt)
        && let Err(limited) = limiter.check(net::rate_limit_key(ip))
    {
        state.metrics.rate_limited();
        tracing::debug!(%ip, "rate limited");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "too many requests from this address, slow down\n",
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(ratelimit::retry_after_secs(limited)),
        );
        return response;
    }
    // A stuck database or a client withholding its body must not hold a
    // request (and its connection slot) for ever. The deadline is on the
    // reply's start, not on its body: the live event stream starts its
    // reply at once and then lasts.
    match tokio::time::timeout(state.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics.refused("timeout");
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the request took too long\n",
            )
                .into_response()
        }
    }
}

/// Whether the request is addressed to the public origin (`Host`, or the
/// authority of an absolute request target). Anything else is a DNS
/// rebinding page or a misrouted request: a page served under a foreign name
/// would start logins "from" the victim's own address.
fn host_is_ours(state: &AppState, request: &Request) -> bool {
    let host = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok()),
    };
    host.is_some_and(|host| state.origin.matches_host(host))
}
