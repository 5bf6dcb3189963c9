//! The login service tested from the outside: real HTTP against an
//! in-process server or the real binary, real SQLite and PostgreSQL, real
//! nginx, real third-party clients. One test binary, one module per
//! concern (`cargo test -p sqrl-server --test server durability::` runs one
//! of them): each binary links the whole service and its dependencies, so
//! one binary instead of sixteen is most of the link time of a test build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod client_command;
mod connections;
mod defences;
mod durability;
mod forward_auth;
mod forward_auth_nginx;
mod http;
mod metrics;
mod oidc;
mod oidc_apps;
mod oidc_openidconnect;
mod operations;
mod scale_out;
mod startup;
mod store_contract;
mod webhooks;
