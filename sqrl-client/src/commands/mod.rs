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
    /// EnScrypt costs for newly written blocks.
    pub costs: Costs,
}

impl Context {
    /// Validates the global options.
    pub fn new(cli: &Cli) -> Result<Self> {
        let global = &cli.global;
        if let Some(name) = &global.identity {
            store::validate_name(name)?;
        }
        let stdin_users = [
            &global.password_file,
            &global.new_password_file,
            &global.rescue_code_file,
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
                password_file: global.password_file.clone(),
                new_password_file: global.new_password_file.clone(),
                rescue_code_file: global.rescue_code_file.clone(),
            },
            yes: global.yes,
            identity: global.identity.clone(),
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
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        let mut buffer = Vec::new();
        clap_complete::generate(*shell, &mut command, "sqrl", &mut buffer);
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(&buffer)
            .and_then(|()| stdout.flush())
            .map_err(Error::Output);
    }
    let context = Context::new(&cli)?;
    match cli.command {
        Command::Identity { command } => identity::run(&context, command),
        Command::Login(args) => site::login(&context, &args),
        Command::Disable(args) => site::other(&context, &args, crate::session::Action::Disable),
        Command::Enable(args) => site::other(&context, &args, crate::session::Action::Enable),
        Command::Remove(args) => site::other(&context, &args, crate::session::Action::Remove),
        Command::Agent(args) => crate::agent::run(&context, &args),
        Command::Completions { .. } => Ok(()),
    }
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
