//! Configuration: every setting's flag, `SQRL_*` environment variable, TOML
//! key and default come from one declaration ([`Settings`]), validated into
//! one [`Config`] by the same constructors the protocol uses.
//!
//! ```text
//! flag  >  environment variable  >  TOML file  >  built-in default
//! ```

mod origin;
mod settings;

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqrl_core::msg::{Ask, AskButton, MessageError};
use sqrl_core::server::Policy;

use crate::net::IpNet;
use crate::return_to::ReturnDomains;
pub use crate::store::Database;
use crate::webhooks::{DeliverySettings, Endpoint, EventKind, SigningKey};
pub use origin::{PublicOrigin, PublicScheme};
pub use settings::{LogFormat, Settings, WebhookSecret, WebhookSettings};

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A flag or environment variable is not valid, or `--help`/`--version`
    /// was asked for (its [`clap::Error::exit`] prints and exits).
    #[error("{0}")]
    Args(clap::Error),
    /// The TOML file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("parsing config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML failure.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// The operator API's bearer token: never printed. It serializes only so
/// that [`Settings`] can merge a flag's value with the TOML file's.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperatorToken(String);

impl OperatorToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for OperatorToken {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

/// The `ask` shown by the identity client (SPEC 3, `ask=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskConfig {
    /// The question, plain text.
    pub message: String,
    /// Up to two buttons.
    pub buttons: Vec<AskButtonConfig>,
}

impl AskConfig {
    /// The question as the protocol sends it; sqrl-core's constructors decide
    /// what a valid button is and how many there may be.
    pub fn to_ask(&self) -> Result<Ask, MessageError> {
        self.buttons
            .iter()
            .try_fold(Ask::new(self.message.clone()), |ask, button| {
                ask.with_button(AskButton::new(button.label.clone(), button.url.clone())?)
            })
    }
}

/// One button of the `ask`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskButtonConfig {
    /// The label, plain text, without `;`.
    pub label: String,
    /// A root-anchored path on this site (SPEC 3: `;` separates it from the
    /// label on the wire): where the browser of a user who chose this button
    /// goes once logged in, instead of the account page.
    pub url: Option<String>,
}

impl AskButtonConfig {
    /// A button with a label only.
    pub fn label(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            url: None,
        }
    }

    /// A button whose choice sends the browser to `url` after login.
    pub fn with_url(label: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            url: Some(url.into()),
        }
    }

    /// Reads `label` or `label;/path`, the form SPEC 3 uses on the wire.
    /// sqrl-core checks the button; this service adds that the URL be a path
    /// on this site (`/...`, no backslash): the browser is redirected to it,
    /// so it may not lead off-site.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (label, url) = match text.split_once(';') {
            Some((label, url)) => (label.trim(), Some(url.trim())),
            None => (text.trim(), None),
        };
        if label.is_empty() {
            return Err(invalid("ask-buttons", "a button needs a label"));
        }
        let off_site = |url: &&str| !url.starts_with('/') || url.contains('\\');
        if let Some(url) = url.filter(off_site) {
            return Err(invalid(
                "ask-buttons",
                format!("{url:?} is not a root-anchored path on this site (SPEC 3)"),
            ));
        }
        AskButton::new(label, url.map(str::to_owned)).map_err(|error| {
            invalid(
                "ask-buttons",
                format!("{text:?}: {error} (SPEC 3 wants a root-anchored path)"),
            )
        })?;
        Ok(Self {
            label: label.to_owned(),
            url: url.map(str::to_owned),
        })
    }
}

/// Per-client-address rate limit: `burst` requests at once, refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests allowed per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

/// What one client, or all of them, may hold open: connections (and how
/// long they may stay silent) and login event streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a whole request header, from when the connection opens
    /// or goes idle after a response (the keep-alive idle timeout too).
    pub header_read_timeout: Duration,
    /// Time to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: /64); trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// Open event streams in all.
    pub max_event_streams: usize,
    /// Open event streams per client address (IPv6: /64).
    pub max_event_streams_per_address: usize,
    /// Open event streams per login attempt (a new one closes the oldest).
    pub max_event_streams_per_attempt: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Config::default().limits
    }
}

/// Longest configurable header-read or TLS handshake timeout.
const MAX_CONNECTION_TIMEOUT: u64 = 300;

/// Most event streams one attempt may hold (a page needs one).
const MAX_STREAMS_PER_ATTEMPT: usize = 16;

/// The default cap of connections from one address, when the total allows it.
const CONNECTIONS_PER_ADDRESS: usize = 256;

/// The default cap of event streams from one address, when the total allows it.
const EVENT_STREAMS_PER_ADDRESS: usize = 64;

/// The connection limits of `settings`, validated.
fn connection_limits(settings: &Settings) -> Result<ConnectionLimits, ConfigError> {
    let timeout = |name: &'static str, secs: u64| {
        if (1..=MAX_CONNECTION_TIMEOUT).contains(&secs) {
            Ok(Duration::from_secs(secs))
        } else {
            Err(invalid(
                name,
                format!("must be 1 to {MAX_CONNECTION_TIMEOUT} seconds"),
            ))
        }
    };
    let max_connections = settings.max_connections;
    if max_connections == 0 {
        return Err(invalid("max-connections", "must be at least 1"));
    }
    let max_connections_per_address = settings
        .max_connections_per_address
        .unwrap_or(CONNECTIONS_PER_ADDRESS.min(max_connections));
    if !(1..=max_connections).contains(&max_connections_per_address) {
        return Err(invalid(
            "max-connections-per-address",
            "must be 1 to max-connections",
        ));
    }
    let max_event_streams = settings.max_event_streams;
    if max_event_streams == 0 {
        return Err(invalid("max-event-streams", "must be at least 1"));
    }
    let max_event_streams_per_address = settings
        .max_event_streams_per_address
        .unwrap_or(EVENT_STREAMS_PER_ADDRESS.min(max_event_streams));
    if !(1..=max_event_streams).contains(&max_event_streams_per_address) {
        return Err(invalid(
            "max-event-streams-per-address",
            "must be 1 to max-event-streams",
        ));
    }
    let max_event_streams_per_attempt = settings.max_event_streams_per_attempt;
    if !(1..=MAX_STREAMS_PER_ATTEMPT).contains(&max_event_streams_per_attempt) {
        return Err(invalid(
            "max-event-streams-per-attempt",
            format!("must be 1 to {MAX_STREAMS_PER_ATTEMPT}"),
        ));
    }
    Ok(ConnectionLimits {
        header_read_timeout: timeout("header-read-timeout", settings.header_read_timeout)?,
        tls_handshake_timeout: timeout("tls-handshake-timeout", settings.tls_handshake_timeout)?,
        max_connections,
        max_connections_per_address,
        max_event_streams,
        max_event_streams_per_address,
        max_event_streams_per_attempt,
    })
}

/// Built-in TLS key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Checks the webhook delivery settings.
fn webhook_delivery(
    timeout: u64,
    max_attempts: u32,
    retry_base: u64,
) -> Result<DeliverySettings, ConfigError> {
    if !(1..=60).contains(&timeout) {
        return Err(invalid("webhook-timeout", "must be 1 to 60 seconds"));
    }
    if !(1..=50).contains(&max_attempts) {
        return Err(invalid("webhook-max-attempts", "must be 1 to 50"));
    }
    if !(1..=3600).contains(&retry_base) {
        return Err(invalid("webhook-retry-base", "must be 1 to 3600 seconds"));
    }
    Ok(DeliverySettings {
        timeout: Duration::from_secs(timeout),
        max_attempts,
        retry_base: Duration::from_secs(retry_base),
        ..DeliverySettings::default()
    })
}

/// Checks the `[[webhooks]]` tables: an http(s) URL each, named once; a
/// `whsec_` secret, given inline or in a file; known event names.
fn webhook_endpoints(tables: &[WebhookSettings]) -> Result<Vec<Endpoint>, ConfigError> {
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(tables.len());
    for table in tables {
        let url = reqwest::Url::parse(&table.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                invalid(
                    "webhooks.url",
                    "must be an http:// or https:// URL with a host",
                )
            })?;
        if endpoints.iter().any(|endpoint| endpoint.url == url) {
            return Err(invalid("webhooks.url", "each endpoint may be given once"));
        }
        let secret = match (&table.secret, &table.secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(WebhookSecret::new)
                .map_err(|error| {
                    invalid(
                        "webhooks.secret_file",
                        format!("reading {}: {error}", path.display()),
                    )
                })?,
            _ => {
                return Err(invalid(
                    "webhooks.secret",
                    "give either secret or secret_file",
                ));
            }
        };
        let key = SigningKey::parse(secret.as_str())
            .map_err(|reason| invalid("webhooks.secret", reason))?;
        let events = match &table.events {
            None => None,
            Some(names) if names.is_empty() => {
                return Err(invalid("webhooks.events", "name at least one event"));
            }
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| {
                        EventKind::parse(name).ok_or_else(|| {
                            invalid("webhooks.events", format!("unknown event {name:?}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        endpoints.push(Endpoint { url, key, events });
    }
    Ok(endpoints)
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener address.
    pub bind: SocketAddr,
    /// The database.
    pub db: Database,
    /// The public origin; `None` derives it from the bound address (useful with
    /// port 0 in tests).
    pub public_origin: Option<PublicOrigin>,
    /// Built-in TLS.
    pub tls: Option<TlsFiles>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Rate limit per client address; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Connection and event-stream limits.
    pub limits: ConnectionLimits,
    /// Lifetime of a nut on a waiting page, and of each reply nut.
    pub nut_lifetime: Duration,
    /// Lifetime of a whole login attempt (at most 10 minutes).
    pub attempt_lifetime: Duration,
    /// Logins in flight kept at once (SQLite: in memory); more are refused.
    pub max_logins_in_flight: usize,
    /// How often an open login page gets a fresh nut (at most every 60 s).
    pub nut_rotation: Duration,
    /// Absolute lifetime of a browser session.
    pub session_lifetime: Duration,
    /// How long a browser session survives unused.
    pub session_idle_timeout: Duration,
    /// Whether identity replacement (rekey) ends the account's sessions.
    pub revoke_sessions_on_rekey: bool,
    /// `Strict-Transport-Security: max-age` over https (zero: no header).
    pub hsts_max_age: Duration,
    /// Lifetime of a single-use login URL (CPS `url=`, collect link).
    pub login_token_lifetime: Duration,
    /// Operator API bearer token; `None` turns the API off.
    pub operator_token: Option<OperatorToken>,
    /// `ask` sent with every login.
    pub ask: Option<AskConfig>,
    /// `sin` requested with every login.
    pub sin: Option<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Request timeout (not applied to the event stream).
    pub request_timeout: Duration,
    /// SQLite connections.
    pub db_connections: usize,
    /// Webhook endpoints that receive login events.
    pub webhooks: Vec<Endpoint>,
    /// How webhook deliveries are attempted.
    pub webhook_delivery: DeliverySettings,
    /// The path every route lives under: empty, or `/auth` (no trailing `/`).
    pub path_prefix: String,
    /// The session cookie's `Domain` (without a leading dot); `None` for a
    /// host-only cookie.
    pub cookie_domain: Option<String>,
    /// Hosts besides the service's own that a login may return to (`rd=`).
    pub return_domains: ReturnDomains,
    /// The `/forward-auth` response header that names the user.
    pub forward_auth_user_header: axum::http::HeaderName,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// The site's name on its pages; `None` shows the public origin's host.
    pub site_name: Option<String>,
    /// The logo above every page (`https://` URL or a path on this host).
    pub logo_url: Option<String>,
    /// Where "What is SQRL? Get an app" leads.
    pub help_url: String,
    /// The OpenID Connect provider: its clients and token lifetimes.
    pub oidc: crate::oidc::clients::OidcConfig,
}

/// Longest a login attempt may live (issue 3: an attempt expires within 10 minutes).
pub const MAX_ATTEMPT_LIFETIME: Duration = Duration::from_secs(600);

/// Shortest idle timeout of a session (its last use is recorded once a minute).
pub const MIN_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a page may show the same nut (issue 3: rotate at least every 60 s).
pub const MAX_NUT_ROTATION: Duration = Duration::from_secs(60);

/// Longest a single-use login link may stay valid.
pub const MAX_LOGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Longest `sin` accepted (it is an index the site chooses, not a secret).
const MAX_SIN_LEN: usize = 64;

impl Default for Config {
    /// The built-in defaults of [`Settings`], whatever the environment says.
    fn default() -> Self {
        match Self::from_settings(Settings::defaults()) {
            Ok(config) => config,
            // The `defaults_are_valid` test holds this.
            Err(error) => panic!("the built-in defaults are invalid: {error}"),
        }
    }
}

impl Config {
    /// A configuration for an in-process server on `127.0.0.1:0` with the given
    /// database file (tests, benches).
    pub fn for_tests(db: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: Database::Sqlite(db.into()),
            ..Self::default()
        }
    }

    /// Reads flags (`args`, the program name first), the environment and
    /// the file `--config` names, and validates them.
    pub fn load<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::from_settings(Settings::from_args(args)?)
    }

    /// Validates settings.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let limits = connection_limits(&settings)?;
        let tls = match (settings.tls_cert, settings.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("tls-cert/tls-key", "give both or neither")),
        };
        let public_origin = settings
            .public_origin
            .map(|text| PublicOrigin::parse(&text))
            .transpose()?;
        if let (Some(origin), Some(_)) = (&public_origin, &tls)
            && origin.scheme() == PublicScheme::Http
        {
            return Err(invalid(
                "public-origin",
                "built-in TLS is on, so the origin must be https://",
            ));
        }
        let trusted_proxies = settings
            .trusted_proxies
            .iter()
            .map(|text| text.trim())
            .filter(|text| !text.is_empty())
            .map(|text| {
                IpNet::parse(text).ok_or_else(|| {
                    invalid(
                        "trusted-proxies",
                        format!("{text:?} is not an IP or CIDR block"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let per_second = settings.rate_limit_per_second;
        let burst = settings.rate_limit_burst;
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(invalid(
                "rate-limit-per-second",
                "must be 0 (off) or positive",
            ));
        }
        let rate_limit = (per_second > 0.0).then_some(RateLimit { per_second, burst });
        if rate_limit.is_some() && burst == 0 {
            return Err(invalid("rate-limit-burst", "must be at least 1"));
        }

        let attempt_lifetime = Duration::from_secs(settings.attempt_lifetime);
        if attempt_lifetime > MAX_ATTEMPT_LIFETIME || attempt_lifetime < Duration::from_secs(30) {
            return Err(invalid("attempt-lifetime", "must be 30 to 600 seconds"));
        }
        if settings.max_logins_in_flight == 0 {
            return Err(invalid("max-logins-in-flight", "must be at least 1"));
        }
        let nut_lifetime = Duration::from_secs(settings.nut_lifetime);
        if nut_lifetime < Duration::from_secs(1) || nut_lifetime > attempt_lifetime {
            return Err(invalid(
                "nut-lifetime",
                "must be at least 1 second and at most the attempt lifetime",
            ));
        }
        let nut_rotation = Duration::from_secs(settings.nut_rotation);
        if nut_rotation.is_zero() || nut_rotation > MAX_NUT_ROTATION {
            return Err(invalid(
                "nut-rotation",
                format!("must be 1 to {} seconds", MAX_NUT_ROTATION.as_secs()),
            ));
        }
        let login_token_lifetime = Duration::from_secs(settings.login_token_lifetime);
        if login_token_lifetime.is_zero() || login_token_lifetime > MAX_LOGIN_TOKEN_LIFETIME {
            return Err(invalid(
                "login-token-lifetime",
                format!(
                    "must be 1 to {} seconds",
                    MAX_LOGIN_TOKEN_LIFETIME.as_secs()
                ),
            ));
        }
        let session_lifetime = Duration::from_secs(settings.session_lifetime);
        if session_lifetime < Duration::from_secs(60) {
            return Err(invalid("session-lifetime", "must be at least 60 seconds"));
        }
        let session_idle_timeout =
            Duration::from_secs(settings.session_idle_timeout).min(session_lifetime);
        // The last use of a session is recorded once a minute: a shorter
        // idle timeout would end sessions in active use.
        if session_idle_timeout < MIN_SESSION_IDLE_TIMEOUT {
            return Err(invalid(
                "session-idle-timeout",
                format!(
                    "must be at least {} seconds",
                    MIN_SESSION_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }

        let operator_token = settings.operator_token;
        if let Some(token) = &operator_token
            && token.as_str().len() < 16
        {
            return Err(invalid("operator-token", "must be at least 16 characters"));
        }
        let ask = match settings.ask {
            Some(message) if !message.trim().is_empty() => {
                let buttons = settings
                    .ask_buttons
                    .iter()
                    .map(|text| AskButtonConfig::parse(text))
                    .collect::<Result<Vec<_>, _>>()?;
                let ask = AskConfig { message, buttons };
                ask.to_ask()
                    .map_err(|error| invalid("ask-buttons", error.to_string()))?;
                Some(ask)
            }
            _ => None,
        };
        let sin = settings.sin.filter(|sin| !sin.is_empty());
        if let Some(sin) = &sin {
            if sin.len() > MAX_SIN_LEN {
                return Err(invalid("sin", format!("at most {MAX_SIN_LEN} characters")));
            }
            Policy::new()
                .with_sin(sin.as_str())
                .map_err(|error| invalid("sin", error.to_string()))?;
        }
        let max_body_bytes = settings.max_body_bytes;
        if max_body_bytes < sqrl_core::msg::MAX_BODY_LEN {
            return Err(invalid(
                "max-body-bytes",
                format!(
                    "must be at least {} (the largest valid client request)",
                    sqrl_core::msg::MAX_BODY_LEN
                ),
            ));
        }
        let db_connections = settings.db_connections;
        if !(1..=64).contains(&db_connections) {
            return Err(invalid("db-connections", "must be 1 to 64"));
        }

        let webhook_delivery = webhook_delivery(
            settings.webhook_timeout,
            settings.webhook_max_attempts,
            settings.webhook_retry_base,
        )?;
        let webhooks = webhook_endpoints(&settings.webhooks)?;
        let oidc = crate::oidc::clients::OidcConfig::from_settings(&settings.oidc)
            .map_err(|(name, reason)| invalid(name, reason))?;
        let path_prefix = path_prefix(settings.path_prefix.as_deref().unwrap_or(""))?;
        let cookie_domain = settings
            .cookie_domain
            .as_deref()
            .map(str::trim)
            .filter(|domain| !domain.is_empty())
            .map(|domain| cookie_domain(domain, public_origin.as_ref()))
            .transpose()?;
        let return_domains =
            ReturnDomains::parse(settings.allowed_return_domains.iter().map(String::as_str))
                .map_err(|reason| invalid("allowed-return-domains", reason))?;
        let forward_auth_user_header = forward_auth_header(&settings.forward_auth_user_header)?;

        let site_name = settings
            .site_name
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .map(|name| {
                if name.chars().count() > 80 || name.chars().any(char::is_control) {
                    Err(invalid(
                        "site-name",
                        "at most 80 characters, no control characters",
                    ))
                } else {
                    Ok(name)
                }
            })
            .transpose()?;
        let logo_url = settings
            .logo_url
            .filter(|url| !url.trim().is_empty())
            .map(|url| page_link(&url, true).map_err(|reason| invalid("logo-url", reason)))
            .transpose()?;
        let help_url =
            page_link(&settings.help_url, false).map_err(|reason| invalid("help-url", reason))?;

        Ok(Self {
            webhooks,
            webhook_delivery,
            bind: settings.bind,
            db: settings.db,
            public_origin,
            tls,
            trusted_proxies,
            rate_limit,
            limits,
            nut_lifetime,
            attempt_lifetime,
            max_logins_in_flight: settings.max_logins_in_flight,
            // A page must show a fresh nut before the one it shows expires.
            nut_rotation: nut_rotation.min(nut_lifetime),
            session_lifetime,
            session_idle_timeout,
            revoke_sessions_on_rekey: settings.revoke_sessions_on_rekey,
            hsts_max_age: Duration::from_secs(settings.hsts_max_age),
            login_token_lifetime,
            operator_token,
            ask,
            sin,
            max_body_bytes,
            request_timeout: Duration::from_secs(settings.request_timeout),
            db_connections,
            path_prefix,
            cookie_domain,
            return_domains,
            forward_auth_user_header,
            log_format: settings.log_format,
            site_name,
            logo_url,
            help_url,
            oidc,
        })
    }

    /// The protocol settings handed to `sqrl_core::server`: the nut lifetime,
    /// and the `sin` and `ask` as sqrl-core's constructors accept them.
    pub fn policy(&self) -> Result<Policy, MessageError> {
        // Each nut of a page's conversation lives one nut lifetime from the
        // reply that hands it out (the store caps it at the attempt's end).
        let mut policy = Policy::new().with_nut_lifetime(self.nut_lifetime.as_secs());
        if let Some(sin) = &self.sin {
            policy = policy.with_sin(sin.as_str())?;
        }
        if let Some(ask) = &self.ask {
            policy = policy.with_ask(ask.to_ask()?);
        }
        Ok(policy)
    }

    /// The origin to advertise once the listener is bound.
    pub fn origin_for(&self, bound: SocketAddr) -> PublicOrigin {
        self.public_origin.clone().unwrap_or_else(|| {
            let scheme = if self.tls.is_some() {
                PublicScheme::Https
            } else {
                PublicScheme::Http
            };
            // A wildcard listener is not an address a browser can use.
            let addr = if bound.ip().is_unspecified() {
                SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port())
            } else {
                bound
            };
            PublicOrigin::for_addr(addr, scheme)
        })
    }
}

/// Reads `--path-prefix`: empty, or `/` and path segments of characters
/// that need no escaping in a URL, without a trailing `/` (`/auth` or
/// `/auth/` give `/auth`).
/// A link the pages show (logo, help): an absolute `https://` URL (or
/// `http://` for a link a person follows, not for an image the page loads,
/// which would be mixed content), or, when `may_be_local`, a path on this
/// host. Nothing that could run script (`javascript:`), hide a host (`//`,
/// `\`) or break out of the attribute.
fn page_link(text: &str, may_be_local: bool) -> Result<String, String> {
    let text = text.trim();
    if text
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"' || c == '\\')
    {
        return Err("no spaces, quotes, backslashes or control characters".to_owned());
    }
    let local = may_be_local && text.starts_with('/') && !text.starts_with("//");
    let remote = match url::Url::parse(text) {
        Ok(url) => {
            (url.scheme() == "https" || (!may_be_local && url.scheme() == "http"))
                && url.host_str().is_some()
                && url.username().is_empty()
                && url.password().is_none()
        }
        Err(_) => false,
    };
    if local || remote {
        Ok(text.to_owned())
    } else if may_be_local {
        Err("must be an https:// URL or a path on this host (/logo.svg)".to_owned())
    } else {
        Err("must be an https:// or http:// URL".to_owned())
    }
}

fn path_prefix(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let prefix = text.trim_end_matches('/');
    if prefix.is_empty() {
        return Ok(String::new());
    }
    let valid = prefix.starts_with('/')
        && prefix[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if valid {
        Ok(prefix.to_owned())
    } else {
        Err(invalid(
            "path-prefix",
            format!("{text:?} is not a path like /auth (letters, digits, -._~ between slashes)"),
        ))
    }
}

/// Reads `--cookie-domain` (`.example.com` or `example.com`): a host name the
/// public origin's host lies in, or the browser would refuse the cookie.
fn cookie_domain(text: &str, origin: Option<&PublicOrigin>) -> Result<String, ConfigError> {
    let domain = text.trim_start_matches('.').to_ascii_lowercase();
    let valid = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(invalid(
            "cookie-domain",
            format!("{text:?} is not a domain like .example.com"),
        ));
    }
    let Some(origin) = origin else {
        return Err(invalid(
            "cookie-domain",
            "needs --public-origin, whose host must lie in the domain",
        ));
    };
    let host = origin.host();
    let inside = host == domain
        || host
            .strip_suffix(domain.as_str())
            .is_some_and(|sub| sub.ends_with('.'));
    if !inside {
        return Err(invalid(
            "cookie-domain",
            format!("the public origin's host {host} is not in {domain}"),
        ));
    }
    Ok(domain)
}

/// Reads `--forward-auth-user-header`: a header name a proxy may copy.
fn forward_auth_header(text: &str) -> Result<axum::http::HeaderName, ConfigError> {
    let name = axum::http::HeaderName::from_bytes(text.trim().as_bytes()).map_err(|_| {
        invalid(
            "forward-auth-user-header",
            format!("{text:?} is not a header name"),
        )
    })?;
    // Headers the response needs for itself, or that a proxy handles.
    let reserved = [
        axum::http::header::SET_COOKIE,
        axum::http::header::CONTENT_TYPE,
        axum::http::header::CONTENT_LENGTH,
        axum::http::header::LOCATION,
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::header::CONNECTION,
        axum::http::header::TRANSFER_ENCODING,
    ];
    if reserved.contains(&name) {
        return Err(invalid(
            "forward-auth-user-header",
            format!("{name} is a header the response uses for itself"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Flags (never the environment of the test run) over a TOML file.
    fn merge(args: &[&str], file: &str) -> Result<Config, ConfigError> {
        Config::from_settings(Settings::for_test(args, file)?)
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::default();
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(config.db, Database::Sqlite(PathBuf::from("sqrl.db")));
        assert_eq!(
            config.rate_limit,
            Some(RateLimit {
                per_second: 20.0,
                burst: 300
            })
        );
        assert_eq!(config.nut_rotation, Duration::from_secs(50));
        assert_eq!(config.login_token_lifetime, Duration::from_secs(60));
        assert_eq!(config.limits.max_connections_per_address, 256);
    }

    #[test]
    fn flags_override_file() {
        let config = merge(
            &["--db", "flag.db"],
            "db = \"file.db\"\nbind = \"0.0.0.0:9000\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
        )
        .unwrap();
        assert_eq!(config.db, Database::Sqlite(PathBuf::from("flag.db")));
        assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.trusted_proxies.len(), 1);
        assert_eq!(
            config.origin_for(config.bind).http_origin(),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn example_file_is_valid() {
        let config = merge(&[], include_str!("../sqrl-server.example.toml")).unwrap();
        assert_eq!(
            config.origin_for(config.bind).sqrl_origin(),
            "sqrl://login.example.com"
        );
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn webhooks_are_validated_and_their_secrets_never_printed() {
        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let file = format!(
            "webhook_retry_base = 2\n\
             [[webhooks]]\nurl = \"https://app:hunter2@app.example/hook?key=k3y\"\n\
             secret = \"{SECRET}\"\n\
             [[webhooks]]\nurl = \"http://10.0.0.2:9000/sqrl\"\nsecret_file = {:?}\n\
             events = [\"login\", \"identity.removed\"]\n",
            secret_file.display().to_string()
        );
        let config = merge(&["--webhook-max-attempts", "3"], &file).unwrap();
        assert_eq!(config.webhooks.len(), 2);
        assert_eq!(config.webhooks[0].events, None);
        assert_eq!(
            config.webhooks[1].events,
            Some(vec![EventKind::Login, EventKind::IdentityRemoved])
        );
        assert_eq!(config.webhook_delivery.max_attempts, 3);
        assert_eq!(config.webhook_delivery.retry_base, Duration::from_secs(2));
        let printed = format!("{config:?}");
        for secret in ["MfKQ9r8G", "hunter2", "k3y"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("app.example/hook"), "{printed}");
        assert!(Config::default().webhooks.is_empty());

        let table = |body: &str| format!("[[webhooks]]\n{body}\n");
        let secret = format!("secret = \"{SECRET}\"");
        for (file, setting) in [
            (table("url = \"ftp://x/\"\n") + &secret, "webhooks.url"),
            (table("url = \"not a url\"\n") + &secret, "webhooks.url"),
            (
                table(&format!("url = \"http://a/\"\n{secret}"))
                    + &table(&format!("url = \"http://a/\"\n{secret}")),
                "webhooks.url",
            ),
            (table("url = \"http://a/\""), "webhooks.secret"),
            (
                table(&format!(
                    "url = \"http://a/\"\n{secret}\nsecret_file = \"/x\""
                )),
                "webhooks.secret",
            ),
            (
                table("url = \"http://a/\"\nsecret = \"not-a-whsec\""),
                "webhooks.secret",
            ),
            (
                table("url = \"http://a/\"\nsecret_file = \"/nonexistent/secret\""),
                "webhooks.secret_file",
            ),
            (
                table(&format!(
                    "url = \"http://a/\"\n{secret}\nevents = [\"login.failed\"]"
                )),
                "webhooks.events",
            ),
            (
                table(&format!("url = \"http://a/\"\n{secret}\nevents = []")),
                "webhooks.events",
            ),
            ("webhook_timeout = 0".to_owned(), "webhook-timeout"),
            (
                "webhook_max_attempts = 0".to_owned(),
                "webhook-max-attempts",
            ),
            ("webhook_retry_base = 0".to_owned(), "webhook-retry-base"),
        ] {
            match merge(&[], &file) {
                Err(ConfigError::Invalid { name, .. }) => assert_eq!(name, setting, "{file}"),
                other => panic!("{file}: {other:?}"),
            }
        }
        // An unknown key in a table is refused by name.
        assert!(matches!(
            merge(
                &[],
                &table(&format!("url = \"http://a/\"\n{secret}\nretries = 3"))
            ),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn rejects_bad_settings() {
        let merge = |args: &[&str]| merge(args, "");
        // Each refused by name, for its own reason.
        let refused = |args: &[&str]| match merge(args) {
            Err(ConfigError::Invalid { name, .. }) => name,
            Err(other) => panic!("{args:?}: refused as {other}"),
            Ok(_) => panic!("{args:?} accepted"),
        };
        assert_eq!(refused(&["--tls-cert", "c.pem"]), "tls-cert/tls-key");
        assert_eq!(refused(&["--attempt-lifetime", "3600"]), "attempt-lifetime");
        assert_eq!(
            refused(&["--trusted-proxies", "not-an-ip"]),
            "trusted-proxies"
        );
        assert_eq!(refused(&["--operator-token", "short"]), "operator-token");
        assert_eq!(
            refused(&["--ask-buttons", "a,b,c", "--ask", "q"]),
            "ask-buttons"
        );
        for off_site in [
            "a;//evil.example/",
            "a;https://evil.example/",
            "a;x",
            "a;/\\evil",
        ] {
            assert_eq!(
                refused(&["--ask-buttons", off_site, "--ask", "q"]),
                "ask-buttons",
                "{off_site}"
            );
        }
        let ok = merge(&[
            "--ask",
            "q",
            "--ask-buttons",
            "Yes;/welcome?from=sqrl,Not now",
        ])
        .unwrap();
        assert_eq!(
            ok.ask.unwrap().buttons,
            vec![
                AskButtonConfig::with_url("Yes", "/welcome?from=sqrl"),
                AskButtonConfig::label("Not now")
            ]
        );
        assert!(merge(&["--max-body-bytes", "10"]).is_err());
        assert!(tests::merge(&[], "unknown = 1").is_err());
        let ok = merge(&["--rate-limit-per-second", "0"]).unwrap();
        assert!(ok.rate_limit.is_none());
    }

    #[test]
    fn connection_limits_merge_and_validate() {
        assert_eq!(merge(&[], "").unwrap().limits, ConnectionLimits::default());
        let limits = merge(
            &[
                "--header-read-timeout",
                "5",
                "--max-connections-per-address",
                "8",
            ],
            "header_read_timeout = 7\ntls_handshake_timeout = 3\nmax_connections = 100\n\
             max_event_streams = 10\nmax_event_streams_per_address = 2\n\
             max_event_streams_per_attempt = 1",
        )
        .unwrap()
        .limits;
        assert_eq!(
            limits,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(5),
                tls_handshake_timeout: Duration::from_secs(3),
                max_connections: 100,
                max_connections_per_address: 8,
                max_event_streams: 10,
                max_event_streams_per_address: 2,
                max_event_streams_per_attempt: 1,
            }
        );
        // A small total lowers the default per-address cap with it.
        let small = merge(&["--max-connections", "10"], "").unwrap().limits;
        assert_eq!(small.max_connections_per_address, 10);
        for bad in [
            &["--header-read-timeout", "0"][..],
            &["--header-read-timeout", "301"],
            &["--tls-handshake-timeout", "0"],
            &["--max-connections", "0"],
            &[
                "--max-connections",
                "10",
                "--max-connections-per-address",
                "11",
            ],
            &["--max-connections-per-address", "0"],
            &["--max-event-streams", "0"],
            &["--max-event-streams-per-address", "0"],
            &[
                "--max-event-streams",
                "5",
                "--max-event-streams-per-address",
                "6",
            ],
            &["--max-event-streams-per-attempt", "0"],
            &["--max-event-streams-per-attempt", "17"],
        ] {
            assert!(merge(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mounting_settings_are_checked() {
        let refused = |args: &[&str]| match merge(args, "") {
            Err(ConfigError::Invalid { name, .. }) => name,
            Err(other) => panic!("{args:?}: refused as {other}"),
            Ok(_) => panic!("{args:?} accepted"),
        };
        let ok = |args: &[&str]| merge(args, "").unwrap();
        assert_eq!(ok(&[]).path_prefix, "");
        assert_eq!(ok(&["--path-prefix", "/"]).path_prefix, "");
        assert_eq!(ok(&["--path-prefix", "/auth/"]).path_prefix, "/auth");
        assert_eq!(ok(&["--path-prefix", "/a/b-c"]).path_prefix, "/a/b-c");
        for bad in [
            "auth", "/a//b", "/../x", "/a/./b", "/a b", "/a?b", "/a%2f", "/\\x",
        ] {
            assert_eq!(refused(&["--path-prefix", bad]), "path-prefix", "{bad}");
        }

        fn with_domain(domain: &str) -> [&str; 4] {
            [
                "--public-origin",
                "https://login.example.com",
                "--cookie-domain",
                domain,
            ]
        }
        assert_eq!(
            ok(&with_domain(".Example.com")).cookie_domain.as_deref(),
            Some("example.com")
        );
        assert_eq!(
            ok(&with_domain("login.example.com"))
                .cookie_domain
                .as_deref(),
            Some("login.example.com")
        );
        for bad in [
            ".other.com",
            "ample.com",
            ".com",
            "example.com.",
            "*.example.com",
        ] {
            assert_eq!(refused(&with_domain(bad)), "cookie-domain", "{bad}");
        }
        assert_eq!(
            refused(&["--cookie-domain", ".example.com"]),
            "cookie-domain",
            "no origin to check it with"
        );

        assert_eq!(
            refused(&["--allowed-return-domains", "a.com,*.b.com"]),
            "allowed-return-domains"
        );
        assert_eq!(
            ok(&[]).forward_auth_user_header,
            axum::http::HeaderName::from_static("remote-user")
        );
        assert_eq!(
            ok(&["--forward-auth-user-header", "X-Auth-User"]).forward_auth_user_header,
            axum::http::HeaderName::from_static("x-auth-user")
        );
        for bad in ["Set-Cookie", "Bad Header", ""] {
            assert_eq!(
                refused(&["--forward-auth-user-header", bad]),
                "forward-auth-user-header",
                "{bad}"
            );
        }
        let file = merge(
            &[],
            "path_prefix = \"/auth\"\nallowed_return_domains = [\".example.com\"]\n\
             forward_auth_user_header = \"X-User\"",
        )
        .unwrap();
        assert_eq!(file.path_prefix, "/auth");
        assert_eq!(file.forward_auth_user_header.as_str(), "x-user");
    }

    #[test]
    fn sin_follows_the_protocol_rules_at_start_up() {
        for bad in ["a b", "caf\u{e9}", "tab\there", &"x".repeat(65)] {
            match merge(&["--sin", bad], "") {
                Err(ConfigError::Invalid { name: "sin", .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let error = merge(&["--sin", "a b"], "").unwrap_err().to_string();
        assert!(error.starts_with("invalid setting sin: "), "{error}");
        assert_eq!(
            merge(&["--sin", "7"], "").unwrap().sin.as_deref(),
            Some("7")
        );
        // An empty one asks for none.
        assert_eq!(merge(&["--sin", ""], "").unwrap().sin, None);
        // The same rule for a file's value.
        assert!(merge(&[], "sin = \"a b\"").is_err());
    }

    #[test]
    fn ask_buttons_follow_the_protocol_rules_at_start_up() {
        for bad in ["Caf\u{e9};/caf\u{e9}", "Go;/a b"] {
            match merge(&["--ask", "q", "--ask-buttons", bad], "") {
                Err(ConfigError::Invalid {
                    name: "ask-buttons",
                    ..
                }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let config = merge(&["--ask", "q", "--ask-buttons", "Yes;/welcome,No"], "").unwrap();
        let policy = config.policy().unwrap();
        let ask = policy.ask().unwrap();
        assert_eq!(ask.buttons().len(), 2);
        assert_eq!(ask.buttons()[0].url(), Some("/welcome"));
    }

    #[test]
    fn nut_rotation_and_login_token_lifetime_are_settings() {
        let config = merge(
            &["--nut-rotation", "20"],
            "login_token_lifetime = 90\nnut_rotation = 30",
        )
        .unwrap();
        assert_eq!(config.nut_rotation, Duration::from_secs(20));
        assert_eq!(config.login_token_lifetime, Duration::from_secs(90));
        // A page replaces its nut before the nut expires.
        let short = merge(&["--nut-lifetime", "10"], "").unwrap();
        assert_eq!(short.nut_rotation, Duration::from_secs(10));
        for bad in [
            &["--nut-rotation", "0"][..],
            &["--nut-rotation", "61"],
            &["--login-token-lifetime", "0"],
            &["--login-token-lifetime", "601"],
        ] {
            assert!(merge(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branding_links_are_checked() {
        let config = merge(
            &["--site-name", "  Example Shop "],
            "logo_url = \"/logo.svg\"\nhelp_url = \"https://help.example.com/sqrl\"",
        )
        .unwrap();
        assert_eq!(config.site_name.as_deref(), Some("Example Shop"));
        assert_eq!(config.logo_url.as_deref(), Some("/logo.svg"));
        assert_eq!(config.help_url, "https://help.example.com/sqrl");
        let defaults = merge(&[], "").unwrap();
        assert_eq!(defaults.site_name, None);
        assert_eq!(defaults.logo_url, None);
        assert_eq!(defaults.help_url, settings::DEFAULT_HELP_URL);
        assert!(merge(&["--logo-url", "https://cdn.example.com/l.png"], "").is_ok());
        assert!(merge(&["--help-url", "http://intranet.example/sqrl"], "").is_ok());
        for (flag, bad) in [
            ("--logo-url", "javascript:alert(1)"),
            ("--logo-url", "//evil.example/l.png"),
            ("--logo-url", "http://cdn.example.com/l.png"),
            ("--logo-url", "/a\"onerror=\"x"),
            ("--logo-url", "https://user:pw@cdn.example.com/l.png"),
            ("--help-url", "/local/help"),
            ("--help-url", "data:text/html,hi"),
            ("--site-name", "tab\there"),
        ] {
            match merge(&[flag, bad], "") {
                Err(ConfigError::Invalid { name, .. }) => {
                    assert_eq!(format!("--{name}"), flag, "{bad}");
                }
                other => panic!("{flag} {bad}: {other:?}"),
            }
        }
    }
}
