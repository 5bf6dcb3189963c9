//! Configuration: command-line flags, `SQRL_*` environment variables and an
//! optional TOML file, merged in that order of precedence into one validated
//! [`Config`].
//!
//! ```text
//! flag  >  environment variable  >  TOML file  >  built-in default
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueHint};
use serde::Deserialize;

use crate::net::IpNet;
pub use crate::store::Database;

/// Reads `--db` (any text names a SQLite file unless it is a PostgreSQL URL).
fn parse_database(text: &str) -> Result<Database, String> {
    if text.is_empty() {
        return Err("empty database name".to_owned());
    }
    Ok(Database::parse(text))
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
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

/// Command-line flags. Every flag can also come from an `SQRL_*` environment
/// variable and from the TOML file named by `--config` (same names, `_` for `-`).
#[derive(Debug, Default, Parser)]
#[command(name = "sqrl-server", version, about = "The SQRL login service")]
pub struct Cli {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "SQRL_CONFIG", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SQRL_BIND")]
    pub bind: Option<SocketAddr>,

    /// The database: a SQLite file, created if missing [default: ./sqrl.db],
    /// or a PostgreSQL URL (`postgres://user@host/dbname`) shared by several
    /// instances.
    #[arg(long, env = "SQRL_DB", value_hint = ValueHint::FilePath, value_parser = parse_database)]
    pub db: Option<Database>,

    /// The origin visitors use, e.g. `https://login.example.com`. `http://`
    /// makes the service hand out `qrl://` links, `https://` `sqrl://` links.
    /// (Default: `http://<bind>`, or `https://<bind>` with --tls-cert.)
    #[arg(long, env = "SQRL_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,

    /// PEM certificate chain for built-in TLS (needs --tls-key).
    #[arg(long, env = "SQRL_TLS_CERT", value_hint = ValueHint::FilePath)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for built-in TLS (needs --tls-cert).
    #[arg(long, env = "SQRL_TLS_KEY", value_hint = ValueHint::FilePath)]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies (IPs or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` is believed. Nobody else's is.
    #[arg(long, env = "SQRL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,

    /// Sustained requests per second allowed from one client address (IPv6: one /64).
    #[arg(long, env = "SQRL_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<f64>,

    /// Burst of requests one client address may send at once. Keep it generous:
    /// an office behind one NAT address is many people.
    #[arg(long, env = "SQRL_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Seconds a client has to send a whole request header, counted from
    /// when the connection opens or goes idle after a response (so it is
    /// also the keep-alive idle timeout) [default: 10].
    #[arg(long, env = "SQRL_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,

    /// Seconds a client has to complete the TLS handshake [default: 10].
    #[arg(long, env = "SQRL_TLS_HANDSHAKE_TIMEOUT")]
    pub tls_handshake_timeout: Option<u64>,

    /// Open connections allowed in all; keep it below the file-descriptor
    /// limit (`ulimit -n`) [default: 4096].
    #[arg(long, env = "SQRL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open connections allowed from one client address (IPv6: one /64).
    /// Trusted proxies are exempt (they carry many users) [default: 256].
    #[arg(long, env = "SQRL_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,

    /// Open login event streams allowed in all [default: 1024].
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<usize>,

    /// Open login event streams allowed from one client address (IPv6: one
    /// /64) [default: 64].
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS_PER_ADDRESS")]
    pub max_event_streams_per_address: Option<usize>,

    /// Open event streams of one login attempt; another one closes the
    /// oldest [default: 3].
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS_PER_ATTEMPT")]
    pub max_event_streams_per_attempt: Option<usize>,

    /// Seconds a nut shown on a login page stays valid (the page rotates it sooner).
    #[arg(long, env = "SQRL_NUT_LIFETIME")]
    pub nut_lifetime: Option<u64>,

    /// Seconds a whole login attempt may take, from page load to collected session.
    #[arg(long, env = "SQRL_ATTEMPT_LIFETIME")]
    pub attempt_lifetime: Option<u64>,

    /// Seconds a browser session lasts at most, however active [default: 7 days].
    #[arg(long, env = "SQRL_SESSION_LIFETIME")]
    pub session_lifetime: Option<u64>,

    /// Seconds a browser session survives unused [default: 24 hours].
    #[arg(long, env = "SQRL_SESSION_IDLE_TIMEOUT")]
    pub session_idle_timeout: Option<u64>,

    /// Whether replacing an identity (rekey) ends the account's sessions
    /// [default: true]. Disabling SQRL login always does.
    #[arg(long, env = "SQRL_REVOKE_SESSIONS_ON_REKEY")]
    pub revoke_sessions_on_rekey: Option<bool>,

    /// `max-age` of the Strict-Transport-Security header sent when the public
    /// origin is https:// (0 sends none) [default: one year].
    #[arg(long, env = "SQRL_HSTS_MAX_AGE")]
    pub hsts_max_age: Option<u64>,

    /// Bearer token of the operator API (`/api/...`); the API is off without it.
    #[arg(long, env = "SQRL_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<OperatorToken>,

    /// A question shown by the identity client on every login (`ask`), in plain text.
    #[arg(long, env = "SQRL_ASK")]
    pub ask: Option<String>,

    /// Buttons for --ask (up to two, comma-separated), each `label` or
    /// `label;/path`: the browser of a user who chooses a button with a path
    /// goes there once logged in (SPEC 3 `ask`).
    #[arg(long, env = "SQRL_ASK_BUTTONS", value_delimiter = ',')]
    pub ask_buttons: Option<Vec<String>>,

    /// A `sin` (secret index) to request with every login.
    #[arg(long, env = "SQRL_SIN")]
    pub sin: Option<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SQRL_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Seconds before a request (other than the live event stream) times out.
    #[arg(long, env = "SQRL_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,

    /// Number of database connections (SQLite: readers plus the writer;
    /// PostgreSQL: the pool's size).
    #[arg(long, env = "SQRL_DB_CONNECTIONS")]
    pub db_connections: Option<usize>,
}

/// The TOML file: the same settings as [`Cli`], all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Cli::bind`].
    pub bind: Option<SocketAddr>,
    /// See [`Cli::db`].
    pub db: Option<Database>,
    /// See [`Cli::public_origin`].
    pub public_origin: Option<String>,
    /// See [`Cli::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`Cli::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`Cli::trusted_proxies`].
    pub trusted_proxies: Option<Vec<String>>,
    /// See [`Cli::rate_limit_per_second`].
    pub rate_limit_per_second: Option<f64>,
    /// See [`Cli::rate_limit_burst`].
    pub rate_limit_burst: Option<u32>,
    /// See [`Cli::header_read_timeout`].
    pub header_read_timeout: Option<u64>,
    /// See [`Cli::tls_handshake_timeout`].
    pub tls_handshake_timeout: Option<u64>,
    /// See [`Cli::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Cli::max_connections_per_address`].
    pub max_connections_per_address: Option<usize>,
    /// See [`Cli::max_event_streams`].
    pub max_event_streams: Option<usize>,
    /// See [`Cli::max_event_streams_per_address`].
    pub max_event_streams_per_address: Option<usize>,
    /// See [`Cli::max_event_streams_per_attempt`].
    pub max_event_streams_per_attempt: Option<usize>,
    /// See [`Cli::nut_lifetime`].
    pub nut_lifetime: Option<u64>,
    /// See [`Cli::attempt_lifetime`].
    pub attempt_lifetime: Option<u64>,
    /// See [`Cli::session_lifetime`].
    pub session_lifetime: Option<u64>,
    /// See [`Cli::session_idle_timeout`].
    pub session_idle_timeout: Option<u64>,
    /// See [`Cli::revoke_sessions_on_rekey`].
    pub revoke_sessions_on_rekey: Option<bool>,
    /// See [`Cli::hsts_max_age`].
    pub hsts_max_age: Option<u64>,
    /// See [`Cli::operator_token`].
    pub operator_token: Option<OperatorToken>,
    /// See [`Cli::ask`].
    pub ask: Option<String>,
    /// See [`Cli::ask_buttons`].
    pub ask_buttons: Option<Vec<String>>,
    /// See [`Cli::sin`].
    pub sin: Option<String>,
    /// See [`Cli::max_body_bytes`].
    pub max_body_bytes: Option<usize>,
    /// See [`Cli::request_timeout`].
    pub request_timeout: Option<u64>,
    /// See [`Cli::db_connections`].
    pub db_connections: Option<usize>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

/// The operator API's bearer token: never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
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

/// Whether SQRL links use `sqrl://` (HTTPS) or `qrl://` (plain HTTP) (SPEC 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicScheme {
    /// `http://` origin, `qrl://` links.
    Http,
    /// `https://` origin, `sqrl://` links.
    Https,
}

/// The origin visitors and identity clients reach the service at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: PublicScheme,
    /// `host[:port]`, lower-cased, as it appears after `scheme://`.
    authority: String,
}

impl PublicOrigin {
    /// Parses `http[s]://host[:port]` (a trailing `/` is tolerated; no path,
    /// query, userinfo or fragment).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim_end_matches('/');
        let (scheme, authority) = if let Some(rest) = text.strip_prefix("https://") {
            (PublicScheme::Https, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (PublicScheme::Http, rest)
        } else {
            return Err(invalid(
                "public-origin",
                "must start with http:// or https://",
            ));
        };
        let valid = !authority.is_empty()
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !valid {
            return Err(invalid(
                "public-origin",
                "must be scheme://host[:port] with no path, query or userinfo",
            ));
        }
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
        })
    }

    /// The origin for a listener address when none is configured.
    pub fn for_addr(addr: SocketAddr, scheme: PublicScheme) -> Self {
        Self {
            scheme,
            authority: addr.to_string(),
        }
    }

    /// HTTP or HTTPS.
    pub fn scheme(&self) -> PublicScheme {
        self.scheme
    }

    /// `http://host[:port]` or `https://host[:port]`.
    pub fn http_origin(&self) -> String {
        match self.scheme {
            PublicScheme::Http => format!("http://{}", self.authority),
            PublicScheme::Https => format!("https://{}", self.authority),
        }
    }

    /// `qrl://host[:port]` or `sqrl://host[:port]`.
    pub fn sqrl_origin(&self) -> String {
        match self.scheme {
            PublicScheme::Http => format!("qrl://{}", self.authority),
            PublicScheme::Https => format!("sqrl://{}", self.authority),
        }
    }

    /// Whether cookies get the `Secure` attribute.
    pub fn is_secure(&self) -> bool {
        self.scheme == PublicScheme::Https
    }

    /// Whether a request's `Host` (or `:authority`) names this origin: the
    /// same host, case-insensitively, and the same port, where an absent port
    /// is the scheme's default.
    pub fn matches_host(&self, host: &str) -> bool {
        let default_port = match self.scheme {
            PublicScheme::Http => "80",
            PublicScheme::Https => "443",
        };
        match (
            split_authority(&self.authority, default_port),
            split_authority(host, default_port),
        ) {
            (Some((ours, our_port)), Some((theirs, their_port))) => {
                ours.eq_ignore_ascii_case(theirs) && our_port == their_port
            }
            _ => false,
        }
    }
}

/// `host[:port]` or `[v6]:port` into host and port (the default when absent).
/// `None` for a malformed authority.
fn split_authority<'a>(authority: &'a str, default_port: &'a str) -> Option<(&'a str, &'a str)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // Brackets hold an IPv6 address and nothing else.
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.contains(['[', ']']) {
            return None;
        }
        (host, port)
    };
    let port = port.unwrap_or(default_port);
    let valid = !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    valid.then_some((host, port))
}

/// The `ask` shown by the identity client (SPEC 3, `ask=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskConfig {
    /// The question, plain text.
    pub message: String,
    /// Up to two buttons.
    pub buttons: Vec<AskButtonConfig>,
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
    /// The path must be root-anchored (`/...`, not `//...`) and printable
    /// ASCII: the browser is redirected to it, so it may not lead off-site.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (label, url) = match text.split_once(';') {
            Some((label, url)) => (label.trim(), Some(url.trim())),
            None => (text.trim(), None),
        };
        if label.is_empty() {
            return Err(invalid("ask-buttons", "a button needs a label"));
        }
        if let Some(url) = url {
            let anchored = url.starts_with('/') && !url.starts_with("//");
            if !anchored || !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains('\\') {
                return Err(invalid(
                    "ask-buttons",
                    format!("{url:?} is not a root-anchored path on this site (SPEC 3)"),
                ));
            }
        }
        Ok(Self {
            label: label.to_owned(),
            url: url.map(str::to_owned),
        })
    }
}

/// Per-client-address rate limit (token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
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
        Self {
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 256,
            max_event_streams: 1024,
            max_event_streams_per_address: 64,
            max_event_streams_per_attempt: 3,
        }
    }
}

/// Longest configurable header-read or TLS handshake timeout.
const MAX_CONNECTION_TIMEOUT: u64 = 300;

/// Most event streams one attempt may hold (a page needs one).
const MAX_STREAMS_PER_ATTEMPT: usize = 16;

/// The connection limits of flags (with environment) over a file, validated.
fn connection_limits(cli: &Cli, file: &FileConfig) -> Result<ConnectionLimits, ConfigError> {
    let defaults = ConnectionLimits::default();
    let timeout = |name: &'static str, value: Option<u64>, default: Duration| match value {
        None => Ok(default),
        Some(secs) if (1..=MAX_CONNECTION_TIMEOUT).contains(&secs) => Ok(Duration::from_secs(secs)),
        Some(_) => Err(invalid(
            name,
            format!("must be 1 to {MAX_CONNECTION_TIMEOUT} seconds"),
        )),
    };
    let header_read_timeout = timeout(
        "header-read-timeout",
        cli.header_read_timeout.or(file.header_read_timeout),
        defaults.header_read_timeout,
    )?;
    let tls_handshake_timeout = timeout(
        "tls-handshake-timeout",
        cli.tls_handshake_timeout.or(file.tls_handshake_timeout),
        defaults.tls_handshake_timeout,
    )?;
    let max_connections = cli
        .max_connections
        .or(file.max_connections)
        .unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(invalid("max-connections", "must be at least 1"));
    }
    let max_connections_per_address = cli
        .max_connections_per_address
        .or(file.max_connections_per_address)
        .unwrap_or(defaults.max_connections_per_address.min(max_connections));
    if !(1..=max_connections).contains(&max_connections_per_address) {
        return Err(invalid(
            "max-connections-per-address",
            "must be 1 to max-connections",
        ));
    }
    let max_event_streams = cli
        .max_event_streams
        .or(file.max_event_streams)
        .unwrap_or(defaults.max_event_streams);
    if max_event_streams == 0 {
        return Err(invalid("max-event-streams", "must be at least 1"));
    }
    let max_event_streams_per_address = cli
        .max_event_streams_per_address
        .or(file.max_event_streams_per_address)
        .unwrap_or(
            defaults
                .max_event_streams_per_address
                .min(max_event_streams),
        );
    if !(1..=max_event_streams).contains(&max_event_streams_per_address) {
        return Err(invalid(
            "max-event-streams-per-address",
            "must be 1 to max-event-streams",
        ));
    }
    let max_event_streams_per_attempt = cli
        .max_event_streams_per_attempt
        .or(file.max_event_streams_per_attempt)
        .unwrap_or(defaults.max_event_streams_per_attempt);
    if !(1..=MAX_STREAMS_PER_ATTEMPT).contains(&max_event_streams_per_attempt) {
        return Err(invalid(
            "max-event-streams-per-attempt",
            format!("must be 1 to {MAX_STREAMS_PER_ATTEMPT}"),
        ));
    }
    Ok(ConnectionLimits {
        header_read_timeout,
        tls_handshake_timeout,
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
}

/// Longest a login attempt may live (issue 3: an attempt expires within 10 minutes).
pub const MAX_ATTEMPT_LIFETIME: Duration = Duration::from_secs(600);

/// Shortest idle timeout of a session (its last use is recorded once a minute).
pub const MIN_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a page may show the same nut (issue 3: rotate at least every 60 s).
pub const MAX_NUT_ROTATION: Duration = Duration::from_secs(60);

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: Database::Sqlite(PathBuf::from("sqrl.db")),
            public_origin: None,
            tls: None,
            trusted_proxies: Vec::new(),
            rate_limit: Some(RateLimit {
                per_second: 20.0,
                burst: 300,
            }),
            limits: ConnectionLimits::default(),
            nut_lifetime: Duration::from_secs(120),
            attempt_lifetime: MAX_ATTEMPT_LIFETIME,
            nut_rotation: Duration::from_secs(50),
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            session_idle_timeout: Duration::from_secs(24 * 3600),
            revoke_sessions_on_rekey: true,
            hsts_max_age: Duration::from_secs(365 * 24 * 3600),
            login_token_lifetime: Duration::from_secs(60),
            operator_token: None,
            ask: None,
            sin: None,
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(15),
            db_connections: 4,
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

    /// Merges flags/environment with the TOML file (if any) and validates.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    /// Merges flags (already holding environment values) over a file.
    pub fn merge(cli: Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let limits = connection_limits(&cli, &file)?;
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("tls-cert/tls-key", "give both or neither")),
        };
        let public_origin = cli
            .public_origin
            .or(file.public_origin)
            .map(|text| PublicOrigin::parse(&text))
            .transpose()?;
        if let (Some(origin), Some(_)) = (&public_origin, &tls) {
            if origin.scheme() == PublicScheme::Http {
                return Err(invalid(
                    "public-origin",
                    "built-in TLS is on, so the origin must be https://",
                ));
            }
        }
        let trusted_proxies = cli
            .trusted_proxies
            .or(file.trusted_proxies)
            .unwrap_or_default()
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

        let per_second = cli
            .rate_limit_per_second
            .or(file.rate_limit_per_second)
            .unwrap_or(20.0);
        let burst = cli
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(300);
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

        let attempt_lifetime = secs(cli.attempt_lifetime.or(file.attempt_lifetime))
            .unwrap_or(defaults.attempt_lifetime);
        if attempt_lifetime > MAX_ATTEMPT_LIFETIME || attempt_lifetime < Duration::from_secs(30) {
            return Err(invalid("attempt-lifetime", "must be 30 to 600 seconds"));
        }
        let nut_lifetime =
            secs(cli.nut_lifetime.or(file.nut_lifetime)).unwrap_or(defaults.nut_lifetime);
        if nut_lifetime < Duration::from_secs(1) || nut_lifetime > attempt_lifetime {
            return Err(invalid(
                "nut-lifetime",
                "must be at least 1 second and at most the attempt lifetime",
            ));
        }
        let session_lifetime = secs(cli.session_lifetime.or(file.session_lifetime))
            .unwrap_or(defaults.session_lifetime);
        if session_lifetime < Duration::from_secs(60) {
            return Err(invalid("session-lifetime", "must be at least 60 seconds"));
        }
        let session_idle_timeout = secs(cli.session_idle_timeout.or(file.session_idle_timeout))
            .unwrap_or(defaults.session_idle_timeout)
            .min(session_lifetime);
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

        let operator_token = cli.operator_token.or(file.operator_token);
        if let Some(token) = &operator_token {
            if token.as_str().len() < 16 {
                return Err(invalid("operator-token", "must be at least 16 characters"));
            }
        }
        let ask = match cli.ask.or(file.ask) {
            Some(message) if !message.trim().is_empty() => {
                let buttons = cli
                    .ask_buttons
                    .or(file.ask_buttons)
                    .unwrap_or_default()
                    .iter()
                    .map(|text| AskButtonConfig::parse(text))
                    .collect::<Result<Vec<_>, _>>()?;
                if buttons.len() > 2 {
                    return Err(invalid("ask-buttons", "at most two buttons"));
                }
                Some(AskConfig { message, buttons })
            }
            _ => None,
        };
        let sin = cli.sin.or(file.sin).filter(|sin| !sin.is_empty());
        if let Some(sin) = &sin {
            if sin.chars().any(char::is_control) || sin.len() > 64 {
                return Err(invalid(
                    "sin",
                    "at most 64 characters, no control characters",
                ));
            }
        }
        let max_body_bytes = cli
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(defaults.max_body_bytes);
        if max_body_bytes < sqrl_core::msg::MAX_BODY_LEN {
            return Err(invalid(
                "max-body-bytes",
                format!(
                    "must be at least {} (the largest valid client request)",
                    sqrl_core::msg::MAX_BODY_LEN
                ),
            ));
        }
        let request_timeout =
            secs(cli.request_timeout.or(file.request_timeout)).unwrap_or(defaults.request_timeout);
        let db_connections = cli
            .db_connections
            .or(file.db_connections)
            .unwrap_or(defaults.db_connections);
        if !(1..=64).contains(&db_connections) {
            return Err(invalid("db-connections", "must be 1 to 64"));
        }

        Ok(Self {
            bind: cli.bind.or(file.bind).unwrap_or(defaults.bind),
            db: cli.db.or(file.db).unwrap_or(defaults.db),
            public_origin,
            tls,
            trusted_proxies,
            rate_limit,
            limits,
            nut_lifetime,
            attempt_lifetime,
            nut_rotation: defaults
                .nut_rotation
                .min(nut_lifetime)
                .min(MAX_NUT_ROTATION),
            session_lifetime,
            session_idle_timeout,
            revoke_sessions_on_rekey: cli
                .revoke_sessions_on_rekey
                .or(file.revoke_sessions_on_rekey)
                .unwrap_or(defaults.revoke_sessions_on_rekey),
            hsts_max_age: secs(cli.hsts_max_age.or(file.hsts_max_age))
                .unwrap_or(defaults.hsts_max_age),
            login_token_lifetime: defaults.login_token_lifetime,
            operator_token,
            ask,
            sin,
            max_body_bytes,
            request_timeout,
            db_connections,
        })
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

fn secs(value: Option<u64>) -> Option<Duration> {
    value.map(Duration::from_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn origin_scheme_picks_link_scheme() {
        let http = PublicOrigin::parse("http://Example.COM:8080/").unwrap();
        assert_eq!(http.sqrl_origin(), "qrl://example.com:8080");
        assert_eq!(http.http_origin(), "http://example.com:8080");
        assert!(!http.is_secure());
        let https = PublicOrigin::parse("https://login.example.com").unwrap();
        assert_eq!(https.sqrl_origin(), "sqrl://login.example.com");
        assert!(https.is_secure());
        assert!(PublicOrigin::parse("ftp://x").is_err());
        assert!(PublicOrigin::parse("https://a/b").is_err());
        assert!(PublicOrigin::parse("https://u:p@a").is_err());
    }

    #[test]
    fn host_matches_origin_with_default_ports() {
        let https = PublicOrigin::parse("https://Login.Example.com").unwrap();
        assert!(https.matches_host("login.example.com"));
        assert!(https.matches_host("LOGIN.example.com:443"));
        assert!(!https.matches_host("login.example.com:8443"));
        assert!(!https.matches_host("evil.example"));
        assert!(!https.matches_host("login.example.com.evil.example"));
        assert!(!https.matches_host(""));
        assert!(!https.matches_host("login.example.com:"));
        let http = PublicOrigin::parse("http://127.0.0.1:8080").unwrap();
        assert!(http.matches_host("127.0.0.1:8080"));
        assert!(!http.matches_host("127.0.0.1"));
        assert!(!http.matches_host("localhost:8080"));
        let v6 = PublicOrigin::parse("http://[::1]:8080").unwrap();
        assert!(v6.matches_host("[::1]:8080"));
        assert!(!v6.matches_host("[::1]"));
        assert!(!v6.matches_host("[::1]x8080"));
    }

    #[test]
    fn host_matching_never_panics_and_matches_only_the_origin() {
        // Every string of up to four characters from an alphabet of the
        // characters that matter to the parser.
        let alphabet = ['[', ']', ':', 'a', '1', '.', 'é'];
        let origins = [
            PublicOrigin::parse("http://a:1").unwrap(),
            PublicOrigin::parse("https://a").unwrap(),
            PublicOrigin::parse("http://[::1]:1").unwrap(),
        ];
        let mut hosts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = hosts
                .iter()
                .flat_map(|host| alphabet.iter().map(move |c| format!("{host}{c}")))
                .collect();
            hosts.extend(longer);
        }
        for host in &hosts {
            for origin in &origins {
                let expected: &[&str] = match origin.authority.as_str() {
                    "a:1" => &["a:1"],
                    "a" => &["a"],
                    // "[::1]:1" is longer than four characters.
                    _ => &[],
                };
                assert_eq!(
                    origin.matches_host(host),
                    expected.contains(&host.as_str()),
                    "{host:?} against {origin:?}"
                );
            }
        }
    }

    #[test]
    fn flags_override_file() {
        let cli = Cli::try_parse_from(["sqrl-server", "--db", "flag.db"]).unwrap();
        let file: FileConfig = toml::from_str(
            "db = \"file.db\"\nbind = \"0.0.0.0:9000\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
        )
        .unwrap();
        let config = Config::merge(cli, file).unwrap();
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
        let file: FileConfig = toml::from_str(include_str!("../sqrl-server.example.toml")).unwrap();
        let config = Config::merge(Cli::default(), file).unwrap();
        assert_eq!(
            config.origin_for(config.bind).sqrl_origin(),
            "sqrl://login.example.com"
        );
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn rejects_bad_settings() {
        let merge = |args: &[&str]| {
            let mut all = vec!["sqrl-server"];
            all.extend_from_slice(args);
            Config::merge(Cli::try_parse_from(all).unwrap(), FileConfig::default())
        };
        assert!(merge(&["--tls-cert", "c.pem"]).is_err());
        assert!(merge(&["--attempt-lifetime", "3600"]).is_err());
        assert!(merge(&["--trusted-proxies", "not-an-ip"]).is_err());
        assert!(merge(&["--operator-token", "short"]).is_err());
        assert!(merge(&["--ask-buttons", "a,b,c", "--ask", "q"]).is_err());
        for off_site in [
            "a;//evil.example/",
            "a;https://evil.example/",
            "a;x",
            "a;/\\evil",
        ] {
            assert!(
                merge(&["--ask-buttons", off_site, "--ask", "q"]).is_err(),
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
        assert!(toml::from_str::<FileConfig>("unknown = 1").is_err());
        let ok = merge(&["--rate-limit-per-second", "0"]).unwrap();
        assert!(ok.rate_limit.is_none());
    }

    #[test]
    fn connection_limits_merge_and_validate() {
        let merge = |args: &[&str], file: &str| {
            let mut all = vec!["sqrl-server"];
            all.extend_from_slice(args);
            Config::merge(
                Cli::try_parse_from(all).unwrap(),
                toml::from_str(file).unwrap(),
            )
        };
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
}
