//! The errors the `sqrl` command reports, and the exit code each one maps to.
//!
//! Every variant says what was being attempted; its cause (if any) is kept as
//! the error source so `main` can print the whole chain on one line.

use std::io;
use std::path::PathBuf;

/// Stable process exit codes. Scripts may rely on these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything worked.
    Success = 0,
    /// A local failure not covered below (file system, internal error).
    Failure = 1,
    /// The command line was wrong, or a needed answer could not be asked for.
    Usage = 2,
    /// The password or rescue code was wrong; nothing was changed.
    WrongSecret = 3,
    /// An input (identity file, textual identity, URL, image) was invalid.
    InvalidInput = 4,
    /// The site could not be reached, or did not answer as SQRL requires.
    Network = 5,
    /// The site refused the command (TIF 0x40); nothing changed on the site.
    Refused = 6,
    /// The user declined a confirmation.
    Declined = 7,
    /// The named identity (or any identity) does not exist.
    NotFound = 8,
    /// A file that would be written already exists.
    AlreadyExists = 9,
    /// A login stopped because the site saw this device at a different network
    /// address than the browser that showed the login code, which is also what
    /// a code relayed from an attacker's page looks like: without a terminal
    /// and without `--allow-relayed-code`, or with `--same-device` (which
    /// requires the same address, and refuses a site that does not confirm
    /// it). Nobody was signed in.
    AddressMismatch = 10,
}

impl ExitCode {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A `sqrl` failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file failed.
    #[error("could not read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing a file failed.
    #[error("could not write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file that would be created already exists; it was left alone.
    #[error("{} already exists; not overwriting it", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// The configuration directory could not be determined or created.
    #[error("no usable configuration directory: {0}")]
    ConfigDir(String),
    /// An identity name is not acceptable as a file name.
    #[error(
        "invalid identity name {0:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
    )]
    InvalidName(String),
    /// No identity with that name exists.
    #[error("no identity named {0:?}; see `sqrl identity list`")]
    NoSuchIdentity(String),
    /// No identity was named and there is no default.
    #[error(
        "no identity selected: create one with `sqrl identity create`, or pick one with --identity"
    )]
    NoIdentity,
    /// An identity of that name already exists.
    #[error("an identity named {0:?} already exists")]
    IdentityExists(String),
    /// A secret could not be obtained (no terminal and no file given).
    #[error("cannot ask for the {what}: no terminal; use {flag}")]
    NoPrompt {
        /// What was needed.
        what: &'static str,
        /// The flag that supplies it.
        flag: &'static str,
    },
    /// Reading from the terminal failed.
    #[error("could not read the {what} from the terminal")]
    Prompt {
        /// What was being read.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The two entries of a new password differ.
    #[error("the passwords do not match")]
    PasswordMismatch,
    /// A new password is empty.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// The rescue code typed back does not match the one shown.
    #[error("the rescue code typed back does not match the one shown; nothing was saved")]
    RescueCodeMismatch,
    /// The password did not decrypt the identity.
    #[error("wrong password for identity {0:?} (nothing was changed)")]
    WrongPassword(String),
    /// The rescue code did not decrypt the identity.
    #[error("wrong rescue code (nothing was changed)")]
    WrongRescueCode,
    /// A rescue code is not 24 digits.
    #[error("a rescue code is 24 digits (dashes and spaces are ignored)")]
    MalformedRescueCode,
    /// The user answered no.
    #[error("cancelled")]
    Declined,
    /// An input was invalid; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// An identity could not be read.
    #[error("{context}")]
    Identity {
        /// What was being read.
        context: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A QR code could not be found or decoded.
    #[error("{0}")]
    Qr(String),
    /// A site could not be reached or answered badly.
    #[error("{context}")]
    Network {
        /// What was being attempted.
        context: String,
        /// Why.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The site refused the command.
    #[error("{0}")]
    Refused(String),
    /// A login stopped on an IP address mismatch (see [`ExitCode::AddressMismatch`]).
    #[error("{0}")]
    AddressMismatch(String),
    /// The agent could not start.
    #[error("could not listen on 127.0.0.1:{port}")]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing to standard output failed.
    #[error("could not write output")]
    Output(#[source] io::Error),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::ReadFile { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ExitCode::NotFound
            }
            Error::ReadFile { .. }
            | Error::WriteFile { .. }
            | Error::ConfigDir(_)
            | Error::Listen { .. }
            | Error::Output(_)
            | Error::Internal(_) => ExitCode::Failure,
            Error::FileExists { .. } | Error::IdentityExists(_) => ExitCode::AlreadyExists,
            Error::InvalidName(_) | Error::NoPrompt { .. } | Error::Prompt { .. } => {
                ExitCode::Usage
            }
            Error::NoSuchIdentity(_) | Error::NoIdentity => ExitCode::NotFound,
            Error::PasswordMismatch
            | Error::EmptyPassword
            | Error::RescueCodeMismatch
            | Error::MalformedRescueCode
            | Error::Invalid(_)
            | Error::Identity { .. }
            | Error::Qr(_) => ExitCode::InvalidInput,
            Error::WrongPassword(_) | Error::WrongRescueCode => ExitCode::WrongSecret,
            Error::Declined => ExitCode::Declined,
            Error::Network { .. } => ExitCode::Network,
            Error::Refused(_) => ExitCode::Refused,
            Error::AddressMismatch(_) => ExitCode::AddressMismatch,
        }
    }

    /// The message and its whole cause chain on one line: `what: why: deeper why`.
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors repeat their source's text; print each piece once.
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        line.replace(['\n', '\r'], " ")
    }

    /// A network failure with its cause.
    pub fn network(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Network {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// An identity-reading failure with its cause.
    pub fn identity(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Identity {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Results of `sqrl` operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cause_chain_is_one_line() {
        let err = Error::ReadFile {
            path: PathBuf::from("/x/y"),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "denied\nreally"),
        };
        assert_eq!(err.one_line(), "could not read /x/y: denied really");
        assert_eq!(err.exit_code(), ExitCode::Failure);
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(ExitCode::WrongSecret.code(), 3);
        assert_eq!(Error::WrongRescueCode.exit_code().code(), 3);
        assert_eq!(Error::Declined.exit_code().code(), 7);
        assert_eq!(Error::Refused("x".into()).exit_code().code(), 6);
        assert_eq!(Error::NoIdentity.exit_code().code(), 8);
        assert_eq!(Error::AddressMismatch("x".into()).exit_code().code(), 10);
    }
}
