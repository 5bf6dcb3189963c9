//! Test harness: an in-process server on 127.0.0.1:0 with a temporary SQLite
//! file ([`harness`]), a browser that keeps its cookies by hand ([`browser`]),
//! and a SQRL client built on `sqrl_core` keys and message types that can
//! also misbehave on purpose ([`client`]).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod browser;
mod client;
mod harness;

pub use browser::*;
pub use client::*;
pub use harness::*;
