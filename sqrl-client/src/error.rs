//! The errors the `sqrl` command reports, and the exit code each one maps to.
//!
//! Every variant says what was being attempted; its cause (if any) is kept as
//! the error source so `main` can print the whole chain on one line.

use std::io;
use std::path::PathBuf;

use sqrl_core::msg::{MessageError, Tif};
use sqrl_core::url::UrlError;

pub use crate::qr::QrFailure;
pub use crate::refusal::{AddressMismatch, Refusal};

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
    /// The platform names no configuration directory.
    #[error(
        "no usable configuration directory: the platform has no configuration directory; use --config-dir"
    )]
    NoConfigDir,
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
    /// More than one secret was to be read from standard input.
    #[error(
        "only one of --password-file, --new-password-file and --rescue-code-file can read standard input"
    )]
    StdinClaimedTwice,
    /// A text file (password, rescue code) is not UTF-8.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A `--ca-cert` file holds something that is not PEM.
    #[error("{}: not a PEM certificate file: {reason}", path.display())]
    CaCertNotPem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: ureq::Error,
    },
    /// A `--ca-cert` file holds no certificate.
    #[error("{}: no PEM certificate found", path.display())]
    CaCertEmpty {
        /// The file.
        path: PathBuf,
    },
    /// A binary export would go to a terminal (or mix with `--json` output).
    #[error("the {format} export is binary; use --output FILE or redirect standard output")]
    BinaryExportToTerminal {
        /// The export format.
        format: String,
    },
    /// `--site` is a URL that does not parse.
    #[error("{site}: {error}")]
    InvalidSiteUrl {
        /// As given.
        site: String,
        /// Why.
        error: UrlError,
    },
    /// `--site` is empty or holds blanks or control characters.
    #[error("{0:?} is not a site")]
    NotASite(String),
    /// A `sqrl://` or `qrl://` argument that does not parse.
    #[error("invalid SQRL link: {0}")]
    InvalidLink(UrlError),
    /// A login target that is neither a link nor a file.
    #[error("{0:?} is neither a sqrl:// or qrl:// link nor an image file")]
    NotALinkOrImage(String),
    /// A login target that is a web address of another kind (`https://...`).
    #[error(
        "{0:?} is a web page address, not a SQRL link: use the link behind the site's \
         SQRL QR code (it starts with sqrl:// or qrl://), or a picture of that QR code"
    )]
    NotASqrlLink(String),
    /// A login target that names no existing file (and is no link).
    #[error(
        "{0}: no such file (give a sqrl:// or qrl:// link, or a PNG/JPEG picture of the \
         site's QR code)"
    )]
    NoSuchFile(String),
    /// An image given to a site command holds an exported identity, not a login link.
    #[error(
        "the QR code in {0} is an exported SQRL identity, not a login link; to add it \
         to this computer, use `sqrl identity import {0}`"
    )]
    IdentityQrNotALink(String),
    /// A `sqrl://` (HTTPS) link whose server answered in plain HTTP.
    #[error(
        "{origin} answered in plain HTTP, not HTTPS: a sqrl:// link means HTTPS (if the \
         site really serves SQRL over plain HTTP, its links start with qrl://)"
    )]
    PlainHttpSite {
        /// `https://host:port` as the link named it.
        origin: String,
    },
    /// A new password the strength check finds easy to guess.
    #[error(
        "the new password is too easy to guess{reason}; choose a longer one (a few \
         unrelated words work well), or pass --allow-weak-password"
    )]
    WeakPassword {
        /// Why, from the estimator (with a leading ": "), or empty.
        reason: String,
    },
    /// The agent could not be reached or did not answer as expected.
    #[error("{0}")]
    Agent(String),
    /// An image's QR code holds a SQRL link that does not parse.
    #[error("the QR code holds an invalid SQRL link: {0}")]
    InvalidLinkInQr(UrlError),
    /// `--button` is not a button number the protocol has.
    #[error("--button: {0}")]
    InvalidButton(MessageError),
    /// An identity could not be read.
    #[error("{context}")]
    Identity {
        /// What was being read.
        context: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A QR code could not be found, decoded or drawn.
    #[error("{0}")]
    Qr(#[from] QrFailure),
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
    Refused(#[from] Refusal),
    /// A login stopped on an IP address mismatch (see [`ExitCode::AddressMismatch`]).
    #[error("{0}")]
    AddressMismatch(#[from] AddressMismatch),
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
            | Error::NoConfigDir
            | Error::Listen { .. }
            | Error::Output(_)
            | Error::Internal(_) => ExitCode::Failure,
            Error::FileExists { .. } | Error::IdentityExists(_) => ExitCode::AlreadyExists,
            Error::InvalidName(_) | Error::NoPrompt { .. } | Error::Prompt { .. } => {
                ExitCode::Usage
            }
            Error::StdinClaimedTwice
            | Error::NotUtf8 { .. }
            | Error::CaCertNotPem { .. }
            | Error::CaCertEmpty { .. }
            | Error::BinaryExportToTerminal { .. }
            | Error::InvalidSiteUrl { .. }
            | Error::NotASite(_)
            | Error::InvalidLink(_)
            | Error::NotALinkOrImage(_)
            | Error::NotASqrlLink(_)
            | Error::IdentityQrNotALink(_)
            | Error::WeakPassword { .. }
            | Error::InvalidLinkInQr(_)
            | Error::InvalidButton(_) => ExitCode::InvalidInput,
            Error::NoSuchIdentity(_) | Error::NoIdentity | Error::NoSuchFile(_) => {
                ExitCode::NotFound
            }
            Error::PlainHttpSite { .. } => ExitCode::Network,
            Error::Agent(_) => ExitCode::Failure,
            Error::PasswordMismatch
            | Error::EmptyPassword
            | Error::RescueCodeMismatch
            | Error::MalformedRescueCode
            | Error::Identity { .. }
            | Error::Qr(_) => ExitCode::InvalidInput,
            Error::WrongPassword(_) | Error::WrongRescueCode => ExitCode::WrongSecret,
            Error::Declined => ExitCode::Declined,
            Error::Network { .. } => ExitCode::Network,
            Error::Refused(_) => ExitCode::Refused,
            Error::AddressMismatch(_) => ExitCode::AddressMismatch,
        }
    }

    /// A stable, snake-case name for what went wrong, printed as `code` with
    /// `--json`. A refused login gives the protocol's reason (see
    /// [`Refusal::code`] and [`AddressMismatch::code`]); other failures name
    /// their kind. Scripts may rely on these strings.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ReadFile { .. } => "read_file",
            Error::WriteFile { .. } => "write_file",
            Error::FileExists { .. } => "file_exists",
            Error::NoConfigDir => "no_config_dir",
            Error::InvalidName(_) => "invalid_name",
            Error::NoSuchIdentity(_) => "no_such_identity",
            Error::NoIdentity => "no_identity",
            Error::IdentityExists(_) => "identity_exists",
            Error::NoPrompt { .. } => "no_terminal",
            Error::Prompt { .. } => "terminal_read",
            Error::PasswordMismatch => "password_mismatch",
            Error::EmptyPassword => "empty_password",
            Error::RescueCodeMismatch => "rescue_code_mismatch",
            Error::WrongPassword(_) => "wrong_password",
            Error::WrongRescueCode => "wrong_rescue_code",
            Error::MalformedRescueCode => "malformed_rescue_code",
            Error::Declined => "declined",
            Error::StdinClaimedTwice => "stdin_claimed_twice",
            Error::NotUtf8 { .. } => "not_utf8",
            Error::CaCertNotPem { .. } | Error::CaCertEmpty { .. } => "invalid_ca_cert",
            Error::BinaryExportToTerminal { .. } => "binary_export_to_terminal",
            Error::InvalidSiteUrl { .. } | Error::NotASite(_) => "invalid_site",
            Error::InvalidLink(_) | Error::InvalidLinkInQr(_) => "invalid_link",
            Error::NotALinkOrImage(_) => "not_a_link_or_image",
            Error::NotASqrlLink(_) => "not_a_sqrl_link",
            Error::NoSuchFile(_) => "no_such_file",
            Error::IdentityQrNotALink(_) => "identity_qr_not_a_link",
            Error::PlainHttpSite { .. } => "plain_http_site",
            Error::WeakPassword { .. } => "weak_password",
            Error::Agent(_) => "agent",
            Error::InvalidButton(_) => "invalid_button",
            Error::Identity { .. } => "invalid_identity",
            Error::Qr(_) => "qr_code",
            Error::Network { .. } => "network",
            Error::Refused(refusal) => refusal.code(),
            Error::AddressMismatch(mismatch) => mismatch.code(),
            Error::Listen { .. } => "listen",
            Error::Output(_) => "output",
            Error::Internal(_) => "internal",
        }
    }

    /// The TIF of the site's reply behind a refused command, if any.
    pub fn tif(&self) -> Option<Tif> {
        match self {
            Error::Refused(refusal) => refusal.tif(),
            Error::AddressMismatch(mismatch) => mismatch.tif(),
            _ => None,
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
        let refused = Error::Refused(Refusal::UnknownIdentity {
            site: "x".into(),
            tif: Tif::NONE,
        });
        assert_eq!(refused.exit_code().code(), 6);
        assert_eq!(Error::NoIdentity.exit_code().code(), 8);
        let mismatch = Error::AddressMismatch(AddressMismatch::Agent { site: "x".into() });
        assert_eq!(mismatch.exit_code().code(), 10);
    }

    #[test]
    fn refusals_give_the_protocol_reason_as_code_and_tif() {
        let refused = Error::Refused(Refusal::LoginDisabled {
            site: "x".into(),
            tif: Tif::SQRL_DISABLED | Tif::CURRENT_ID_MATCH,
        });
        assert_eq!(refused.code(), "sqrl_disabled");
        assert_eq!(refused.tif().map(|tif| tif.bits()), Some(0x9));
        let mismatch = Error::AddressMismatch(AddressMismatch::Unconfirmed { site: "x".into() });
        assert_eq!(mismatch.code(), "ip_mismatch");
        assert_eq!(mismatch.tif(), Some(Tif::COMMAND_FAILED));
        assert_eq!(Error::NoIdentity.code(), "no_identity");
        assert_eq!(Error::NoIdentity.tif(), None);
    }
}
