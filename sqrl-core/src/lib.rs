//! SQRL identities and the SQRL wire protocol, without I/O.
//!
//! Bytes and strings go in, typed values come out. A server or client drives this
//! crate and supplies the network, storage, clock-free randomness (any
//! [`rand_core::CryptoRngCore`]) and user interface.
#![deny(missing_docs)]

pub mod base56;
pub mod base64url;
pub mod client;
pub mod enhash;
pub mod enscrypt;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod msg;
pub mod params;
pub mod secret;
pub mod server;
pub mod storage;
pub mod url;

pub use rand_core;
