//! SQRL identities and the SQRL wire protocol, without I/O.
//!
//! Bytes and strings go in, typed values come out. A server or a client drives
//! this crate and supplies the network, the storage, the user interface and the
//! randomness (any [`rand_core::CryptoRngCore`]).
//!
//! | module | SQRL concept |
//! |---|---|
//! | [`url`] | `sqrl://` URLs, POST URLs, site key strings (SPEC 1) |
//! | [`keys`] | IUK → IMK → per-site keys, ILK, identity lock, indexed secrets (SPEC 4) |
//! | [`enhash`], [`enscrypt`] | the key-stretching functions (SPEC 4.1–4.2) |
//! | [`storage`], [`base56`] | S4 identity files, rescue codes, textual identity (SPEC 5) |
//! | [`base64url`], [`params`], [`msg`] | the wire: encodings, requests, replies, TIF (SPEC 2–3) |
//! | [`client`] | a client transaction as a state machine (SPEC 6) |
//! | [`server`] | request validation and command semantics (SPEC 3.2, 8) |
//!
//! Citations such as `SPEC 3.2` name a section of `docs/spec.md` in the
//! sqrl-rs repository, the protocol as this project implements it;
//! `PITFALLS 26` names an entry of `docs/pitfalls.md`, the interoperability
//! mistakes other implementations made. A test in this crate
//! (`tests/citations.rs`) checks that every citation in the repository
//! resolves.
//!
//! # A whole login, end to end
//!
//! A user creates an identity (protected by a password, recoverable with a
//! rescue code), and logs into a site. The site here is the in-memory
//! reference server; a real one drives [`server`] the same way over HTTP.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! use sqrl_core::client::{CommandStep, Device, QueryStatus, QueryStep, Querying, TransactionOptions};
//! use sqrl_core::secret::Password;
//! use sqrl_core::server::memory::MemoryServer;
//! use sqrl_core::server::{Endpoint, Policy};
//! use sqrl_core::storage::{CreateOptions, KdfCost, S4};
//! use sqrl_core::url::SqrlUrl;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = sqrl_core::rand_core::OsRng;
//!
//! // The user's side: a new identity. Real clients spend seconds of EnScrypt
//! // (`KdfCost::Timed`); one iteration keeps this example fast.
//! let password = Password::from("correct horse battery staple");
//! let cheap = CreateOptions {
//!     password_cost: KdfCost::Iterations(1),
//!     rescue_cost: KdfCost::Iterations(1),
//!     ..CreateOptions::default()
//! };
//! let (identity, _rescue_code) = S4::create(&mut rng, &password, &cheap, &mut |_, _| {})?;
//! let file_bytes = identity.to_bytes(); // what the client stores on disk
//!
//! // The site's side: a login page shows a QR code for a fresh nut.
//! let endpoint = Endpoint::from_origin("https://sqrl.example.com", "/cli.sqrl")?;
//! let mut site = MemoryServer::new(endpoint, Policy::new(), rng);
//! let browser_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let page = site.start_login(browser_ip, None);
//!
//! // The user scans it: unlock, derive this site's key, ask the site.
//! let unlocked = S4::parse(&file_bytes)?.unlock(&password, &mut |_, _| {})?;
//! let url = SqrlUrl::parse(&page.url)?;
//! assert_eq!(url.site_key_string().domain(), "sqrl.example.com");
//! let site_key = unlocked.master_key().site_key(url.site_key_string());
//! let options = TransactionOptions::new(Device::CrossDevice);
//! let (mut querying, mut request) = Querying::start(url, site_key, Vec::new(), options)?;
//! let post = |site: &mut MemoryServer<_>, url: &str, body: &str| {
//!     let target = url.strip_prefix("https://sqrl.example.com").unwrap_or(url);
//!     site.handle(target, body, browser_ip).body
//! };
//! let queried = loop {
//!     match querying.receive(&post(&mut site, request.url(), request.body()))? {
//!         QueryStep::Send(next, next_request) => (querying, request) = (next, next_request),
//!         QueryStep::Done(queried) => break queried,
//!         // Only with `TransactionOptions::test_ip_first`.
//!         QueryStep::IpMismatch(_) => return Err("IP mismatch".into()),
//!     }
//! };
//! assert_eq!(queried.status(), QueryStatus::Unknown); // a new user at this site
//!
//! // The user says yes: `ident` creates the association and logs the page in.
//! let (mut commanding, mut request) = queried.ident(&unlocked.lock_key(), &mut rng)?;
//! let done = loop {
//!     match commanding.receive(&post(&mut site, request.url(), request.body()))? {
//!         CommandStep::Send(next, next_request) => (commanding, request) = (next, next_request),
//!         CommandStep::Done(done) => break done,
//!     }
//! };
//! println!("{}", done.tif().describe());
//! assert_eq!(site.account_count(), 1); // the site stores public keys only
//! # Ok(())
//! # }
//! ```
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
