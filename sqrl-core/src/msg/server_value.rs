//! The `server=` value of a request (SPEC 2.3).

use super::{MessageError, ServerReply};
use crate::base64url;
use crate::url::SqrlUrl;

/// Longest `server=` value accepted: a reply body, or the base64url of a URL of
/// at most [`crate::url::MAX_URL_LEN`] characters.
pub const MAX_SERVER_VALUE_LEN: usize = super::MAX_REPLY_LEN;

/// What a received `server=` value holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum ServerValue {
    /// The first query of a transaction: the SQRL URL exactly as the client got it.
    Url(SqrlUrl),
    /// A later request: the previous reply body, verbatim.
    Reply(ServerReply),
}

impl ServerValue {
    /// The `server=` value of a first query: `b64u(url exactly as received)`.
    pub fn for_url(url: &SqrlUrl) -> String {
        base64url::encode(url.as_str())
    }

    /// The `server=` value of a later request: the previous reply body, verbatim
    /// (PITFALLS 2: never decoded and re-encoded).
    pub fn for_reply(reply: &ServerReply) -> String {
        reply.as_str().to_owned()
    }

    /// Decodes a received `server=` value (server side). A value whose text starts
    /// with `sqrl://` or `qrl://` is a URL; anything else must be a reply.
    ///
    /// This only says what the client claims it saw: a server must still compare
    /// the value with what it sent (SPEC 3.2 step 1).
    pub fn parse(value: &str) -> Result<Self, MessageError> {
        if value.len() > MAX_SERVER_VALUE_LEN {
            return Err(MessageError::TooLong {
                field: "server",
                max: MAX_SERVER_VALUE_LEN,
            });
        }
        let bytes = base64url::decode(value).map_err(|source| MessageError::Base64 {
            field: "server",
            source,
        })?;
        if bytes.starts_with(b"sqrl://") || bytes.starts_with(b"qrl://") {
            let text =
                String::from_utf8(bytes).map_err(|_| MessageError::NotUtf8 { field: "server" })?;
            Ok(ServerValue::Url(SqrlUrl::parse(&text)?))
        } else {
            Ok(ServerValue::Reply(ServerReply::parse(value)?))
        }
    }
}
