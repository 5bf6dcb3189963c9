//! The one error type of message parsing and writing.

use super::{Tif, TifError, VersionError};
use crate::base64url::Base64Error;
use crate::keys::{KeyError, SignerError};
use crate::params::ParamError;
use crate::url::UrlError;

/// Why a protocol message was rejected or could not be written.
///
/// `field` and `name` say where: `field` is the message part (`"client"`,
/// `"server"`, `"reply"`, `"body"`), `name` the parameter (`"idk"`, `"tif"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input is longer than the limit for its part (checked before decoding).
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The message part.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// A part is not valid base64url.
    #[error("{field}: {source}")]
    Base64 {
        /// The message part.
        field: &'static str,
        /// The decoding failure.
        source: Base64Error,
    },
    /// A decoded part is not UTF-8.
    #[error("{field} is not UTF-8")]
    NotUtf8 {
        /// The message part.
        field: &'static str,
    },
    /// A decoded part is not a valid `name=value` list (duplicate names, a line
    /// without `=`, a control character in a value...).
    #[error("{field}: {source}")]
    Params {
        /// The message part.
        field: &'static str,
        /// The list failure.
        source: ParamError,
    },
    /// `ver=` is not the first line (SPEC 2.2, 3).
    #[error("{field}: ver= is not the first line")]
    VersionNotFirst {
        /// The message part.
        field: &'static str,
    },
    /// A required parameter is missing.
    #[error("{field}: required {name}= is missing")]
    Missing {
        /// The message part.
        field: &'static str,
        /// The parameter.
        name: &'static str,
    },
    /// A parameter value is malformed.
    #[error("invalid {name}= value: {reason}")]
    InvalidValue {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key or signature parameter is malformed.
    #[error("invalid {name}=: {source}")]
    Key {
        /// The parameter.
        name: &'static str,
        /// The key failure.
        source: KeyError,
    },
    /// A `ver=` list is malformed.
    #[error("invalid ver=: {0}")]
    Version(#[from] VersionError),
    /// A `tif=` value is malformed.
    #[error("invalid tif=: {0}")]
    Tif(#[from] TifError),
    /// A URL (the first `server=` value) is malformed.
    #[error("invalid URL: {0}")]
    Url(#[from] UrlError),
    /// `cmd=` names no known command.
    #[error("unknown command")]
    UnknownCommand,
    /// A parameter is present without the one it needs (`vuk` without `suk`,
    /// `pins` without `pidk`...).
    #[error("{present}= requires {required}=")]
    Requires {
        /// The parameter present.
        present: &'static str,
        /// The parameter missing.
        required: &'static str,
    },
    /// A form field of the POST body appears more than once.
    #[error("form field {0}= appears more than once")]
    DuplicateField(&'static str),
    /// The POST body is not a `name=value&...` form.
    #[error("malformed form body")]
    MalformedForm,
    /// A signing key does not belong to the public key the request names.
    #[error("signing key does not match {0}=")]
    KeyMismatch(&'static str),
    /// A signer gave no signature (one outside this process did not answer).
    #[error("could not sign: {0}")]
    Signer(#[from] SignerError),
}

impl MessageError {
    /// The TIF a server answers this error with (SPEC 3.2): an unknown command is
    /// "function not supported" (`0x50`); everything else is a malformed request,
    /// "client failure" (`0xC0`).
    pub fn tif(&self) -> Tif {
        match self {
            MessageError::UnknownCommand => Tif::FUNCTION_NOT_SUPPORTED | Tif::COMMAND_FAILED,
            MessageError::Version(VersionError::NoCommonVersion) => {
                Tif::FUNCTION_NOT_SUPPORTED | Tif::COMMAND_FAILED
            }
            _ => Tif::CLIENT_FAILURE | Tif::COMMAND_FAILED,
        }
    }
}
