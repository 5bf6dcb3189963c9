//! Login events for the site's own application: signed webhooks (the
//! Standard Webhooks scheme) for logins, logouts, revoked sessions and
//! changes to a SQRL identity, delivered from a durable outbox in the store.
//!
//! The store writes each event in the transaction of the change it reports
//! ([`crate::store::Outbox`]): an event is never sent for a change that was
//! rolled back, nor lost for one that was committed. The [`deliver`] worker
//! POSTs due events, retries failures with exponential backoff and jitter,
//! and gives up (the row is dead, and counted) after the configured number
//! of attempts. Delivery is at least once: a receiver drops repeats by
//! `Webhook-Id`.

pub mod deliver;
mod event;
mod sign;

pub use deliver::{DeliverySettings, Endpoint};
pub use event::{
    Event, EventKind, EventRoutes, RemovedBy, RevokeReason, SessionEnd, account_ref,
    identity_event, revoke_reason,
};
pub use sign::SigningKey;
