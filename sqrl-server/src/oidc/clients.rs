//! The relying parties the operator registered: `[[oidc.clients]]` tables
//! in the TOML file, checked at start-up, and how a client proves who it is
//! at the token endpoint.
//!
//! A client secret is kept only as its SHA-256: the file may give the secret
//! itself (`client_secret`, at least 32 characters) or only its hash
//! (`client_secret_sha256`). A fast hash is enough because the secret is
//! long and random, not a password a person chose; it is compared in
//! constant time.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use url::Url;

use super::keys::SigningAlg;
use super::sealing::KeyEncryptionKey;

/// The shortest client secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// The `[oidc]` table of the TOML file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The relying parties (`[[oidc.clients]]`); none turns the provider off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientSettings>,
    /// Seconds an access token lives [default: 600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<u64>,
    /// Seconds an ID token is valid [default: 600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_lifetime: Option<u64>,
    /// Seconds a refresh token lives if unused [default: 30 days]; it never
    /// outlives the session it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime: Option<u64>,
    /// Days a signing key signs before the next takes over [default: 30].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation_days: Option<u64>,
    /// A file holding the key (64 hexadecimal digits) that seals the
    /// signing keys in the database [default: stored unsealed].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encryption_key_file: Option<std::path::PathBuf>,
}

/// One `[[oidc.clients]]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// The `client_id`.
    pub client_id: String,
    /// The name the consent screen shows [default: the client id].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The secret (confidential clients; or `client_secret_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretText>,
    /// SHA-256 of the secret, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sha256: Option<String>,
    /// A public client (a single-page or native app): no secret, PKCE required.
    #[serde(default)]
    pub public: bool,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where it is told, by a logout token, that a session it signed in
    /// has ended (OpenID Connect Back-Channel Logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// The scopes it may receive besides `openid` [default: all offered].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// How its ID tokens are signed: `ES256` (the default), `RS256` or `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// `pairwise` (the default) or `public` subject identifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    /// Clients of one sector see the same pairwise `sub` [default: the
    /// client id, so no two clients do].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
}

/// A client secret as written in the file: never printed, wiped on drop.
#[derive(Clone, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct ClientSecretText(String);

impl ClientSecretText {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
}

impl std::fmt::Debug for ClientSecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecretText(<redacted>)")
    }
}

/// SHA-256 of a client secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `secret` hashes to this, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        bool::from(Self::of(secret).0.ct_eq(&self.0))
    }

    /// Lower-case hex, as `client_secret_sha256` takes it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn parse_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// Whose `sub` a client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectType {
    /// A random identifier per account and sector.
    Pairwise {
        /// The sector.
        sector: String,
    },
    /// The account's handle, the same for every client (and `/forward-auth`).
    Public,
}

/// The scopes the provider offers: `openid` (the `sub`) and `sqrl` (the
/// identity's fingerprint, as the account page shows it).
pub const SCOPES: &[&str] = &["openid", "sqrl"];

/// A registered relying party.
#[derive(Debug, Clone)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// What the consent screen calls it.
    pub name: String,
    /// The secret's hash; `None` for a public client.
    pub secret: Option<SecretHash>,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Exact post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Its back-channel logout URI.
    pub backchannel_logout_uri: Option<String>,
    /// Scopes it may get (always including `openid`).
    pub scopes: Vec<String>,
    /// Its subject identifiers.
    pub subject: SubjectType,
    /// How its ID tokens (and logout tokens) are signed.
    pub id_token_alg: SigningAlg,
}

impl Client {
    /// Whether the client has no secret (and must use PKCE).
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }
}

/// The provider's settings, checked.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The clients.
    pub clients: Vec<Client>,
    /// Access token lifetime.
    pub access_token_lifetime: Duration,
    /// ID token lifetime.
    pub id_token_lifetime: Duration,
    /// Refresh token lifetime.
    pub refresh_token_lifetime: Duration,
    /// How long a signing key signs.
    pub key_rotation: Duration,
    /// What seals the signing keys at rest, if configured.
    pub key_encryption_key: Option<KeyEncryptionKey>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            access_token_lifetime: Duration::from_secs(600),
            id_token_lifetime: Duration::from_secs(600),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            key_rotation: Duration::from_secs(30 * 24 * 3600),
            key_encryption_key: None,
        }
    }
}

impl OidcConfig {
    /// Whether the provider is on (it has clients).
    pub fn enabled(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The client `id`, if registered.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|client| client.id == id)
    }

    /// Checks the `[oidc]` table. The error names the setting and why.
    pub fn from_settings(settings: &OidcSettings) -> Result<Self, (&'static str, String)> {
        let defaults = Self::default();
        let lifetime =
            |name: &'static str, value: Option<u64>, default: Duration, max: u64| match value {
                None => Ok(default),
                Some(seconds) if (1..=max).contains(&seconds) => Ok(Duration::from_secs(seconds)),
                Some(_) => Err((name, format!("must be 1 to {max} seconds"))),
            };
        let access_token_lifetime = lifetime(
            "oidc.access_token_lifetime",
            settings.access_token_lifetime,
            defaults.access_token_lifetime,
            24 * 3600,
        )?;
        let id_token_lifetime = lifetime(
            "oidc.id_token_lifetime",
            settings.id_token_lifetime,
            defaults.id_token_lifetime,
            24 * 3600,
        )?;
        let refresh_token_lifetime = lifetime(
            "oidc.refresh_token_lifetime",
            settings.refresh_token_lifetime,
            defaults.refresh_token_lifetime,
            365 * 24 * 3600,
        )?;
        let key_rotation = match settings.key_rotation_days {
            None => defaults.key_rotation,
            Some(days) if (1..=365).contains(&days) => Duration::from_secs(days * 24 * 3600),
            Some(_) => return Err(("oidc.key_rotation_days", "must be 1 to 365".into())),
        };
        let key_encryption_key = settings
            .key_encryption_key_file
            .as_ref()
            .map(|path| {
                let name = "oidc.key_encryption_key_file";
                let text = std::fs::read_to_string(path)
                    .map_err(|error| (name, format!("reading {}: {error}", path.display())))?;
                KeyEncryptionKey::parse(&text)
                    .map_err(|reason| (name, format!("{}: {reason}", path.display())))
            })
            .transpose()?;
        let mut clients: Vec<Client> = Vec::with_capacity(settings.clients.len());
        for table in &settings.clients {
            let client = client(table)?;
            if clients.iter().any(|known| known.id == client.id) {
                return Err((
                    "oidc.clients.client_id",
                    format!("{:?} is registered twice", client.id),
                ));
            }
            clients.push(client);
        }
        Ok(Self {
            clients,
            access_token_lifetime,
            id_token_lifetime,
            refresh_token_lifetime,
            key_rotation,
            key_encryption_key,
        })
    }
}

/// Checks one client table.
fn client(table: &ClientSettings) -> Result<Client, (&'static str, String)> {
    let id = table.client_id.trim();
    let valid_id = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !valid_id {
        return Err((
            "oidc.clients.client_id",
            format!("{id:?}: 1 to 128 letters, digits, '-', '.', '_' or '~'"),
        ));
    }
    let why = |reason: &str| format!("client {id:?}: {reason}");
    let secret = match (
        &table.client_secret,
        &table.client_secret_sha256,
        table.public,
    ) {
        (None, None, true) => None,
        (Some(secret), None, false) => {
            if secret.0.len() < MIN_SECRET_LEN {
                return Err((
                    "oidc.clients.client_secret",
                    why(&format!("at least {MIN_SECRET_LEN} characters")),
                ));
            }
            Some(SecretHash::of(&secret.0))
        }
        (None, Some(hex), false) => Some(SecretHash::parse_hex(hex).ok_or_else(|| {
            (
                "oidc.clients.client_secret_sha256",
                why("64 hexadecimal digits"),
            )
        })?),
        _ => {
            return Err((
                "oidc.clients.client_secret",
                why("give client_secret or client_secret_sha256, or public = true, exactly one"),
            ));
        }
    };
    if table.redirect_uris.is_empty() {
        return Err(("oidc.clients.redirect_uris", why("name at least one")));
    }
    for uri in table
        .redirect_uris
        .iter()
        .chain(&table.post_logout_redirect_uris)
    {
        check_redirect_uri(uri).map_err(|reason| {
            (
                "oidc.clients.redirect_uris",
                why(&format!("{uri:?} {reason}")),
            )
        })?;
    }
    if let Some(uri) = &table.backchannel_logout_uri {
        check_redirect_uri(uri).map_err(|reason| {
            (
                "oidc.clients.backchannel_logout_uri",
                why(&format!("{uri:?} {reason}")),
            )
        })?;
    }
    let mut scopes = vec!["openid".to_owned()];
    match &table.scopes {
        None => scopes.extend(SCOPES.iter().skip(1).map(|s| (*s).to_owned())),
        Some(list) => {
            for scope in list {
                if !SCOPES.contains(&scope.as_str()) {
                    return Err((
                        "oidc.clients.scopes",
                        why(&format!("unknown scope {scope:?} (offered: {SCOPES:?})")),
                    ));
                }
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
    }
    let subject = match table.subject_type.as_deref() {
        None | Some("pairwise") => SubjectType::Pairwise {
            sector: table
                .sector
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| id.to_owned()),
        },
        Some("public") if table.sector.is_none() => SubjectType::Public,
        Some("public") => {
            return Err((
                "oidc.clients.sector",
                why("a sector only applies to pairwise subjects"),
            ));
        }
        Some(other) => {
            return Err((
                "oidc.clients.subject_type",
                why(&format!("{other:?}: pairwise or public")),
            ));
        }
    };
    let id_token_alg = match table.id_token_signed_response_alg.as_deref() {
        None => SigningAlg::Es256,
        Some(name) => SigningAlg::parse(name).ok_or_else(|| {
            (
                "oidc.clients.id_token_signed_response_alg",
                why(&format!("{name:?}: ES256, RS256 or EdDSA")),
            )
        })?,
    };
    let name = table
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(id);
    if name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err((
            "oidc.clients.name",
            why("at most 80 characters, no control characters"),
        ));
    }
    Ok(Client {
        id: id.to_owned(),
        name: name.to_owned(),
        secret,
        redirect_uris: table.redirect_uris.clone(),
        post_logout_redirect_uris: table.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: table.backchannel_logout_uri.clone(),
        scopes,
        subject,
        id_token_alg,
    })
}

/// A redirect URI must be absolute, without a fragment or user
/// information, and `https` unless it points at this machine (a developer's
/// relying party, a native app's loopback listener).
fn check_redirect_uri(text: &str) -> Result<(), &'static str> {
    let url = Url::parse(text).map_err(|_| "is not an absolute URL")?;
    if url.fragment().is_some() {
        return Err("may not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("may not carry a user name or password");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be https:// (http:// only for this machine)"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn table(body: &str) -> OidcSettings {
        toml::from_str(body).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_confidential_and_a_public_client_are_read() {
        let config = OidcConfig::from_settings(&table(&format!(
            "[[clients]]\nclient_id = \"wiki\"\nname = \"The Wiki\"\nclient_secret = \"{SECRET}\"\n\
             redirect_uris = [\"https://wiki.example/cb\"]\n\
             [[clients]]\nclient_id = \"spa\"\npublic = true\nsubject_type = \"public\"\n\
             redirect_uris = [\"http://127.0.0.1:8080/cb\"]\nscopes = [\"openid\"]\n"
        )))
        .unwrap();
        let wiki = config.client("wiki").unwrap();
        assert_eq!(wiki.name, "The Wiki");
        assert!(wiki.secret.unwrap().matches(SECRET));
        assert!(!wiki.secret.unwrap().matches(&SECRET.replace('0', "1")));
        assert_eq!(
            wiki.subject,
            SubjectType::Pairwise {
                sector: "wiki".into()
            }
        );
        assert_eq!(wiki.scopes, ["openid", "sqrl"]);
        let spa = config.client("spa").unwrap();
        assert!(spa.is_public());
        assert_eq!(spa.subject, SubjectType::Public);
        assert_eq!(spa.scopes, ["openid"]);
        assert!(config.client("nobody").is_none());
    }

    #[test]
    fn a_hashed_secret_matches_its_secret() {
        let hex = SecretHash::of(SECRET).to_hex();
        let config = OidcConfig::from_settings(&table(&format!(
            "[[clients]]\nclient_id = \"app\"\nclient_secret_sha256 = \"{hex}\"\n\
             redirect_uris = [\"https://app.example/cb\"]\n"
        )))
        .unwrap();
        assert!(
            config
                .client("app")
                .unwrap()
                .secret
                .unwrap()
                .matches(SECRET)
        );
    }

    #[test]
    fn bad_client_tables_are_refused_by_name() {
        let client = |body: &str| format!("[[clients]]\n{body}\n");
        let ok_uri = "redirect_uris = [\"https://a.example/cb\"]";
        let secret = format!("client_secret = \"{SECRET}\"");
        for (body, setting) in [
            (
                client(&format!("client_id = \"\"\n{secret}\n{ok_uri}")),
                "oidc.clients.client_id",
            ),
            (
                client(&format!("client_id = \"a b\"\n{secret}\n{ok_uri}")),
                "oidc.clients.client_id",
            ),
            (
                client(&format!("client_id = \"a\"\n{ok_uri}")),
                "oidc.clients.client_secret",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\n{secret}\npublic = true\n{ok_uri}"
                )),
                "oidc.clients.client_secret",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\nclient_secret = \"short\"\n{ok_uri}"
                )),
                "oidc.clients.client_secret",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\nclient_secret_sha256 = \"abc\"\n{ok_uri}"
                )),
                "oidc.clients.client_secret_sha256",
            ),
            (
                client(&format!("client_id = \"a\"\n{secret}\nredirect_uris = []")),
                "oidc.clients.redirect_uris",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\n{secret}\nredirect_uris = [\"http://a.example/cb\"]"
                )),
                "oidc.clients.redirect_uris",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\n{secret}\nredirect_uris = [\"https://a.example/cb#x\"]"
                )),
                "oidc.clients.redirect_uris",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\n{secret}\n{ok_uri}\nscopes = [\"email\"]"
                )),
                "oidc.clients.scopes",
            ),
            (
                client(&format!(
                    "client_id = \"a\"\n{secret}\n{ok_uri}\nsubject_type = \"secret\""
                )),
                "oidc.clients.subject_type",
            ),
            (
                client(&format!("client_id = \"a\"\n{secret}\n{ok_uri}"))
                    + &client(&format!("client_id = \"a\"\n{secret}\n{ok_uri}")),
                "oidc.clients.client_id",
            ),
        ] {
            let (name, reason) = OidcConfig::from_settings(&table(&body)).unwrap_err();
            assert_eq!(name, setting, "{body} -> {reason}");
        }
    }

    #[test]
    fn the_key_encryption_key_is_read_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("kek");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "not a key").unwrap();
        let with = |path: &std::path::Path| {
            OidcConfig::from_settings(&OidcSettings {
                key_encryption_key_file: Some(path.to_owned()),
                ..OidcSettings::default()
            })
        };
        assert!(with(&good).unwrap().key_encryption_key.is_some());
        for path in [bad, dir.path().join("missing")] {
            let (name, reason) = with(&path).unwrap_err();
            assert_eq!(name, "oidc.key_encryption_key_file", "{reason}");
        }
        assert!(OidcConfig::default().key_encryption_key.is_none());
    }

    #[test]
    fn secrets_are_never_printed() {
        let settings = table(&format!(
            "[[clients]]\nclient_id = \"a\"\nclient_secret = \"{SECRET}\"\n\
             redirect_uris = [\"https://a.example/cb\"]\n"
        ));
        let config = OidcConfig::from_settings(&settings).unwrap();
        for printed in [format!("{settings:?}"), format!("{config:?}")] {
            assert!(!printed.contains(SECRET), "{printed}");
            assert!(
                !printed.contains(&SecretHash::of(SECRET).to_hex()),
                "{printed}"
            );
        }
    }
}
