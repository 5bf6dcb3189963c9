//! Test harness: an in-process server on 127.0.0.1:0 with a temporary SQLite
//! file ([`harness`]), a browser that keeps its cookies by hand ([`browser`]),
//! a SQRL client built on `sqrl_core` keys and message types that can also
//! misbehave on purpose ([`client`]), and load from raw sockets: floods of
//! connections that never finish a request, and a whole login ([`load`]);
//! a person going through the OpenID Connect provider's pages ([`oidc`]);
//! and a PostgreSQL schema of a test's own ([`postgres`]).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod browser;
mod client;
mod harness;
mod load;
pub mod nginx;
pub mod oidc;
mod postgres;

pub use browser::*;
pub use client::*;
#[allow(unused_imports)]
pub use harness::*;
// Only some test binaries drive load.
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use postgres::*;
