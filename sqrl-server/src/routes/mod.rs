//! HTTP handlers, one module per area.

pub mod account;
pub mod client;
pub mod forward_auth;
pub mod login;
pub mod operator;
pub mod ops;
pub mod ssp;
