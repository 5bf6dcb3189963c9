//! The command line, as clap derive types. Parsing only: `run` turns these into
//! validated settings and acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

/// The port GRC-style login pages probe for a local SQRL client (SPEC 7).
pub const CPS_PORT: u16 = 25519;

/// Manage SQRL identities and sign in to SQRL web sites.
#[derive(Debug, Parser)]
#[command(
    name = "sqrl",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding identities and settings [default: the platform's config dir + /sqrl].
    #[arg(long, global = true, env = "SQRL_HOME", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub config_dir: Option<PathBuf>,

    /// Identity to use [default: the default identity].
    #[arg(
        long,
        short = 'i',
        global = true,
        env = "SQRL_IDENTITY",
        value_name = "NAME"
    )]
    pub identity: Option<String>,

    /// Print results as one JSON object on standard output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Answer "yes" to every confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Read the identity's password from this file's first line ("-": standard input).
    #[arg(long, global = true, env = "SQRL_PASSWORD_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,

    /// Read the new password (for `identity password`) from this file's first line.
    #[arg(long, global = true, env = "SQRL_NEW_PASSWORD_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub new_password_file: Option<PathBuf>,

    /// Read the 24-digit rescue code from this file's first line ("-": standard input).
    #[arg(long, global = true, env = "SQRL_RESCUE_CODE_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rescue_code_file: Option<PathBuf>,

    /// EnScrypt time budget in milliseconds for newly encrypted blocks (testing only;
    /// real identities use 5 seconds).
    #[arg(
        long,
        global = true,
        hide = true,
        env = "SQRL_ENSCRYPT_MS",
        value_name = "MS"
    )]
    pub enscrypt_ms: Option<u64>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, import, export and manage identities.
    Identity {
        /// The identity command.
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Sign in to a site from its SQRL link or a picture of its QR code.
    #[command(after_help = LOGIN_AFTER_HELP)]
    Login(LoginArgs),
    /// Stop SQRL logins for this identity at a site (undo with `enable`).
    Disable(SiteArgs),
    /// Re-enable SQRL logins at a site (needs the rescue code).
    Enable(SiteArgs),
    /// Remove this identity's association with a site (needs the rescue code).
    Remove(SiteArgs),
    /// Serve same-device logins on http://127.0.0.1:25519 for the browser (CPS).
    Agent(AgentArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `sqrl identity ...`
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create a new identity: shows its rescue code once and has it typed back,
    /// then asks for its password twice.
    #[command(after_help = CREATE_AFTER_HELP)]
    Create(CreateArgs),
    /// Import an identity: an S4 file (binary or SQRLDATA text), a rescue-only .sqrc
    /// file, a textual (base56) identity, or a PNG/JPEG of an exported QR code.
    Import(ImportArgs),
    /// Export the identity (never a secret in the clear: every form stays encrypted).
    Export(ExportArgs),
    /// Show public facts about the identity, or its public key for one site.
    Show(ShowArgs),
    /// Change the identity's password.
    Password,
    /// Replace the identity's keys, keeping the old ones so sites can be moved over.
    #[command(after_help = CREATE_AFTER_HELP)]
    Rekey(RekeyArgs),
    /// List stored identities.
    List,
    /// Show or set the default identity.
    Default {
        /// The identity to make the default.
        name: Option<String>,
    },
}

/// How `identity create` and `identity rekey` deliver the new rescue code
/// without a terminal (see `commands::rescue_code`).
const CREATE_AFTER_HELP: &str = "\
The rescue code is typed back from paper before anything is saved. Scripts, which \
have no terminal, skip that check by saying where the code goes: \
--rescue-code-out FILE (a new 0600 file), --json (in the result) or --yes (printed, \
unconfirmed). The password then comes from --password-file.";

/// What `sqrl login` checks and asks before signing in.
const LOGIN_AFTER_HELP: &str = "\
Before anything is signed in, the site compares this computer's network address with \
that of the browser that showed the code. If they differ, sqrl explains what that can \
mean (you are using another network, or an attacker's page relayed the code to you) \
and goes on only if you type CONTINUE on the terminal, or with --allow-relayed-code; \
--yes does not answer this. With --same-device a difference is an error. \
A question from the site with buttons is answered on the terminal or with --button, \
not by --yes. The result shows this identity's fingerprint for the site, to compare \
with the one the site shows.";

/// `sqrl identity create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new identity.
    #[arg(default_value = "default")]
    pub name: String,
    /// Write the new rescue code to this new file (mode 0600) instead of showing it;
    /// no confirmation is asked.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rescue_code_out: Option<PathBuf>,
    /// Make the new identity the default.
    #[arg(long)]
    pub default: bool,
}

/// `sqrl identity import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File to import ("-": standard input, e.g. a pasted textual identity).
    #[arg(value_hint = ValueHint::FilePath)]
    pub source: PathBuf,
    /// Name for the imported identity [default: from the file name].
    #[arg(long)]
    pub name: Option<String>,
    /// Check the password (full identities) before storing.
    #[arg(long)]
    pub verify: bool,
    /// Make the imported identity the default.
    #[arg(long)]
    pub default: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// S4 binary (`sqrldata` header): the stored file, byte for byte.
    S4,
    /// S4 text (`SQRLDATA` + base64url).
    S4Text,
    /// Textual rescue identity (base56 with check characters), to write on paper.
    Base56,
    /// A QR code of the S4 text, drawn in the terminal.
    Qr,
    /// A QR code of the S4 text, as a PNG file (needs --output).
    QrPng,
}

/// `sqrl identity export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::S4Text)]
    pub format: ExportFormat,
    /// Export only the rescue-code-protected blocks (a `.sqrc` rescue identity).
    #[arg(long)]
    pub rescue_only: bool,
    /// Write to this new file (mode 0600) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

/// `sqrl identity show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print this site's public identity key (`idk`, base64url); needs the password.
    #[arg(long, value_name = "URL")]
    pub site: Option<String>,
    /// Alt-ID: a different identity at the same site.
    #[arg(long, env = "SQRL_ALT_ID", value_name = "TEXT")]
    pub alt_id: Option<String>,
}

/// `sqrl identity rekey`
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Write the new rescue code to this new file (mode 0600) instead of showing it;
    /// no confirmation is asked.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rescue_code_out: Option<PathBuf>,
}

/// The site a command talks to, and how.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// A sqrl:// or qrl:// link, or a PNG/JPEG image containing its QR code.
    #[arg(value_name = "URL|IMAGE")]
    pub target: String,
    /// Alt-ID: a different identity at the same site.
    #[arg(long, env = "SQRL_ALT_ID", value_name = "TEXT")]
    pub alt_id: Option<String>,
    /// Answer to the site's question: 1 or 2 for its buttons, 0 for plain OK
    /// (--yes does not answer a question with buttons).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub button: Option<u8>,
    /// How to reach the site.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// How to reach sites.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Trust only the certificate authorities in this PEM file (not the public roots) for https.
    #[arg(long, env = "SQRL_CA_CERT", value_name = "PEM", value_hint = ValueHint::FilePath)]
    pub ca_cert: Option<PathBuf>,
    /// Seconds to wait for a site before giving up.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `sqrl login`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The site.
    #[command(flatten)]
    pub site: SiteArgs,
    /// The browser is on this machine: ask the site for the session URL (CPS) and
    /// require the site to see the same IP address as the browser (else: an error).
    #[arg(long)]
    pub same_device: bool,
    /// Sign in even though the site saw this computer at a different network address
    /// than the browser that showed the code, without asking. Expected when the browser
    /// is on another network, but it is also what a code relayed from an attacker's page
    /// looks like: THEIR browser would be signed in as you. For scripts that mean it.
    #[arg(long, conflicts_with = "same_device")]
    pub allow_relayed_code: bool,
}

/// `sqrl agent`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Keep the unlocked identity in memory for this many idle seconds (0: ask
    /// for the password on every login) [default: the identity's idle timeout
    /// setting, normally 15 minutes].
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Alt-ID: a different identity at the same site.
    #[arg(long, env = "SQRL_ALT_ID", value_name = "TEXT")]
    pub alt_id: Option<String>,
    /// Port on 127.0.0.1 (pages expect 25519; other values are for testing).
    #[arg(long, hide = true, default_value_t = CPS_PORT)]
    pub port: u16,
    /// Stop after serving this many logins (testing).
    #[arg(long, hide = true)]
    pub max_logins: Option<u32>,
    /// How to reach sites.
    #[command(flatten)]
    pub http: HttpArgs,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "sqrl",
            "login",
            "qrl://127.0.0.1:8080/cli.sqrl?nut=abc",
            "--yes",
            "--json",
            "-i",
            "work",
        ])
        .unwrap();
        assert!(cli.global.yes && cli.global.json);
        assert_eq!(cli.global.identity.as_deref(), Some("work"));
        match cli.command {
            Command::Login(args) => assert!(args.site.target.starts_with("qrl://")),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn agent_port_defaults_to_25519() {
        let cli = Cli::try_parse_from(["sqrl", "agent"]).unwrap();
        match cli.command {
            Command::Agent(args) => assert_eq!(args.port, 25519),
            other => panic!("parsed as {other:?}"),
        }
    }
}
