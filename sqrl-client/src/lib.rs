//! The `sqrl` command-line client: identities on disk, logins over HTTP(S), and
//! the same-device (CPS) agent.
//!
//! The binary is a thin `main` over [`run`]; the modules are public so the
//! integration tests (and other front ends) can drive the same code.
#![deny(missing_docs)]

pub mod agent;
pub mod cli;
pub mod commands;
pub mod error;
pub mod identity;
pub mod output;
pub mod prompt;
pub mod qr;
pub mod refusal;
pub mod session;
pub mod store;
pub mod strength;
pub mod transport;

pub use commands::run;
pub use error::{Error, ExitCode, Result};
