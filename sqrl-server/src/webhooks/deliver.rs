//! The delivery worker: claims due outbox rows under a lease, POSTs each to
//! its endpoint, signed, and records the outcome.
//!
//! A 2xx answer marks the row delivered. Anything else (another status, a
//! refused connection, no answer within the timeout) schedules another
//! attempt after an exponential backoff with jitter, until the configured
//! number of attempts is spent: then the row is dead (counted in the
//! metrics, kept in the outbox for the operator).
//!
//! On shutdown the worker claims nothing more and lets the POSTs in flight
//! finish (each within the timeout) and their outcome be recorded, so a
//! stopped server leaves no delivery half-done. Only a process killed
//! outright can leave a row sent but not marked: its lease runs out and it
//! is sent again, with the same `Webhook-Id`.

use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore as _};
use reqwest::Url;
use tokio::sync::watch;

use super::{EventKind, EventRoutes, SigningKey};
use crate::app::AppState;
use crate::store::Delivery;

/// Rows claimed per endpoint at a time (and POSTed concurrently).
const BATCH: u32 = 16;

/// How much longer than the POST timeout a lease lasts: room for the
/// store writes around it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The longest wait between two attempts, whatever the backoff says.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// One configured endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// Where events are POSTed (also the endpoint's name in the outbox).
    pub url: Url,
    /// The signing key (`whsec_…`).
    pub key: SigningKey,
    /// The events it receives; `None` for all.
    pub events: Option<Vec<EventKind>>,
}

/// Printed without the URL's password and query, where a receiver may
/// keep a credential of its own.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.url.clone();
        let _ = shown.set_password(None);
        shown.set_query(None);
        f.debug_struct("Endpoint")
            .field("url", &shown.as_str())
            .field("key", &self.key)
            .field("events", &self.events)
            .finish()
    }
}

/// How deliveries are attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Longest wait for an endpoint's answer.
    pub timeout: Duration,
    /// Attempts before a delivery is given up (dead).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub retry_base: Duration,
    /// How often the outbox is looked at when it had nothing due.
    pub poll: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 15,
            retry_base: Duration::from_secs(5),
            poll: Duration::from_secs(1),
        }
    }
}

/// The outbox routes of configured endpoints: which event goes where.
pub fn routes(endpoints: &[Endpoint]) -> EventRoutes {
    endpoints
        .iter()
        .fold(EventRoutes::none(), |routes, endpoint| {
            routes.with(endpoint.url.as_str(), endpoint.events.clone())
        })
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones:
/// `retry_base` doubled per earlier failure, capped at an hour,
/// then a random part of up to half of it taken off, so that deliveries that
/// failed together (an endpoint down) do not all come back at once.
pub fn backoff(settings: &DeliverySettings, attempts: u32, random: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let full = settings
        .retry_base
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    let jitter = full.mul_f64(f64::from(random) / f64::from(u32::MAX) / 2.0);
    full.saturating_sub(jitter)
}

/// Runs the worker until `stop` flips to `true` (returns at once when no
/// endpoint is configured).
pub async fn run(state: AppState, stop: watch::Receiver<bool>) {
    let endpoints: Arc<[Endpoint]> = state.config.webhooks.clone().into();
    if endpoints.is_empty() {
        return;
    }
    let settings = state.config.webhook_delivery.clone();
    let Some(client) = http_client(&settings, "webhook delivery") else {
        return;
    };
    let keys = endpoints.iter().map(|e| e.url.to_string()).collect();
    let (client, endpoints) = (&client, &endpoints);
    drain(&state, stop, keys, &settings, move |index, delivery| {
        deliver(client, &endpoints[index], delivery)
    })
    .await;
}

/// The HTTP client of a delivery worker, which follows no redirect: an
/// endpoint that moves must be reconfigured, or a redirect would resend the
/// delivery somewhere nobody chose.
pub fn http_client(settings: &DeliverySettings, what: &str) -> Option<reqwest::Client> {
    match reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(%error, "{what} cannot start its HTTP client");
            None
        }
    }
}

/// Delivers the outbox rows of the endpoints `keys` until `stop` flips to
/// `true`: claims due rows under a lease, makes one attempt of each with
/// `send` (the endpoint's index in `keys`, the row; `Some(reason)` when it
/// failed), and records each outcome.
pub async fn drain<F, Fut>(
    state: &AppState,
    mut stop: watch::Receiver<bool>,
    keys: Vec<String>,
    settings: &DeliverySettings,
    send: F,
) where
    F: Fn(usize, Delivery) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let lease = settings.timeout + LEASE_MARGIN;
    loop {
        if *stop.borrow() {
            break;
        }
        let mut claimed_any = false;
        for (index, key) in keys.iter().enumerate() {
            let now = state.clock.now();
            let lease_until = now + lease.as_secs();
            let claimed = match state
                .store
                .claim_deliveries(key, now, lease_until, BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "claiming outbox deliveries failed");
                    continue;
                }
            };
            claimed_any |= !claimed.is_empty();
            // Not raced against `stop`: POSTs in flight finish (each within
            // the timeout) and their outcome is recorded.
            futures_util::future::join_all(claimed.into_iter().map(|delivery| {
                let attempt = send(index, delivery.clone());
                async move {
                    let failure = attempt.await;
                    record_outcome(state, settings, &delivery, failure).await;
                }
            }))
            .await;
        }
        match state.store.outbox_counts().await {
            Ok(counts) => state.metrics.webhook_outbox(counts.pending, counts.dead),
            Err(error) => tracing::warn!(%error, "counting the outbox failed"),
        }
        if !claimed_any {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(settings.poll) => {}
            }
        }
    }
}

/// One attempt of one login event delivery: `Some(reason)` if it failed.
async fn deliver(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    delivery: Delivery,
) -> Option<String> {
    // The real time: the receiver compares it with its own clock.
    let timestamp = crate::clock::unix_now();
    let signature = endpoint
        .key
        .sign(&delivery.event_id, timestamp, &delivery.body);
    let sent = client
        .post(endpoint.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body)
        .send()
        .await;
    failure_of(sent)
}

/// Why an attempt failed, if it did: no answer, or not a 2xx.
pub fn failure_of(sent: Result<reqwest::Response, reqwest::Error>) -> Option<String> {
    match sent {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
        // Without the URL: it may carry a credential of the receiver's.
        Err(error) => Some(error.without_url().to_string()),
    }
}

/// Records how an attempt of `delivery` went (`failure`: why it failed):
/// delivered, due again after a [`backoff`], or dead after the last attempt.
async fn record_outcome(
    state: &AppState,
    settings: &DeliverySettings,
    delivery: &Delivery,
    failure: Option<String>,
) {
    let now = state.clock.now();
    let recorded = match failure {
        None => {
            state.metrics.webhook_delivered();
            state.store.mark_delivered(delivery.row, now).await
        }
        Some(error) => {
            let retry_at = (delivery.attempts < settings.max_attempts).then(|| {
                let wait = backoff(settings, delivery.attempts, OsRng.next_u32());
                // Whole seconds, at least one: the outbox counts in seconds.
                now + wait.as_secs().max(1)
            });
            if retry_at.is_some() {
                state.metrics.webhook_retried();
            } else {
                state.metrics.webhook_dead();
            }
            tracing::info!(
                event = %delivery.event_id,
                attempts = delivery.attempts,
                %error,
                gave_up = retry_at.is_none(),
                endpoint = %delivery.endpoint,
                "outbox delivery failed"
            );
            state.store.mark_failed(delivery.row, retry_at, error).await
        }
    };
    if let Err(error) = recorded {
        // The lease runs out and the row is claimed again: at least once.
        tracing::warn!(%error, event = %delivery.event_id, "recording an outbox delivery failed");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let settings = DeliverySettings {
            retry_base: Duration::from_secs(10),
            ..DeliverySettings::default()
        };
        assert_eq!(backoff(&settings, 1, 0), Duration::from_secs(10));
        assert_eq!(backoff(&settings, 2, 0), Duration::from_secs(20));
        assert_eq!(backoff(&settings, 4, 0), Duration::from_secs(80));
        // The most jitter takes half off.
        assert_eq!(backoff(&settings, 4, u32::MAX), Duration::from_secs(40));
        let middle = backoff(&settings, 4, u32::MAX / 2);
        assert!(middle > Duration::from_secs(40) && middle < Duration::from_secs(80));
        assert_eq!(backoff(&settings, 40, 0), MAX_BACKOFF);
    }
}
