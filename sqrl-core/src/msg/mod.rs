//! Protocol messages (SPEC 2–3): client requests, server replies, TIF, versions,
//! `ask`, the POST body and the exact bytes its signatures cover.
//!
//! Every parser keeps the exact string it was given next to the typed value,
//! because signatures and the `server=` echo cover encoded strings, never a
//! re-encoding (PITFALLS 2). Every writer emits the canonical form: CRLF after
//! every line, base64url without padding, parameters in GRC's order.
//!
//! ```
//! use sqrl_core::msg::{Tif, ServerReply};
//!
//! let reply = ServerReply::builder("1WM9lfF1ST-z", Tif::CURRENT_ID_MATCH | Tif::IP_MATCHED, "/cli.sqrl?nut=1WM9lfF1ST-z")
//!     .build()?;
//! let parsed = ServerReply::parse(reply.as_str())?;
//! assert_eq!(parsed.tif().to_hex(), "5");
//! # Ok::<(), sqrl_core::msg::MessageError>(())
//! ```

mod ask;
mod body;
mod client_request;
mod command;
mod error;
mod server_reply;
mod server_value;
mod signing;
mod tif;
mod version;
mod wire;

pub use ask::{Ask, AskButton, plain_text};
pub use body::{CONTENT_TYPE, MAX_BODY_LEN, RequestBody};
pub use client_request::{ClientRequest, ClientRequestBuilder, MAX_CLIENT_VALUE_LEN};
pub use command::{Button, ClientOptions, Command};
pub use error::MessageError;
pub use server_reply::{MAX_NUT_LEN, MAX_REPLY_LEN, ServerReply, ServerReplyBuilder};
pub use server_value::{MAX_SERVER_VALUE_LEN, ServerValue};
pub use signing::signed_message;
pub use tif::{Tif, TifError};
pub use version::{PROTOCOL_VERSION, VersionError, VersionSet};

#[cfg(test)]
mod tests;
