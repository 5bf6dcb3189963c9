//! The client side of a SQRL transaction (SPEC 6), without I/O.
//!
//! A caller (a CLI, the CPS agent) drives a small state machine: it POSTs each
//! [`OutgoingRequest`] and feeds the response body back. The machine decides
//! everything the protocol fixes — `server=` echoes, `qry` paths, `ins`/`pins`
//! for a `sin`, retries after a transient error, re-queries with older
//! identities, `suk`/`vuk`/`urs` — and the caller decides what the user
//! decides: which command to send after the query, what to answer an
//! `ask`, and whether to go on after an IP mismatch. States are consumed by each transition, so commands cannot be sent
//! out of order; a choice the query outcome does not allow is a typed error.
//!
//! The machine never needs a private key itself, only signatures and indexed
//! secrets: give it [`SiteKey`](crate::keys::SiteKey)s, or signers that keep
//! the keys in another process ([`SiteSigner`](crate::keys::SiteSigner),
//! [`UrsSigner`](crate::keys::UrsSigner)), as the `sqrl agent` does.
//!
//! ```no_run
//! use sqrl_core::client::{CommandStep, Device, QueryStatus, QueryStep, Querying, TransactionOptions};
//! use sqrl_core::keys::IdentityUnlockKey;
//! use sqrl_core::url::SqrlUrl;
//! # fn post(url: &str, body: &str) -> String { unimplemented!() }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = sqrl_core::rand_core::OsRng;
//! # let iuk = IdentityUnlockKey::generate(&mut rng);
//! // From the identity file: IMK and ILK (block 1), previous IUKs (block 3).
//! let (imk, ilk) = (iuk.master_key(), iuk.lock_key());
//! let url = SqrlUrl::parse("sqrl://example.com/cli.sqrl?nut=oOB4QOFJux5Z")?;
//! let site_key = imk.site_key(url.site_key_string());
//!
//! // Let the site test the IP address before anything else (QRLJacking).
//! let options = TransactionOptions::new(Device::CrossDevice).test_ip_first(true);
//! let (mut querying, mut request) = Querying::start(url, site_key, Vec::new(), options)?;
//! # let user_insists = false;
//! let queried = loop {
//!     match querying.receive(&post(request.url(), request.body()))? {
//!         QueryStep::Send(next, next_request) => (querying, request) = (next, next_request),
//!         QueryStep::Done(queried) => break queried,
//!         QueryStep::IpMismatch(mismatch) => {
//!             // Explain that the code may be relayed by an attacker's page, and
//!             // go on only if the user insists.
//!             if !user_insists {
//!                 return Ok(());
//!             }
//!             (querying, request) = mismatch.continue_without_ip_test()?;
//!         }
//!     }
//! };
//! if queried.status() == QueryStatus::Superseded {
//!     return Ok(()); // tell the user to update this identity
//! }
//! let (mut commanding, mut request) = queried.ident(&ilk, &mut rng)?;
//! let done = loop {
//!     match commanding.receive(&post(request.url(), request.body()))? {
//!         CommandStep::Send(next, next_request) => (commanding, request) = (next, next_request),
//!         CommandStep::Done(done) => break done,
//!     }
//! };
//! println!("logged in: {}", done.tif().describe());
//! # Ok(())
//! # }
//! ```

mod error;
mod options;
mod transaction;

pub use error::ClientError;
pub use options::{Device, TransactionOptions};
pub use transaction::{
    CommandStep, Commanding, Completed, IpMismatched, OutgoingRequest, Queried, QueryStatus,
    QueryStep, Querying,
};

#[cfg(test)]
mod tests;
