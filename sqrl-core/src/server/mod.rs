//! The server side of SQRL, sans I/O: request validation in SPEC 3.2 order,
//! command semantics (SPEC 2.2, 8), indexed secrets (SPEC 4.6) and the reply,
//! as values a driver stores and sends.
//!
//! # What a driver does
//!
//! A driver (an HTTP endpoint plus storage) makes no protocol decision of
//! its own. Per `POST` it goes through the request once, in one direction,
//! with one trip to its storage:
//!
//! 1. **Parse.** [`Incoming::parse`] the request target, body and client IP
//!    (after trusted-proxy resolution). This also checks `ids`/`pids`, the
//!    costly part of a decision, before anything is locked.
//! 2. **One transaction** (or one job of a single writer), in this order:
//!    1. lock the identities [`Incoming::lookups`] names (`idk`, and `pidk`
//!       when there is one), so that no other request for them decides at
//!       the same time: the rows of known identities, and the keys
//!       themselves (an advisory lock, say), since an identity that does
//!       not exist yet has no row to lock;
//!    2. **take** (read and delete) the [`Conversation`] stored under
//!       [`Incoming::nut`], whatever the request holds: a nut is used once,
//!       even by a request that fails (SPEC 3.2 step 2, PITFALLS 27);
//!    3. read the [`Records`] for the lookups: the accounts of `idk` and
//!       `pidk`, whether `idk` is superseded, and the indexed-secret digests
//!       kept for both under the taken conversation's [`Conversation::sin`];
//!    4. [`Incoming::decide`]: the [`Decision`] holds the TIF, the account
//!       [`Mutation`], the [`SecretWrite`] and the [`BrowserOutcome`] for the
//!       waiting page. If [`Decision::wants_browser_description`], describe
//!       the waiting browser ([`Decision::describe_waiting_browser`]; read
//!       its page's record in this transaction). For
//!       [`BrowserOutcome::ClientProvidedSession`], mint the session URL;
//!    5. [`Decision::finish`] with a fresh [`Nut`], once: the [`Issued`]
//!       reply, the next conversation (its expiry final, see
//!       [`Policy::with_nut_lifetime`]), the mutation and the secret write;
//!    6. apply [`Issued::mutation`], [`Issued::secret_write`] and the
//!       page's update, store [`Issued::conversation`] under [`Issued::nut`]
//!       (a driver may keep one with no page behind it in memory instead),
//!       and commit.
//!
//!    If the database refuses the commit for a lost race (a serialization
//!    failure, a key another transaction took first, a write that no longer
//!    applies), roll all of step 2 back and do it again: the decision is only
//!    valid against the records it was made on. After a few tries give up
//!    with a transient error of the driver's own (nothing was written, the
//!    nut is still unused).
//! 3. **Reply.** Tell the waiting page, then send [`Issued::body`].
//!
//! There is no step in which a driver checks something itself and turns the
//! decision into another: the `sin` rules, the indexed-secret comparison and
//! every TIF are decided here, from what the driver read.
//!
//! Login pages start conversations with an [`Endpoint`]. [`memory::MemoryServer`]
//! is a complete reference server on this API with in-memory storage.

mod account;
mod conversation;
mod decision;
mod endpoint;
mod failure;
mod incoming;
pub mod memory;
mod nut;
mod policy;
mod secret;
#[cfg(test)]
mod tests;

pub use account::{AccountOptions, AccountRecord, Lookups, Mutation, Records};
pub use conversation::{Conversation, ServerValueDigest, WaitingBrowser};
pub use decision::{BrowserOutcome, Decision, IndexedSecrets, Issued};
pub use endpoint::{Endpoint, Invitation};
pub use failure::Failure;
pub use incoming::Incoming;
pub use nut::{NUT_BYTES, Nut, NutError, RequestTarget};
pub use policy::{DEFAULT_RETRY_WINDOW, Policy};
pub use secret::{SecretDigest, SecretWrite};
