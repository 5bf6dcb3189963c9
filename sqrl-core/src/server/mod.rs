//! The server side of SQRL, sans I/O: request validation in SPEC 3.2 order,
//! command semantics (SPEC 2.2, 8) and the reply, as values a driver stores
//! and sends.
//!
//! A driver (HTTP endpoint plus storage) does three things per `POST`:
//!
//! 1. [`Incoming::parse`] the request target, body and client IP, and **take**
//!    (read and delete) the [`Conversation`] stored under [`Incoming::nut`],
//!    plus the [`Records`] for [`Incoming::lookups`];
//! 2. [`Incoming::decide`]: the [`Decision`] holds the TIF, the account
//!    [`Mutation`] to apply atomically, and the [`BrowserOutcome`] for the
//!    waiting page;
//! 3. [`Decision::finish`] with a fresh [`Nut`]: the reply body to send and the
//!    [`Conversation`] to store under the new nut.
//!
//! Login pages start conversations with an [`Endpoint`]. [`memory::MemoryServer`]
//! is a complete reference server on this API with in-memory storage.

mod account;
mod conversation;
mod decision;
mod endpoint;
mod incoming;
pub mod memory;
mod nut;
mod policy;
#[cfg(test)]
mod tests;

pub use account::{AccountOptions, AccountRecord, Lookups, Mutation, Records};
pub use conversation::{Conversation, ServerValueDigest, WaitingBrowser};
pub use decision::{BrowserOutcome, Decision, Failure, IndexedSecrets, Issued};
pub use endpoint::{Endpoint, Invitation};
pub use incoming::Incoming;
pub use nut::{NUT_BYTES, Nut, NutError, RequestTarget};
pub use policy::{DEFAULT_RETRY_WINDOW, Policy};
