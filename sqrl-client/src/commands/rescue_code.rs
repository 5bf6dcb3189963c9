//! Handing a new rescue code to the user (`identity create`, `identity rekey`).
//!
//! The code is the only way back to the identity unlock key (SPEC 5.4), and it
//! exists nowhere but in the user's hands: it is shown once, and on a terminal
//! the user proves they wrote it down by typing it back from their paper before
//! anything is saved.
//!
//! Where the code goes, decided before any secret is asked for or generated:
//!
//! | given                    | the code goes               | confirmation |
//! |--------------------------|-----------------------------|--------------|
//! | `--rescue-code-out FILE` | into FILE (new, mode 0600)  | none         |
//! | `--json`                 | into the JSON result        | none         |
//! | `--yes`                  | on standard output          | none         |
//! | a terminal               | on standard output          | typed back   |
//! | none of these            | nowhere: a usage error before any code exists | — |

use std::io::{self, Write as _};
use std::path::Path;

use sqrl_core::storage::RescueCode;
use zeroize::Zeroizing;

use super::Context;
use crate::error::{Error, Result};
use crate::prompt;
use crate::store;

/// How many times the user may type the code back before creation is abandoned.
pub const CONFIRM_ATTEMPTS: u32 = 3;

/// Where a new rescue code goes (see the module table).
#[derive(Debug, Clone, Copy)]
pub enum Delivery<'a> {
    /// `--rescue-code-out FILE`.
    File(&'a Path),
    /// `--json`: the calling program receives it.
    Json,
    /// Printed on standard output, then typed back if `confirm`.
    Shown {
        /// Whether the user must type the code back (a terminal, no `--yes`).
        confirm: bool,
    },
}

impl<'a> Delivery<'a> {
    /// Chooses the delivery, failing early (before any prompt or EnScrypt run)
    /// if the file exists or a confirmation would be needed without a terminal.
    pub fn choose(context: &Context, file: Option<&'a Path>) -> Result<Self> {
        if let Some(path) = file {
            if path.exists() {
                return Err(Error::FileExists {
                    path: path.to_owned(),
                });
            }
            return Ok(Self::File(path));
        }
        if context.out.is_json() {
            return Ok(Self::Json);
        }
        if context.yes {
            return Ok(Self::Shown { confirm: false });
        }
        if !prompt::interactive() {
            return Err(Error::NoPrompt {
                what: "confirmation that the rescue code was written down",
                flag: "--rescue-code-out FILE, --json or --yes",
            });
        }
        Ok(Self::Shown { confirm: true })
    }

    /// Before the identity is encrypted: shows the code and has it typed back.
    /// A code typed wrong [`CONFIRM_ATTEMPTS`] times is
    /// [`Error::RescueCodeMismatch`], and nothing has been written.
    pub fn show(self, code: &RescueCode) -> Result<()> {
        let Self::Shown { confirm } = self else {
            return Ok(());
        };
        print_code(code)?;
        if confirm {
            confirm_code(code)?;
        }
        Ok(())
    }

    /// After the identity is encrypted, before it is saved: writes the code file.
    /// Returns the grouped code when it belongs in the JSON result.
    pub fn hand_over(
        self,
        context: &Context,
        code: &RescueCode,
    ) -> Result<Option<Zeroizing<String>>> {
        match self {
            Self::File(path) => {
                let mut line = code.to_grouped_string();
                line.push('\n');
                store::write_new_file(path, line.as_bytes())?;
                context.out.note(&format!(
                    "The rescue code was written to {}. Copy it to paper, keep it safe, and delete the file.",
                    path.display()
                ));
                Ok(None)
            }
            Self::Json => Ok(Some(code.to_grouped_string())),
            Self::Shown { .. } => Ok(None),
        }
    }
}

fn print_code(code: &RescueCode) -> Result<()> {
    let grouped = code.to_grouped_string();
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "\nRESCUE CODE: {}\n\n\
         Write it down on paper now and keep it offline. It is shown only this once. It is\n\
         the only way to recover the identity if the password is lost, and sites ask for\n\
         it to re-enable or remove the identity.\n",
        grouped.as_str()
    )
    .and_then(|()| stdout.flush())
    .map_err(Error::Output)
}

/// The user types the code back from paper: the screen is cleared first so it
/// cannot simply be copied, and again afterwards so it does not linger.
fn confirm_code(code: &RescueCode) -> Result<()> {
    prompt::read_line(
        "Press Enter when you have written it down (the screen will be cleared). ",
        "confirmation",
    )?;
    prompt::clear_screen();
    for attempt in 1..=CONFIRM_ATTEMPTS {
        let typed = prompt::read_line(
            "Type the rescue code from your paper (dashes and spaces optional): ",
            "rescue code",
        )?;
        let problem = match RescueCode::parse(&typed) {
            Ok(typed) if typed == *code => {
                prompt::clear_screen();
                prompt::say("Rescue code confirmed.");
                return Ok(());
            }
            Ok(_) => "that is not the code shown".to_owned(),
            Err(e) => e.to_string(),
        };
        let left = CONFIRM_ATTEMPTS - attempt;
        if left > 0 {
            prompt::say(&format!(
                "No match: {problem}. Check your paper and try again ({left} left)."
            ));
        } else {
            prompt::say(&format!("No match: {problem}."));
        }
    }
    prompt::clear_screen();
    Err(Error::RescueCodeMismatch)
}
