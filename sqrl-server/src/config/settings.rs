//! Every setting, declared once: its flag (`--bind`), its environment
//! variable (`SQRL_BIND`), its TOML key (`bind`) and its default all come
//! from one field of [`Settings`].
//!
//! ```text
//! flag  >  environment variable  >  TOML file  >  built-in default
//! ```
//!
//! clap reads flags and the environment and says where each value came from;
//! a value clap only defaulted is replaced by the file's. The merge goes
//! through serde, so a TOML value is checked against the same field type as
//! a flag, and a key that names no setting is refused.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueHint};
use serde::{Deserialize, Serialize};

use super::{ConfigError, OperatorToken};
use crate::store::Database;

/// The settings of the service as given: flags, `SQRL_*` environment
/// variables and the TOML file named by `--config` (same names, `_` for `-`).
/// [`super::Config::from_settings`] validates them.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(name = "sqrl-server", version, about = "The SQRL login service")]
#[command(args_conflicts_with_subcommands = true)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Instead of serving, a task for the operator. Its flags follow it;
    /// the service's flags do not apply (and are refused before it).
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<crate::oidc::register::Command>,

    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "SQRL_CONFIG", value_hint = ValueHint::FilePath)]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on.
    #[arg(long, env = "SQRL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The database: a SQLite file, created if missing, or a PostgreSQL URL
    /// (`postgres://user@host/dbname`) shared by several instances.
    #[arg(long, env = "SQRL_DB", default_value = "sqrl.db", value_hint = ValueHint::FilePath,
          value_parser = parse_database)]
    #[serde(serialize_with = "serialize_database")]
    pub db: Database,

    /// The origin visitors use, e.g. `https://login.example.com`. `http://`
    /// makes the service hand out `qrl://` links, `https://` `sqrl://` links.
    /// [default: http://BIND, or https://BIND with --tls-cert]
    #[arg(long, env = "SQRL_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,

    /// PEM certificate chain for built-in TLS (needs --tls-key) [default: no TLS].
    #[arg(long, env = "SQRL_TLS_CERT", value_hint = ValueHint::FilePath)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for built-in TLS (needs --tls-cert).
    #[arg(long, env = "SQRL_TLS_KEY", value_hint = ValueHint::FilePath)]
    pub tls_key: Option<PathBuf>,

    /// Reverse proxies (IPs or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` is believed. Nobody else's is [default: none].
    #[arg(long, env = "SQRL_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default)]
    pub trusted_proxies: Vec<String>,

    /// Sustained requests per second allowed from one client address (IPv6:
    /// one /64); 0 turns the rate limit off.
    #[arg(long, env = "SQRL_RATE_LIMIT_PER_SECOND", default_value_t = 20.0)]
    pub rate_limit_per_second: f64,

    /// Burst of requests one client address may send at once. Keep it generous:
    /// an office behind one NAT address is many people.
    #[arg(long, env = "SQRL_RATE_LIMIT_BURST", default_value_t = 300)]
    pub rate_limit_burst: u32,

    /// Seconds a client has to send a whole request header, counted from
    /// when the connection opens or goes idle after a response (so it is
    /// also the keep-alive idle timeout).
    #[arg(long, env = "SQRL_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,

    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, env = "SQRL_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub tls_handshake_timeout: u64,

    /// Open connections allowed in all; keep it below the file-descriptor
    /// limit (`ulimit -n`).
    #[arg(long, env = "SQRL_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Open connections allowed from one client address (IPv6: one /64).
    /// Trusted proxies are exempt (they carry many users) [default: 256, or
    /// --max-connections if that is smaller].
    #[arg(long, env = "SQRL_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,

    /// Open login event streams allowed in all.
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS", default_value_t = 1024)]
    pub max_event_streams: usize,

    /// Open login event streams allowed from one client address (IPv6: one
    /// /64) [default: 64, or --max-event-streams if that is smaller].
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS_PER_ADDRESS")]
    pub max_event_streams_per_address: Option<usize>,

    /// Open event streams of one login attempt; another one closes the oldest.
    #[arg(long, env = "SQRL_MAX_EVENT_STREAMS_PER_ATTEMPT", default_value_t = 3)]
    pub max_event_streams_per_attempt: usize,

    /// Seconds a nut shown on a login page stays valid (the page rotates it sooner).
    #[arg(long, env = "SQRL_NUT_LIFETIME", default_value_t = 120)]
    pub nut_lifetime: u64,

    /// Seconds an open login page shows the same nut before it fetches a
    /// fresh one (1 to 60, and never longer than --nut-lifetime).
    #[arg(long, env = "SQRL_NUT_ROTATION", default_value_t = 50)]
    pub nut_rotation: u64,

    /// Seconds a whole login attempt may take, from page load to collected
    /// session (30 to 600).
    #[arg(long, env = "SQRL_ATTEMPT_LIFETIME", default_value_t = 600)]
    pub attempt_lifetime: u64,

    /// Logins in flight (login pages and `/nut.sqrl` nuts not yet expired)
    /// the server keeps at once; beyond it a new one gets a 503 until some
    /// expire. SQLite keeps them in memory, about 1.1 KB each.
    #[arg(long, env = "SQRL_MAX_LOGINS_IN_FLIGHT", default_value_t = 500_000)]
    pub max_logins_in_flight: usize,

    /// Seconds a single-use login link (CPS `url=`, the collect link) stays
    /// valid (1 to 600).
    #[arg(long, env = "SQRL_LOGIN_TOKEN_LIFETIME", default_value_t = 60)]
    pub login_token_lifetime: u64,

    /// Seconds a browser session lasts at most, however active (7 days).
    #[arg(long, env = "SQRL_SESSION_LIFETIME", default_value_t = 7 * 24 * 3600)]
    pub session_lifetime: u64,

    /// Seconds a browser session survives unused (24 hours; at least 300).
    #[arg(long, env = "SQRL_SESSION_IDLE_TIMEOUT", default_value_t = 24 * 3600)]
    pub session_idle_timeout: u64,

    /// Whether replacing an identity (rekey) ends the account's sessions.
    /// Disabling SQRL login always does.
    #[arg(long, env = "SQRL_REVOKE_SESSIONS_ON_REKEY", default_value_t = true,
          action = ArgAction::Set)]
    pub revoke_sessions_on_rekey: bool,

    /// `max-age` in seconds of the Strict-Transport-Security header sent when
    /// the public origin is https:// (one year; 0 sends none).
    #[arg(long, env = "SQRL_HSTS_MAX_AGE", default_value_t = 365 * 24 * 3600)]
    pub hsts_max_age: u64,

    /// Bearer token of the operator API (`/api/...`) and `/metrics`, at least
    /// 16 characters [default: none, which turns both off].
    #[arg(long, env = "SQRL_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<OperatorToken>,

    /// A question shown by the identity client on every login (`ask`), in
    /// plain text [default: none].
    #[arg(long, env = "SQRL_ASK")]
    pub ask: Option<String>,

    /// Buttons for --ask (up to two, comma-separated), each `label` or
    /// `label;/path`: the browser of a user who chooses a button with a path
    /// goes there once logged in (SPEC 3 `ask`).
    #[arg(long, env = "SQRL_ASK_BUTTONS", value_delimiter = ',')]
    #[serde(default)]
    pub ask_buttons: Vec<String>,

    /// A `sin` (secret index) to request with every login: printable ASCII,
    /// no spaces, at most 64 characters [default: none].
    #[arg(long, env = "SQRL_SIN")]
    pub sin: Option<String>,

    /// Mount every route under this path (`/auth`), for a reverse proxy
    /// that hands the service one path of a site it shares with other apps
    /// [default: none, the service owns the whole host].
    #[arg(long, env = "SQRL_PATH_PREFIX")]
    pub path_prefix: Option<String>,

    /// Give the session cookie this `Domain` (`.example.com`), so that every
    /// app under it behind the same proxy shares one login. The public
    /// origin's host must lie in it [default: none, a host-only cookie].
    #[arg(long, env = "SQRL_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,

    /// Hosts, besides the service's own, that a login may return the browser
    /// to (`rd=`), comma-separated: `app.example.com` is that host, a leading
    /// dot (`.example.com`) any subdomain of it [default: none].
    #[arg(long, env = "SQRL_ALLOWED_RETURN_DOMAINS", value_delimiter = ',')]
    #[serde(default)]
    pub allowed_return_domains: Vec<String>,

    /// The response header of `/forward-auth` that names the signed-in user
    /// (an opaque id that stays the same for the account) to the proxy.
    #[arg(
        long,
        env = "SQRL_FORWARD_AUTH_USER_HEADER",
        default_value = "Remote-User"
    )]
    pub forward_auth_user_header: String,

    /// The site's name on its pages ("Sign in · Example Shop") [default: the
    /// public origin's host].
    #[arg(long, env = "SQRL_SITE_NAME")]
    pub site_name: Option<String>,

    /// The site's logo shown above every page: an `https://` URL or a path on
    /// this host (`/logo.svg`) [default: none].
    #[arg(long, env = "SQRL_LOGO_URL")]
    pub logo_url: Option<String>,

    /// Where the pages send a visitor who asks "What is SQRL? Get an app"
    /// (`https://` or `http://`).
    #[arg(long, env = "SQRL_HELP_URL", default_value = DEFAULT_HELP_URL)]
    pub help_url: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SQRL_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a request may take until its reply starts (the live event
    /// stream's starts at once, then lasts).
    #[arg(long, env = "SQRL_REQUEST_TIMEOUT", default_value_t = 15)]
    pub request_timeout: u64,

    /// Number of database connections (SQLite: readers plus the writer,
    /// and one more for WAL checkpoints; PostgreSQL: the pool's size), 1 to
    /// 64.
    #[arg(long, env = "SQRL_DB_CONNECTIONS", default_value_t = 4)]
    pub db_connections: usize,

    /// Log lines as `text` for a person or `json` (one object per line) for
    /// a log collector. `SQRL_LOG` picks what is logged, e.g. `info` or
    /// `info,sqrl_server::access=off` (no access log).
    #[arg(long, env = "SQRL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds a webhook endpoint has to answer a login event (1 to 60).
    #[arg(long, env = "SQRL_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub webhook_timeout: u64,

    /// Attempts to deliver a login event before it is given up (1 to 50).
    #[arg(long, env = "SQRL_WEBHOOK_MAX_ATTEMPTS", default_value_t = 15)]
    pub webhook_max_attempts: u32,

    /// Seconds before the second attempt of a failed webhook delivery; each
    /// later wait doubles (up to an hour), less a random part of up to half.
    #[arg(long, env = "SQRL_WEBHOOK_RETRY_BASE", default_value_t = 5)]
    pub webhook_retry_base: u64,

    /// Webhook endpoints for login events: `[[webhooks]]` tables in the
    /// TOML file only (`url`, `secret` or `secret_file`, optional `events`).
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookSettings>,

    /// The OpenID Connect provider: an `[oidc]` table with
    /// `[[oidc.clients]]` in the TOML file only.
    #[arg(skip)]
    #[serde(default)]
    pub oidc: crate::oidc::clients::OidcSettings,
}

/// One `[[webhooks]]` table of the TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where login events are POSTed (`http://` or `https://`).
    pub url: String,
    /// The signing secret, `whsec_` and base64 (give this or `secret_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<WebhookSecret>,
    /// A file holding the signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// The event types to send [default: all].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

/// A webhook signing secret as written in the file: never printed, wiped
/// on drop. It serializes only so that the file can be merged.
#[derive(Clone, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// What the pages' help link opens by default: the protocol's home, which
/// explains SQRL and lists apps for every platform.
pub const DEFAULT_HELP_URL: &str = "https://www.grc.com/sqrl/sqrl.htm";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// Reads flags (`args`, the program name first) and the environment,
    /// then the file `--config` names, if any.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Self::command()
            .try_get_matches_from(args)
            .map_err(ConfigError::Args)?;
        let settings = Self::from_arg_matches(&matches).map_err(ConfigError::Args)?;
        match settings.config.clone() {
            // A command needs no file: one that would not load must not
            // stop the operator registering a client to put in it.
            Some(path) if settings.command.is_none() => {
                let file = read_file(&path)?;
                settings.under_file(file, |key| matches.value_source(key), &path)
            }
            _ => Ok(settings),
        }
    }

    /// Every built-in default, whatever the environment says.
    pub fn defaults() -> Self {
        let command = Self::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["sqrl-server"]);
        match Self::from_arg_matches(&matches) {
            Ok(settings) => settings,
            // Every field without a default is optional, so no flag is needed.
            Err(error) => error.exit(),
        }
    }

    /// Flags (never the environment of the test run) over a TOML file.
    #[cfg(test)]
    pub(super) fn for_test(args: &[&str], file: &str) -> Result<Self, ConfigError> {
        let matches = Self::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(std::iter::once("sqrl-server").chain(args.iter().copied()))
            .map_err(ConfigError::Args)?;
        let settings = Self::from_arg_matches(&matches).map_err(ConfigError::Args)?;
        let file = toml::from_str(file).map_err(|source| ConfigError::Parse {
            path: "test.toml".into(),
            source: Box::new(source),
        })?;
        settings.under_file(
            file,
            |key| matches.value_source(key),
            Path::new("test.toml"),
        )
    }

    /// These settings, with each value that clap only defaulted replaced by
    /// `file`'s value for the same key.
    fn under_file(
        self,
        file: toml::Table,
        source: impl Fn(&str) -> Option<ValueSource>,
        path: &Path,
    ) -> Result<Self, ConfigError> {
        let parse_error = |source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let mut merged = toml::Table::try_from(&self).map_err(|error| ConfigError::Invalid {
            name: "config",
            reason: error.to_string(),
        })?;
        let known: Vec<String> = Self::command()
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .filter(|id| id != "config")
            .collect();
        for (key, value) in file {
            // An unknown key is left for serde to refuse by name.
            let given = known.contains(&key)
                && matches!(
                    source(&key),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                );
            if !given {
                merged.insert(key, value);
            }
        }
        let mut settings: Self = merged.try_into().map_err(parse_error)?;
        settings.config = self.config;
        Ok(settings)
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Reads `--db` (any text names a SQLite file unless it is a PostgreSQL URL).
fn parse_database(text: &str) -> Result<Database, String> {
    if text.is_empty() {
        return Err("empty database name".to_owned());
    }
    Ok(Database::parse(text))
}

/// Writes the database back as the text `--db` takes (for the file merge).
fn serialize_database<S: serde::Serializer>(db: &Database, out: S) -> Result<S::Ok, S::Error> {
    match db {
        Database::Sqlite(path) => path.serialize(out),
        Database::Postgres(url) => url.serialize(out),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn with_file(args: &[&str], file: &str) -> Result<Settings, ConfigError> {
        Settings::for_test(args, file)
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let settings = with_file(
            &["--db", "flag.db", "--max-connections", "4096"],
            "db = \"file.db\"\nbind = \"0.0.0.0:9000\"\nmax_connections = 7\n\
             trusted_proxies = [\"10.0.0.0/8\"]\nask_buttons = [\"Yes, please;/x\"]",
        )
        .unwrap();
        assert_eq!(settings.db, Database::Sqlite("flag.db".into()));
        assert_eq!(settings.bind, "0.0.0.0:9000".parse().unwrap());
        // Given as a flag, even with the default's value.
        assert_eq!(settings.max_connections, 4096);
        assert_eq!(settings.trusted_proxies, ["10.0.0.0/8"]);
        // An array element is one value: its comma does not split it.
        assert_eq!(settings.ask_buttons, ["Yes, please;/x"]);
        // Untouched settings keep their defaults.
        assert_eq!(settings.nut_rotation, Settings::defaults().nut_rotation);
    }

    #[test]
    fn the_file_is_checked_against_the_field_types_and_names() {
        for bad in [
            "unknown = 1",
            "config = \"other.toml\"",
            "max_connections = \"many\"",
            "bind = \"not an address\"",
            "db = \"\"",
        ] {
            match with_file(&[], bad) {
                Err(ConfigError::Parse { .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        let postgres = with_file(&[], "db = \"postgres://u@h/d\"").unwrap();
        assert_eq!(postgres.db, Database::Postgres("postgres://u@h/d".into()));
    }

    #[test]
    fn help_shows_every_default() {
        // Words, not layout: clap wraps lines to the terminal's width.
        let help = Settings::command()
            .render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut missing = Vec::new();
        for arg in Settings::command().get_arguments() {
            let id = arg.get_id().as_str();
            let documented = !arg.get_default_values().is_empty()
                || arg
                    .get_long_help()
                    .or(arg.get_help())
                    .is_some_and(|help| help.to_string().contains("[default: "))
                || matches!(id, "config" | "tls_key" | "ask_buttons");
            if !documented {
                missing.push(id.to_owned());
            }
        }
        assert!(missing.is_empty(), "no default shown for {missing:?}");
        assert!(help.contains("[default: 127.0.0.1:8080]"), "{help}");
        assert!(help.contains("--nut-rotation"));
        assert!(help.contains("--login-token-lifetime"));
    }
}
