//! The command line, as clap derive types. Parsing only: `run` turns these into
//! validated settings and acts on them.
//!
//! Only the options every command understands are global (`--config-dir`,
//! `--json`); the others are small groups ([`IdentityOpt`], [`PasswordOpt`],
//! ...) flattened into exactly the commands that use them, so `--help` lists
//! what applies and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

/// The port GRC-style login pages probe for a local SQRL client (SPEC 7).
pub const CPS_PORT: u16 = 25519;

/// The exit codes as `--help` and the manual page list them (a macro, so
/// that `concat!` can put them into the help text).
macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0    success
  1    a local failure (file system, internal error)
  2    usage: a wrong command line, or a needed answer with no terminal to ask it on
  3    wrong password or rescue code; nothing was changed
  4    invalid input: an identity file, link, image, or a password too weak
  5    the site could not be reached or did not answer as SQRL requires
  6    the site refused the command
  7    you declined a confirmation
  8    no such identity, or no such file
  9    a file or identity that would be created already exists
  10   the site saw this device at another network address than the browser
  130  interrupted (Ctrl-C)"
    };
}

/// The exit codes, for the manual page and scripts.
pub const EXIT_CODES: &str = exit_codes!();

/// Manage SQRL identities and sign in to SQRL web sites.
#[derive(Debug, Parser)]
#[command(
    name = "sqrl",
    version,
    about,
    propagate_version = true,
    max_term_width = 100,
    after_help = TOP_AFTER_HELP
)]
pub struct Cli {
    /// Options every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const TOP_AFTER_HELP: &str = concat!(
    "\
Examples:
  sqrl identity create                 a new identity (rescue code first, then a password)
  sqrl login 'sqrl://example.com/sqrl?nut=...'   sign in from a link
  sqrl login qr-screenshot.png         sign in from a picture of the QR code
  sqrl agent                           unlock once; later logins need no password

",
    exit_codes!()
);

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding identities and settings [default: the platform's config dir + /sqrl].
    #[arg(long, global = true, env = "SQRL_HOME", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub config_dir: Option<PathBuf>,

    /// Print results as one JSON object on standard output.
    #[arg(long, global = true)]
    pub json: bool,

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

/// `-i, --identity`: which stored identity a command works on.
#[derive(Debug, Clone, Default, Args)]
pub struct IdentityOpt {
    /// Identity to use [default: the default identity].
    #[arg(
        long,
        short = 'i',
        env = "SQRL_IDENTITY",
        value_name = "NAME",
        add = ArgValueCandidates::new(identity_candidates)
    )]
    pub identity: Option<String>,
}

/// `--password-file`: the identity's password without a terminal.
#[derive(Debug, Clone, Default, Args)]
pub struct PasswordOpt {
    /// Read the identity's password from this file's first line ("-": standard input).
    #[arg(long, env = "SQRL_PASSWORD_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub password_file: Option<PathBuf>,
}

/// `--new-password-file`: a replacement password without a terminal.
#[derive(Debug, Clone, Default, Args)]
pub struct NewPasswordOpt {
    /// Read the new password from this file's first line ("-": standard input).
    #[arg(long, env = "SQRL_NEW_PASSWORD_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub new_password_file: Option<PathBuf>,
}

/// `--rescue-code-file`: the rescue code without a terminal.
#[derive(Debug, Clone, Default, Args)]
pub struct RescueCodeOpt {
    /// Read the 24-digit rescue code from this file's first line ("-": standard input).
    #[arg(long, env = "SQRL_RESCUE_CODE_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rescue_code_file: Option<PathBuf>,
}

/// `-y, --yes`: confirmations answered in advance.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct YesOpt {
    /// Answer "yes" to confirmations (not to a site's question with buttons, and
    /// not to a network address mismatch).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `--allow-weak-password`: skip the strength check of a new password.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct WeakPasswordOpt {
    /// Accept a new password that the strength check finds easy to guess (for
    /// scripts and tests that know what they are doing).
    #[arg(long)]
    pub allow_weak_password: bool,
}

/// The identity names in the store, for shell completion of `--identity`
/// (`$SQRL_HOME` or the default directory; `--config-dir` is not seen yet).
fn identity_candidates() -> Vec<CompletionCandidate> {
    let root = std::env::var_os("SQRL_HOME").map(PathBuf::from);
    crate::store::Store::open(root)
        .and_then(|store| store.list())
        .unwrap_or_default()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, import, export and manage identities.
    #[command(after_help = IDENTITY_AFTER_HELP)]
    Identity {
        /// The identity command.
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Sign in to a site from its SQRL link or a picture of its QR code.
    #[command(after_help = LOGIN_AFTER_HELP)]
    Login(LoginArgs),
    /// Stop SQRL logins for this identity at a site (undo with `enable`).
    #[command(after_help = DISABLE_AFTER_HELP)]
    Disable(SiteArgs),
    /// Re-enable SQRL logins at a site (needs the rescue code).
    #[command(after_help = ENABLE_AFTER_HELP)]
    Enable(RescueSiteArgs),
    /// Remove this identity's association with a site (needs the rescue code).
    #[command(after_help = REMOVE_AFTER_HELP)]
    Remove(RescueSiteArgs),
    /// Hold the unlocked identity for later logins, and serve same-device logins
    /// on http://127.0.0.1:25519 for the browser (CPS).
    #[command(after_help = AGENT_AFTER_HELP, args_conflicts_with_subcommands = true)]
    Agent(AgentArgs),
    /// Print the shell code that completes sqrl's commands, options and identity names.
    #[command(after_help = COMPLETIONS_AFTER_HELP)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `sqrl man | man -l -`.
    #[command(after_help = "Example:\n  sqrl man > sqrl.1 && man ./sqrl.1")]
    Man,
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
    #[command(after_help = IMPORT_AFTER_HELP)]
    Import(ImportArgs),
    /// Export the identity (never a secret in the clear: every form stays encrypted).
    #[command(after_help = EXPORT_AFTER_HELP)]
    Export(ExportArgs),
    /// Show public facts about the identity, or its key and fingerprint for one site.
    #[command(after_help = SHOW_AFTER_HELP)]
    Show(ShowArgs),
    /// Change the identity's password.
    #[command(after_help = PASSWORD_AFTER_HELP)]
    Password(PasswordArgs),
    /// Replace the identity's keys, keeping the old ones so sites can be moved over.
    #[command(after_help = REKEY_AFTER_HELP)]
    Rekey(RekeyArgs),
    /// List stored identities (the default is marked with *).
    #[command(after_help = "Example:\n  sqrl identity list --json")]
    List,
    /// Show or set the default identity.
    #[command(after_help = "Examples:\n  sqrl identity default\n  sqrl identity default work")]
    Default {
        /// The identity to make the default.
        #[arg(add = ArgValueCandidates::new(identity_candidates))]
        name: Option<String>,
    },
}

const IDENTITY_AFTER_HELP: &str = "\
Examples:
  sqrl identity create
  sqrl identity list
  sqrl identity export -f qr-png -o identity.png";

/// How `identity create` and `identity rekey` deliver the new rescue code
/// without a terminal (see `commands::rescue_code`).
const CREATE_AFTER_HELP: &str = "\
The rescue code is typed back from paper before anything is saved. Scripts, which \
have no terminal, skip that check by saying where the code goes: \
--rescue-code-out FILE (a new 0600 file), --json (in the result) or --yes (printed, \
unconfirmed). The password then comes from --password-file. A password that is easy \
to guess is refused unless --allow-weak-password is given.

Examples:
  sqrl identity create
  sqrl identity create work --default
  sqrl identity create ci --rescue-code-out ci.rescue --password-file pw.txt";

const IMPORT_AFTER_HELP: &str = "\
Examples:
  sqrl identity import backup.sqrl --verify
  sqrl identity import identity-qr.png --name phone
  sqrl identity import - --name paper     (then type the textual identity)";

const EXPORT_AFTER_HELP: &str = "\
Examples:
  sqrl identity export -o backup.sqrl -f s4
  sqrl identity export -f qr                draw a QR code for a phone to scan
  sqrl identity export --rescue-only -f base56";

const SHOW_AFTER_HELP: &str = "\
Examples:
  sqrl identity show
  sqrl identity show --site example.com     the key and fingerprint the site sees";

const PASSWORD_AFTER_HELP: &str = "\
Examples:
  sqrl identity password
  sqrl identity password --password-file old.txt --new-password-file new.txt";

const REKEY_AFTER_HELP: &str = "\
The new rescue code is shown once and typed back, as with create.

Examples:
  sqrl identity rekey
  sqrl identity rekey --rescue-code-file old.rescue --rescue-code-out new.rescue";

/// What `sqrl login` checks and asks before signing in.
const LOGIN_AFTER_HELP: &str = "\
The order of a login: the link (or image) is read and the site is shown; you confirm \
that you want to log in to it (--yes answers this); the identity is unlocked, by the \
running `sqrl agent` without a question, else by its password (three tries); the site \
is asked what it knows of this identity and its answer is shown; then you are signed in.

Before anything is signed in, the site compares this computer's network address with \
that of the browser that showed the code. If they differ, sqrl explains what that can \
mean (you are using another network, or an attacker's page relayed the code to you) \
and goes on only if you type CONTINUE on the terminal, or with --allow-relayed-code; \
--yes does not answer this. With --same-device a difference is an error. \
A question from the site with buttons is answered on the terminal or with --button, \
not by --yes. The result shows this identity's fingerprint for the site, to compare \
with the one the site shows.

Examples:
  sqrl login 'sqrl://example.com/sqrl?nut=oOB4QOFJux5Z'
  sqrl login ~/Pictures/login-qr.png
  sqrl login -i work --json --yes --password-file pw.txt 'sqrl://...'";

const DISABLE_AFTER_HELP: &str = "\
Example:
  sqrl disable 'sqrl://example.com/sqrl?nut=...'     (undo: sqrl enable, with the rescue code)";

const ENABLE_AFTER_HELP: &str = "\
Example:
  sqrl enable 'sqrl://example.com/sqrl?nut=...' --rescue-code-file code.txt";

const REMOVE_AFTER_HELP: &str = "\
Example:
  sqrl remove 'sqrl://example.com/sqrl?nut=...'";

const AGENT_AFTER_HELP: &str = "\
The agent asks for the password once and keeps the unlocked identity in memory \
(locked into RAM, never in a core dump) until it has been idle for --idle-timeout \
seconds, until `sqrl agent lock`, or until it stops; the keys are wiped then. While it \
holds the identity, `sqrl login`, `disable`, `enable` and `remove` by the same user \
ask it for the one site's key instead of the password. It answers only its own user: \
its socket is private (mode 0600 in a 0700 directory) and it checks the connecting \
process's user id. It never gives out the identity's master key.

Socket: $SQRL_AGENT_SOCKET, else $XDG_RUNTIME_DIR/sqrl/agent.sock, else \
<config dir>/agent/agent.sock.

Examples:
  sqrl agent                       unlock, then serve until Ctrl-C
  sqrl agent --idle-timeout 300    forget the identity after 5 idle minutes
  sqrl agent status
  sqrl agent lock                  forget it now";

const COMPLETIONS_AFTER_HELP: &str = "\
The completions ask sqrl itself while you type, so identity names complete too.

Examples:
  echo 'source <(sqrl completions bash)' >> ~/.bashrc
  echo 'source <(sqrl completions zsh)' >> ~/.zshrc
  sqrl completions fish > ~/.config/fish/completions/sqrl.fish";

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
    /// The new identity's password.
    #[command(flatten)]
    pub password: PasswordOpt,
    /// Strength check.
    #[command(flatten)]
    pub weak: WeakPasswordOpt,
    /// Confirmations.
    #[command(flatten)]
    pub yes: YesOpt,
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
    /// The password (to verify, or the new one of a rescue identity).
    #[command(flatten)]
    pub password: PasswordOpt,
    /// The rescue code (a rescue identity).
    #[command(flatten)]
    pub rescue: RescueCodeOpt,
    /// Strength check of a rescue identity's new password.
    #[command(flatten)]
    pub weak: WeakPasswordOpt,
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
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
}

/// `sqrl identity show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print this site's public identity key (`idk`, base64url) and fingerprint;
    /// needs the password (or the agent).
    #[arg(long, value_name = "URL")]
    pub site: Option<String>,
    /// Alt-ID: a different identity at the same site.
    #[arg(long, env = "SQRL_ALT_ID", value_name = "TEXT")]
    pub alt_id: Option<String>,
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
    /// Its password (for --site).
    #[command(flatten)]
    pub password: PasswordOpt,
}

/// `sqrl identity password`
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
    /// The current password.
    #[command(flatten)]
    pub password: PasswordOpt,
    /// The new password.
    #[command(flatten)]
    pub new_password: NewPasswordOpt,
    /// Strength check.
    #[command(flatten)]
    pub weak: WeakPasswordOpt,
}

/// `sqrl identity rekey`
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Write the new rescue code to this new file (mode 0600) instead of showing it;
    /// no confirmation is asked.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub rescue_code_out: Option<PathBuf>,
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
    /// Its password.
    #[command(flatten)]
    pub password: PasswordOpt,
    /// Its current rescue code.
    #[command(flatten)]
    pub rescue: RescueCodeOpt,
    /// Confirmations.
    #[command(flatten)]
    pub yes: YesOpt,
}

/// The site a command talks to, and how.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// A sqrl:// or qrl:// link, or a PNG/JPEG image containing its QR code.
    #[arg(value_name = "URL|IMAGE", value_hint = ValueHint::FilePath)]
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
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
    /// Its password (when no agent holds it).
    #[command(flatten)]
    pub password: PasswordOpt,
    /// Confirmations.
    #[command(flatten)]
    pub yes: YesOpt,
}

/// `sqrl enable` and `sqrl remove`: a site command that needs the rescue code.
#[derive(Debug, Args)]
pub struct RescueSiteArgs {
    /// The site.
    #[command(flatten)]
    pub site: SiteArgs,
    /// The rescue code.
    #[command(flatten)]
    pub rescue: RescueCodeOpt,
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
    /// Talk to a running agent instead of starting one.
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
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
    /// Which identity.
    #[command(flatten)]
    pub identity: IdentityOpt,
    /// Its password.
    #[command(flatten)]
    pub password: PasswordOpt,
    /// Confirmations of same-device logins.
    #[command(flatten)]
    pub yes: YesOpt,
}

/// `sqrl agent lock|status`
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum AgentCommand {
    /// Make the running agent forget the unlocked identity now (the keys are wiped).
    Lock,
    /// Show whether an agent is running, which identity it holds and for how long.
    Status,
}

/// The per-command options the shared [`crate::commands::Context`] carries.
#[derive(Debug, Clone, Default)]
pub struct CommandOptions {
    /// `--identity`.
    pub identity: IdentityOpt,
    /// `--password-file`.
    pub password: PasswordOpt,
    /// `--new-password-file`.
    pub new_password: NewPasswordOpt,
    /// `--rescue-code-file`.
    pub rescue: RescueCodeOpt,
    /// `--yes`.
    pub yes: YesOpt,
    /// `--allow-weak-password`.
    pub weak: WeakPasswordOpt,
}

impl Command {
    /// The options of this command that the shared context needs.
    pub fn options(&self) -> CommandOptions {
        let mut o = CommandOptions::default();
        match self {
            Command::Identity { command } => match command {
                IdentityCommand::Create(a) => {
                    o.password = a.password.clone();
                    o.weak = a.weak;
                    o.yes = a.yes;
                }
                IdentityCommand::Import(a) => {
                    o.password = a.password.clone();
                    o.rescue = a.rescue.clone();
                    o.weak = a.weak;
                }
                IdentityCommand::Export(a) => o.identity = a.identity.clone(),
                IdentityCommand::Show(a) => {
                    o.identity = a.identity.clone();
                    o.password = a.password.clone();
                }
                IdentityCommand::Password(a) => {
                    o.identity = a.identity.clone();
                    o.password = a.password.clone();
                    o.new_password = a.new_password.clone();
                    o.weak = a.weak;
                }
                IdentityCommand::Rekey(a) => {
                    o.identity = a.identity.clone();
                    o.password = a.password.clone();
                    o.rescue = a.rescue.clone();
                    o.yes = a.yes;
                }
                IdentityCommand::List | IdentityCommand::Default { .. } => {}
            },
            Command::Login(a) => o.site(&a.site),
            Command::Disable(a) => o.site(a),
            Command::Enable(a) | Command::Remove(a) => {
                o.site(&a.site);
                o.rescue = a.rescue.clone();
            }
            Command::Agent(a) => {
                o.identity = a.identity.clone();
                o.password = a.password.clone();
                o.yes = a.yes;
            }
            Command::Completions { .. } | Command::Man => {}
        }
        o
    }
}

impl CommandOptions {
    fn site(&mut self, site: &SiteArgs) {
        self.identity = site.identity.clone();
        self.password = site.password.clone();
        self.yes = site.yes;
    }
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
    fn command_options_follow_the_command() {
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
        assert!(cli.global.json);
        let options = cli.command.options();
        assert!(options.yes.yes);
        assert_eq!(options.identity.identity.as_deref(), Some("work"));
        match cli.command {
            Command::Login(args) => assert!(args.site.target.starts_with("qrl://")),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_appear_only_where_they_apply() {
        for args in [
            &["sqrl", "login", "x", "--new-password-file", "f"][..],
            &["sqrl", "completions", "bash", "--password-file", "f"],
            &["sqrl", "identity", "list", "-i", "me"],
            &["sqrl", "disable", "x", "--rescue-code-file", "f"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} accepted");
        }
        Cli::try_parse_from(["sqrl", "enable", "x", "--rescue-code-file", "f"]).unwrap();
        Cli::try_parse_from(["sqrl", "--json", "identity", "list"]).unwrap();
    }

    #[test]
    fn agent_port_defaults_to_25519() {
        let cli = Cli::try_parse_from(["sqrl", "agent"]).unwrap();
        match cli.command {
            Command::Agent(args) => {
                assert_eq!(args.port, 25519);
                assert!(args.command.is_none());
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["sqrl", "agent", "lock"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Agent(AgentArgs {
                command: Some(AgentCommand::Lock),
                ..
            })
        ));
    }
}
