//! Why a client transaction stopped.

use super::QueryStatus;
use crate::keys::{KeyError, SignerError};
use crate::msg::{Button, Command, MessageError, Tif};
use crate::url::UrlError;

/// Why a transaction cannot go on. The `Display` text is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server's reply is malformed, or a request could not be built.
    #[error("malformed message: {0}")]
    Message(#[source] MessageError),
    /// The server's `qry=` is not a usable path.
    #[error("server sent an unusable address: {0}")]
    Url(#[from] UrlError),
    /// A key operation failed (e.g. the server's SUK is a low-order point).
    #[error("key error: {0}")]
    Key(#[from] KeyError),
    /// The signer that holds the identity's keys elsewhere (the `sqrl agent`)
    /// gave no signature or secret.
    #[error("the keys' holder could not sign: {0}")]
    Signer(SignerError),
    /// The server speaks no protocol version this client speaks.
    #[error("the server speaks no SQRL version this client supports")]
    UnsupportedVersion,
    /// The reply sets TIF bits undefined for v1; clients must abort (SPEC 3.1).
    #[error("the server reply has undefined flags ({0}); stopping")]
    UndefinedTif(Tif),
    /// The server saw this client at a different IP than the browser, and the
    /// request did not carry `noiptest` (tif exactly `40`, PITFALLS 26).
    #[error(
        "this device's network address differs from the browser's; sign in from the same network or scan the code with another device"
    )]
    IpMismatch,
    /// A same-device query succeeded without TIF `0x04`: the site did not
    /// confirm that this client and the browser share an IP address, which a
    /// same-device login relies on.
    #[error(
        "the site did not confirm that this device has the browser's network address ({}); a same-device login requires it",
        .0.describe()
    )]
    IpMatchUnconfirmed(Tif),
    /// Two transient errors in a row: the login page is stale (SPEC 3.1).
    #[error("the login page has expired; reload it and try again")]
    PageExpired,
    /// The identity presented was replaced by a newer one (tif `0x200`).
    #[error("this identity has been superseded at this site; update the identity on this device")]
    Superseded(Tif),
    /// The nut belongs to another identity (tif `0x100`).
    #[error("this login request belongs to a different identity ({})", .0.describe())]
    BadIdAssociation(Tif),
    /// The server does not support what was asked (tif `0x10`).
    #[error("the site does not support this operation ({})", .0.describe())]
    NotSupported(Tif),
    /// The server rejected the request as malformed or badly signed (tif `0x80`).
    #[error("the site rejected the request ({})", .0.describe())]
    Rejected(Tif),
    /// The command failed for another reason (tif `0x40`); nothing changed.
    #[error("the site refused the command ({})", .0.describe())]
    CommandFailed(Tif),
    /// SQRL is disabled for this identity at this site; only `enable` (with the
    /// rescue code) can undo that.
    #[error("SQRL login is disabled for this identity at this site")]
    Disabled,
    /// The server broke a protocol rule (e.g. claimed a previous-identity match
    /// for a query that named no previous identity).
    #[error("protocol violation by the server: {0}")]
    ProtocolViolation(&'static str),
    /// The command cannot follow a query with this outcome.
    #[error("cannot {command} after a query that found: {status:?}")]
    WrongState {
        /// The command asked for.
        command: Command,
        /// The query outcome.
        status: QueryStatus,
    },
    /// The server matched a previous identity: replacing it needs that
    /// identity's unlock key (see `Queried::ident_replacing_previous`).
    #[error(
        "the site knows a previous identity (#{previous}); its rescue code is needed to replace it"
    )]
    PreviousUnlockKeyRequired {
        /// Index of the previous identity, 0 = newest.
        previous: usize,
    },
    /// The command needs the SUK, and the server did not return one.
    #[error("the site did not return the server unlock key")]
    MissingServerUnlockKey,
    /// An answer was given where the server asked nothing.
    #[error("the site asked no question")]
    NoAsk,
    /// The chosen button does not exist in the server's question.
    #[error("the site's question has no button {0:?}")]
    NoSuchButton(Button),
}

impl ClientError {
    /// The TIF of the reply that caused the error, if one did.
    pub fn tif(&self) -> Option<Tif> {
        match self {
            ClientError::UndefinedTif(tif)
            | ClientError::Superseded(tif)
            | ClientError::BadIdAssociation(tif)
            | ClientError::NotSupported(tif)
            | ClientError::Rejected(tif)
            | ClientError::CommandFailed(tif)
            | ClientError::IpMatchUnconfirmed(tif) => Some(*tif),
            ClientError::IpMismatch => Some(Tif::COMMAND_FAILED),
            _ => None,
        }
    }
}

impl From<SignerError> for ClientError {
    /// A key the server's input rules out stays a key error, whoever signs.
    fn from(error: SignerError) -> Self {
        match error {
            SignerError::Key(key) => ClientError::Key(key),
            other => ClientError::Signer(other),
        }
    }
}

impl From<MessageError> for ClientError {
    /// A request that could not be signed is the signer's failure, not a
    /// malformed message.
    fn from(error: MessageError) -> Self {
        match error {
            MessageError::Signer(signer) => signer.into(),
            other => ClientError::Message(other),
        }
    }
}
