//! Asking the user for secrets and confirmations, with a file alternative for
//! every question so that scripts never need a terminal.
//!
//! Secrets read here live in [`Zeroizing`] buffers and are never echoed.

use std::fs;
use std::io::{self, BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use sqrl_core::secret::Password;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::strength;

/// Longest secret file read (a password or a rescue code is far shorter).
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a one-line secret from a file (`-` = standard input): the first line,
/// without its line ending.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>> {
    let mut raw = Zeroizing::new(Vec::new());
    let read = if path == Path::new("-") {
        io::stdin()
            .lock()
            .take(MAX_SECRET_FILE)
            .read_to_end(&mut raw)
    } else {
        fs::File::open(path).and_then(|f| f.take(MAX_SECRET_FILE).read_to_end(&mut raw))
    };
    read.map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&raw).map_err(|_| Error::NotUtf8 {
        path: path.to_owned(),
    })?;
    let first = text.split('\n').next().unwrap_or("");
    let first = first.strip_suffix('\r').unwrap_or(first);
    Ok(Zeroizing::new(first.to_owned()))
}

/// Whether questions can be asked on a terminal.
pub fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

fn prompt_hidden(prompt: &str, what: &'static str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|source| Error::Prompt { what, source })
}

/// Where the answers to secret questions come from.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// `--password-file`: the current password (or the password of a new identity).
    pub password_file: Option<PathBuf>,
    /// `--new-password-file`: the new password when changing it.
    pub new_password_file: Option<PathBuf>,
    /// `--rescue-code-file`.
    pub rescue_code_file: Option<PathBuf>,
    /// `--allow-weak-password`: new passwords skip the strength check.
    pub allow_weak_password: bool,
}

impl SecretSources {
    /// Whether the password is asked on the terminal (so a wrong one can be
    /// asked again) rather than read from `--password-file`.
    pub fn password_is_asked(&self) -> bool {
        self.password_file.is_none() && interactive()
    }

    /// The password of an existing identity.
    pub fn password(&self, identity: &str) -> Result<Password> {
        let text = match &self.password_file {
            Some(path) => read_secret_file(path)?,
            None if interactive() => {
                prompt_hidden(&format!("Password for identity {identity:?}: "), "password")?
            }
            None => {
                return Err(Error::NoPrompt {
                    what: "password",
                    flag: "--password-file",
                });
            }
        };
        Ok(Password::new(text.to_string()))
    }

    /// A password for a new identity (`--password-file`), asked twice on a terminal.
    pub fn new_identity_password(&self) -> Result<Password> {
        self.ask_new_password(self.password_file.as_deref(), "--password-file")
    }

    /// A replacement password (`--new-password-file`), asked twice on a terminal.
    pub fn changed_password(&self) -> Result<Password> {
        self.ask_new_password(self.new_password_file.as_deref(), "--new-password-file")
    }

    /// The password for a new identity if no question is needed for it
    /// (`--password-file`, read now); `None` if it will be asked on the terminal
    /// later; an error if it can be neither, so a command fails before it shows
    /// or computes anything.
    pub fn preread_new_identity_password(&self) -> Result<Option<Password>> {
        if self.password_file.is_none() && interactive() {
            return Ok(None);
        }
        self.new_identity_password().map(Some)
    }

    fn ask_new_password(&self, file: Option<&Path>, flag: &'static str) -> Result<Password> {
        let text = match file {
            Some(path) => read_secret_file(path)?,
            None if interactive() => ask_new_password_twice(self.allow_weak_password)?,
            None => {
                return Err(Error::NoPrompt {
                    what: "new password",
                    flag,
                });
            }
        };
        if text.is_empty() {
            return Err(Error::EmptyPassword);
        }
        if !self.allow_weak_password {
            strength::check(&text)?;
        }
        Ok(Password::new(text.to_string()))
    }

    /// The 24-digit rescue code, as typed (dashes and spaces are removed by the caller).
    pub fn rescue_code(&self) -> Result<Zeroizing<String>> {
        match &self.rescue_code_file {
            Some(path) => read_secret_file(path),
            None if interactive() => prompt_hidden("Rescue code (24 digits): ", "rescue code"),
            None => Err(Error::NoPrompt {
                what: "rescue code",
                flag: "--rescue-code-file",
            }),
        }
    }
}

/// How many times a new password may be entered before giving up.
const NEW_PASSWORD_ATTEMPTS: u32 = 3;

/// Asks for a new password and its repetition on the terminal, again after an
/// empty entry, one the strength check refuses (unless `allow_weak`), or a
/// mismatch.
fn ask_new_password_twice(allow_weak: bool) -> Result<Zeroizing<String>> {
    let mut last = Error::PasswordMismatch;
    for attempt in 1..=NEW_PASSWORD_ATTEMPTS {
        let first = prompt_hidden("New password: ", "new password")?;
        let weak = if allow_weak {
            Ok(())
        } else {
            strength::check(&first)
        };
        if first.is_empty() {
            last = Error::EmptyPassword;
        } else if let Err(weak) = weak {
            last = weak;
        } else {
            let second = prompt_hidden("Repeat the new password: ", "new password")?;
            if *first == *second {
                return Ok(first);
            }
            last = Error::PasswordMismatch;
        }
        if attempt < NEW_PASSWORD_ATTEMPTS {
            match &last {
                Error::EmptyPassword => say("The password must not be empty; try again."),
                Error::WeakPassword { .. } => say(&format!("{}. Try again.", capitalised(&last))),
                _ => say("The passwords do not match; try again."),
            }
        }
    }
    Err(last)
}

fn capitalised(error: &Error) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A line for the person at the terminal, on stderr.
pub fn say(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}

/// Clears the terminal and its scrollback, so a secret shown on it (a new
/// rescue code) does not stay readable. Does nothing unless stderr is a terminal.
pub fn clear_screen() {
    let mut stderr = io::stderr();
    if stderr.is_terminal() {
        // Erase the display and the scrollback, then home the cursor.
        let _ = write!(stderr, "\x1b[2J\x1b[3J\x1b[H");
        let _ = stderr.flush();
    }
}

/// Reads one visible line from the terminal.
pub fn read_line(prompt: &str, what: &'static str) -> Result<Zeroizing<String>> {
    let mut stderr = io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let mut line = Zeroizing::new(String::new());
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| Error::Prompt { what, source })?;
    Ok(Zeroizing::new(line.trim().to_owned()))
}

/// Asks a yes/no question; `assume_yes` (from `--yes`) answers it. Without a
/// terminal and without `--yes` the question cannot be asked, which is an error.
pub fn confirm(question: &str, assume_yes: bool) -> Result<()> {
    if assume_yes {
        return Ok(());
    }
    if !interactive() {
        return Err(Error::NoPrompt {
            what: "confirmation",
            flag: "--yes",
        });
    }
    let answer = read_line(&format!("{question} [y/N] "), "confirmation")?;
    if matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Error::Declined)
    }
}

/// Asks for a word to be typed (case and surrounding blanks aside), for a
/// decision that must not be a reflex: `y` or Enter will not do, and neither
/// will `--yes`. Without a terminal the question cannot be asked, which is an
/// error naming `flag`, the way to give the answer without one.
pub fn confirm_word(prompt: &str, word: &str, flag: &'static str) -> Result<()> {
    if !interactive() {
        return Err(Error::NoPrompt {
            what: "confirmation",
            flag,
        });
    }
    let answer = read_line(prompt, "confirmation")?;
    if answer.eq_ignore_ascii_case(word) {
        Ok(())
    } else {
        Err(Error::Declined)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_takes_first_line_without_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        fs::write(&path, "correct horse\r\nsecond line\n").unwrap();
        assert_eq!(read_secret_file(&path).unwrap().as_str(), "correct horse");
        fs::write(&path, "ünïcödé").unwrap();
        assert_eq!(read_secret_file(&path).unwrap().as_str(), "ünïcödé");
    }

    #[test]
    fn empty_new_password_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        fs::write(&path, "\n").unwrap();
        let sources = SecretSources {
            password_file: Some(path),
            ..SecretSources::default()
        };
        assert!(matches!(
            sources.new_identity_password(),
            Err(Error::EmptyPassword)
        ));
    }
}
