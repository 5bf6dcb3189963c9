//! The commands, each a function of the validated [`Context`] and its arguments.

pub mod identity;
pub mod rescue_code;
pub mod site;

use std::io::Write as _;

use clap::CommandFactory as _;
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::identity::Costs;
use crate::output::Output;
use crate::prompt::SecretSources;
use crate::refusal::tif_json;
use crate::session::Action;
use crate::store::{self, Store};

/// Everything a command needs besides its own arguments.
#[derive(Debug)]
pub struct Context {
    /// Where identities live.
    pub store: Store,
    /// How results are printed.
    pub out: Output,
    /// Where passwords and rescue codes come from.
    pub secrets: SecretSources,
    /// `--yes`.
    pub yes: bool,
    /// `--identity`.
    pub identity: Option<String>,
    /// `--allow-weak-password`.
    pub allow_weak_password: bool,
    /// EnScrypt costs for newly written blocks.
    pub costs: Costs,
}

impl Context {
    /// Validates the global options and the command's own shared ones.
    pub fn new(cli: &Cli) -> Result<Self> {
        let global = &cli.global;
        let options = cli.command.options();
        if let Some(name) = &options.identity.identity {
            store::validate_name(name)?;
        }
        let stdin_users = [
            &options.password.password_file,
            &options.new_password.new_password_file,
            &options.rescue.rescue_code_file,
        ]
        .iter()
        .filter(|f| f.as_deref() == Some(std::path::Path::new("-")))
        .count();
        if stdin_users > 1 {
            return Err(Error::StdinClaimedTwice);
        }
        Ok(Self {
            store: Store::open(global.config_dir.clone())?,
            out: Output::new(global.json),
            secrets: SecretSources {
                password_file: options.password.password_file,
                new_password_file: options.new_password.new_password_file,
                rescue_code_file: options.rescue.rescue_code_file,
                allow_weak_password: options.weak.allow_weak_password,
            },
            yes: options.yes.yes,
            identity: options.identity.identity,
            allow_weak_password: options.weak.allow_weak_password,
            costs: Costs::from_budget(global.enscrypt_ms),
        })
    }

    /// The identity to use: `--identity`, else the default.
    pub fn identity_name(&self) -> Result<String> {
        self.store.resolve(self.identity.as_deref())
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Man => return manual_page(),
        _ => {}
    }
    let context = Context::new(&cli)?;
    match cli.command {
        Command::Identity { command } => identity::run(&context, command),
        Command::Login(args) => site::login(&context, &args),
        Command::Disable(args) => site::other(&context, &args, Action::Disable),
        Command::Enable(args) => site::other(&context, &args.site, Action::Enable),
        Command::Remove(args) => site::other(&context, &args.site, Action::Remove),
        Command::Agent(args) => crate::agent::run(&context, &args),
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Error::Output)
}

/// `sqrl completions SHELL`: the shell code that registers sqrl's dynamic
/// completion (the shell runs `COMPLETE=SHELL sqrl -- ...` while the user
/// types, which `main` answers through clap_complete's engine, so identity
/// names complete from the store).
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| Error::Internal(format!("no completer for {name}")))?;
    let program = std::env::current_exe()
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "sqrl".to_owned());
    let mut buffer = Vec::new();
    completer
        .write_registration("COMPLETE", "sqrl", "sqrl", &program, &mut buffer)
        .map_err(Error::Output)?;
    write_stdout(&buffer)
}

/// `sqrl man`: the manual page, made from the same definition as `--help`
/// (its closing section holds the examples and the exit codes).
fn manual_page() -> Result<()> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buffer)
        .map_err(Error::Output)?;
    write_stdout(&buffer)
}

/// The JSON printed for a failure with `--json` (on standard output, so a script
/// reading one JSON object per run always gets one): the message, the exit
/// code, the stable failure code ([`Error::code`]) and, when a site's reply
/// refused the command, its TIF in hex (`tif`) and the names of its set bits
/// (`tif_flags`).
pub fn error_json(error: &Error) -> serde_json::Value {
    let (tif, tif_flags) = tif_json(error.tif());
    json!({
        "error": error.one_line(),
        "exit_code": error.exit_code().code(),
        "code": error.code(),
        "tif": tif,
        "tif_flags": tif_flags,
    })
}
