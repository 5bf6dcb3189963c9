//! `sqrl`: parse the command line, run it, and turn the outcome into an exit code.

use std::io::Write as _;

use clap::{CommandFactory as _, Parser as _};
use sqrl_client::cli::Cli;
use sqrl_client::{Error, ExitCode, commands};

fn main() -> std::process::ExitCode {
    // The shell asking for completions while the user types (`COMPLETE=bash
    // sqrl -- sqrl login -i ...`, set up by `sqrl completions`): answered here,
    // before anything else is read or printed.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = Cli::parse();
    let json = cli.global.json;
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`sqrl ... | head`) is not a failure.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            if json {
                let value = commands::error_json(&error);
                let _ = writeln!(std::io::stdout(), "{value}");
            }
            let _ = writeln!(std::io::stderr(), "sqrl: error: {}", error.one_line());
            let code: ExitCode = error.exit_code();
            std::process::ExitCode::from(code.code())
        }
    }
}
