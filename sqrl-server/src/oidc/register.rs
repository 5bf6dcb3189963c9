//! `sqrl-server client ...`: registering a relying party without writing a
//! secret by hand. `client new` draws a secret, prints the
//! `[[oidc.clients]]` table that holds only its SHA-256, and shows the secret
//! itself once, for the relying party; `client hash` hashes a secret the
//! operator already has.
//!
//! The table goes to standard output and the secret to standard error, so
//! that `sqrl-server client new ... >> sqrl.toml` appends the table to the
//! configuration and leaves the secret on the terminal, not in the file.
//! Nothing here logs: the commands run before logging is set up, and the
//! secret lives in wiped memory ([`Zeroizing`]) until it is printed.

use std::io::{Read, Write};

use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore as _};
use serde::Serialize;
use sqrl_core::base64url;
use zeroize::Zeroizing;

use super::clients::{ClientSettings, MIN_SECRET_LEN, OidcConfig, OidcSettings, SecretHash};

/// Random bytes in a generated client secret: 256 bits, 43 base64url
/// characters.
pub const SECRET_BYTES: usize = 32;

/// What `sqrl-server` does instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Register OpenID Connect relying parties: print `[[oidc.clients]]`
    /// tables for the configuration file.
    #[command(subcommand)]
    Client(ClientCommand),
}

/// `sqrl-server client ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Print a `[[oidc.clients]]` table for a new relying party, with a
    /// freshly drawn secret.
    ///
    /// The table goes to standard output and holds only the secret's SHA-256
    /// (`client_secret_sha256`), so it can be appended to the configuration
    /// file as it is (`>> sqrl.toml`). The secret itself (32 random bytes,
    /// base64url) goes to standard error, this once: give it to the relying
    /// party. It is kept nowhere and never logged; a lost secret is replaced
    /// by registering again. A `--public` client gets no secret.
    New(NewClient),
    /// Read a client secret on standard input (up to end of input; one
    /// trailing newline is dropped) and print its SHA-256 in hex, as
    /// `client_secret_sha256` takes it.
    ///
    /// For a secret the relying party already has, so that the configuration
    /// file never holds it. The secret is never logged.
    Hash,
}

/// `sqrl-server client new`.
#[derive(Debug, Clone, Args)]
pub struct NewClient {
    /// The `client_id`: 1 to 128 letters, digits, `-`, `.`, `_` or `~`.
    #[arg(long)]
    pub id: String,
    /// The name the consent screen and the account page show [default: the
    /// client id].
    #[arg(long)]
    pub name: Option<String>,
    /// Where codes may be sent, matched exactly: `https://`, or `http://`
    /// on this machine. Repeat for several.
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// A public client (a single-page or native app): no secret, PKCE
    /// required.
    #[arg(long)]
    pub public: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The provider would refuse the client at start-up.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting, as the configuration file names it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The secret given to `client hash` is too short to be one.
    #[error("a client secret has at least {MIN_SECRET_LEN} characters")]
    ShortSecret,
    /// Reading standard input or writing the output failed (input that is
    /// not UTF-8 ends here too).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The table could not be written as TOML.
    #[error("writing the table: {0}")]
    Toml(#[from] toml::ser::Error),
}

/// Runs `command`: reads `input` (`client hash`), writes what belongs in
/// the configuration to `out` and the secret, for the relying party, to
/// `secret_out`.
pub fn run(
    command: &Command,
    input: &mut dyn Read,
    out: &mut dyn Write,
    secret_out: &mut dyn Write,
) -> Result<(), RegisterError> {
    match command {
        Command::Client(ClientCommand::New(client)) => new_client(client, out, secret_out),
        Command::Client(ClientCommand::Hash) => hash(input, out),
    }
}

/// The `[oidc]` table around the client, so that TOML names it
/// `[[oidc.clients]]`.
#[derive(Serialize)]
struct Snippet<'a> {
    oidc: &'a OidcSettings,
}

fn new_client(
    client: &NewClient,
    out: &mut dyn Write,
    secret_out: &mut dyn Write,
) -> Result<(), RegisterError> {
    let secret = (!client.public).then(generate_secret);
    let settings = OidcSettings {
        clients: vec![ClientSettings {
            client_id: client.id.trim().to_owned(),
            name: client.name.clone(),
            client_secret_sha256: secret.as_ref().map(|s| SecretHash::of(s).to_hex()),
            public: client.public,
            redirect_uris: client.redirect_uris.clone(),
            ..ClientSettings::default()
        }],
        ..OidcSettings::default()
    };
    // The same check as at start-up: what is printed is accepted there.
    OidcConfig::from_settings(&settings)
        .map_err(|(name, reason)| RegisterError::Invalid { name, reason })?;
    out.write_all(toml::to_string(&Snippet { oidc: &settings })?.as_bytes())?;
    out.flush()?;
    if let Some(secret) = secret {
        write!(
            secret_out,
            "The client secret of {:?}, for the relying party only. It is shown \
             this once and kept nowhere (the table holds its SHA-256):\n{}\n",
            client.id.trim(),
            secret.as_str()
        )?;
        secret_out.flush()?;
    }
    Ok(())
}

/// A fresh secret: [`SECRET_BYTES`] from the operating system, base64url.
fn generate_secret() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    OsRng.fill_bytes(bytes.as_mut_slice());
    Zeroizing::new(base64url::encode(bytes.as_slice()))
}

fn hash(input: &mut dyn Read, out: &mut dyn Write) -> Result<(), RegisterError> {
    let mut text = Zeroizing::new(String::new());
    input.read_to_string(&mut text)?;
    // `echo` and a terminal's Enter add a newline that is no part of it.
    let secret = text.strip_suffix('\n').map_or(text.as_str(), |line| {
        line.strip_suffix('\r').unwrap_or(line)
    });
    if secret.chars().count() < MIN_SECRET_LEN {
        return Err(RegisterError::ShortSecret);
    }
    writeln!(out, "{}", SecretHash::of(secret).to_hex())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn new(id: &str, public: bool, uris: &[&str]) -> Command {
        Command::Client(ClientCommand::New(NewClient {
            id: id.to_owned(),
            name: Some("The Wiki".to_owned()),
            redirect_uris: uris.iter().map(|uri| (*uri).to_owned()).collect(),
            public,
        }))
    }

    /// The table and the secret `command` prints.
    fn printed(command: &Command, input: &str) -> Result<(String, String), RegisterError> {
        let (mut out, mut secret) = (Vec::new(), Vec::new());
        run(command, &mut input.as_bytes(), &mut out, &mut secret)?;
        Ok((
            String::from_utf8(out).unwrap(),
            String::from_utf8(secret).unwrap(),
        ))
    }

    fn read_back(table: &str) -> OidcConfig {
        #[derive(serde::Deserialize)]
        struct File {
            oidc: OidcSettings,
        }
        let file: File = toml::from_str(table).unwrap();
        OidcConfig::from_settings(&file.oidc).unwrap()
    }

    #[test]
    fn a_new_client_table_holds_the_hash_of_the_secret_shown_once() {
        let (table, notice) =
            printed(&new("wiki", false, &["https://wiki.example/cb"]), "").unwrap();
        assert!(table.starts_with("[[oidc.clients]]\n"), "{table}");
        let secret = notice.lines().last().unwrap();
        assert_eq!(base64url::decode(secret).unwrap().len(), SECRET_BYTES);
        assert!(!table.contains(secret), "the file never holds the secret");
        let config = read_back(&table);
        let wiki = config.client("wiki").unwrap();
        assert_eq!(wiki.name, "The Wiki");
        assert_eq!(wiki.redirect_uris, ["https://wiki.example/cb"]);
        assert!(wiki.secret.unwrap().matches(secret));
        // Each registration draws its own.
        let (_, again) = printed(&new("wiki", false, &["https://wiki.example/cb"]), "").unwrap();
        assert_ne!(again.lines().last().unwrap(), secret);
    }

    #[test]
    fn a_public_client_gets_no_secret() {
        let (table, notice) =
            printed(&new("spa", true, &["http://localhost:3000/cb"]), "").unwrap();
        assert!(notice.is_empty(), "{notice}");
        assert!(read_back(&table).client("spa").unwrap().is_public());
    }

    #[test]
    fn what_start_up_would_refuse_is_refused_before_printing() {
        for (command, setting) in [
            (
                new("a b", false, &["https://a.example/cb"]),
                "oidc.clients.client_id",
            ),
            (
                new("a", false, &["http://a.example/cb"]),
                "oidc.clients.redirect_uris",
            ),
        ] {
            let (mut out, mut secret) = (Vec::new(), Vec::new());
            match run(&command, &mut "".as_bytes(), &mut out, &mut secret) {
                Err(RegisterError::Invalid { name, .. }) => assert_eq!(name, setting),
                other => panic!("{command:?}: {other:?}"),
            }
            assert!(out.is_empty() && secret.is_empty());
        }
    }

    #[test]
    fn hash_reads_one_secret_and_drops_its_newline() {
        let secret = "0123456789abcdef0123456789abcdef";
        let expected = format!("{}\n", SecretHash::of(secret).to_hex());
        for input in [
            secret.to_owned(),
            format!("{secret}\n"),
            format!("{secret}\r\n"),
        ] {
            let (out, notice) = printed(&Command::Client(ClientCommand::Hash), &input).unwrap();
            assert_eq!(out, expected, "{input:?}");
            assert!(notice.is_empty());
        }
        // A second newline is part of what was given, and changes the hash.
        let (out, _) = printed(
            &Command::Client(ClientCommand::Hash),
            &format!("{secret}\n\n"),
        )
        .unwrap();
        assert_ne!(out, expected);
        assert!(matches!(
            printed(&Command::Client(ClientCommand::Hash), "short\n"),
            Err(RegisterError::ShortSecret)
        ));
    }
}
