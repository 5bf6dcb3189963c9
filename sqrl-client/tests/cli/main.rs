//! Integration tests: the built `sqrl` binary, run as a separate process with a
//! temporary configuration directory, against real HTTP servers on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
#[cfg(unix)]
mod agent_socket;
mod help;
mod identity;
#[path = "../common/in_process_server.rs"]
mod in_process_server;
mod login_memory;
mod login_real;
mod memory_site;
mod real_site;
#[cfg(unix)]
mod snapshots;
mod support;
#[cfg(unix)]
mod terminal;
mod vectors;
