//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends —
//! logout, revocation on the account page, the identity disabled, removed or
//! replaced, expiry — each relying party it signed in that registered a
//! `backchannel_logout_uri` is sent a logout token naming the person
//! (`sub`) and the session (`sid`), so that it ends its own session too.
//!
//! The deliveries are written by the database in the transaction that
//! deletes the session (a trigger, migration 8), into the outbox login
//! events use, so they are retried with the same backoff, survive restarts,
//! and are sent by one instance at a time. This worker signs each logout
//! token when it sends it (with the key that signs at that moment) and POSTs
//! it as `logout_token=`; any 2xx is success (the specification asks for
//! 200; some frameworks answer 204).

use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::keys::SigningAlg;
use crate::app::AppState;
use crate::store::Delivery;
use crate::webhooks::deliver::{drain, failure_of, http_client};

/// The outbox endpoint of a client's logout deliveries.
pub fn outbox_endpoint(client_id: &str) -> String {
    format!("oidc-logout:{client_id}")
}

/// What the database wrote for a delivery.
#[derive(Debug, Deserialize)]
struct Ended {
    client_id: String,
    sub: String,
    sid: String,
}

/// The event a logout token carries.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid: it is delivered now, or not at all.
const LOGOUT_TOKEN_LIFETIME: u64 = 120;

/// The claims of a logout token (§2.4). No `nonce`: it must never pass for
/// an ID token.
#[derive(Debug, Serialize)]
struct LogoutClaims<'a> {
    iss: String,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    sub: &'a str,
    sid: &'a str,
    events: serde_json::Value,
}

/// Runs the worker until `stop` flips to `true` (returns at once when no
/// client registered a back-channel logout URI).
pub async fn run(state: AppState, stop: watch::Receiver<bool>) {
    let Some(provider) = state.oidc.clone() else {
        return;
    };
    let targets: Vec<(String, String)> = provider
        .config
        .clients
        .iter()
        .filter_map(|client| {
            let uri = client.backchannel_logout_uri.clone()?;
            Some((client.id.clone(), uri))
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    let settings = state.config.webhook_delivery.clone();
    let Some(http) = http_client(&settings, "back-channel logout") else {
        return;
    };
    let keys = targets.iter().map(|(id, _)| outbox_endpoint(id)).collect();
    let (state_ref, http, targets) = (&state, &http, &targets);
    drain(
        &state,
        stop,
        keys,
        &settings,
        move |index, delivery| async move {
            let (client_id, uri) = &targets[index];
            send(state_ref, http, client_id, uri, delivery).await
        },
    )
    .await;
}

/// One attempt: the logout token signed now and POSTed.
async fn send(
    state: &AppState,
    http: &reqwest::Client,
    client_id: &str,
    uri: &str,
    delivery: Delivery,
) -> Option<String> {
    let Some(provider) = state.oidc.as_deref() else {
        return Some("the provider is off".into());
    };
    let ended = match serde_json::from_str::<Ended>(&delivery.body) {
        Ok(ended) if ended.client_id == client_id => ended,
        _ => return Some("unreadable outbox row".into()),
    };
    let now = state.clock.now();
    let mut jti = [0u8; 16];
    OsRng.fill_bytes(&mut jti);
    let claims = LogoutClaims {
        iss: state.issuer(),
        aud: client_id,
        iat: now,
        exp: now + LOGOUT_TOKEN_LIFETIME,
        jti: sqrl_core::base64url::encode(jti),
        sub: &ended.sub,
        sid: &ended.sid,
        events: serde_json::json!({ LOGOUT_EVENT: {} }),
    };
    let alg = provider
        .config
        .client(client_id)
        .map_or(SigningAlg::Es256, |client| client.id_token_alg);
    let token = match provider
        .keys
        .sign(&state.store, &claims, alg, Some("logout+jwt"), now)
        .await
    {
        Ok(token) => token,
        Err(error) => return Some(error.to_string()),
    };
    let sent = http.post(uri).form(&[("logout_token", token)]).send().await;
    let failure = failure_of(sent);
    if failure.is_none() {
        state.metrics.oidc("backchannel-logout-delivered");
        tracing::info!(client = client_id, "relying party told of a session's end");
    }
    failure
}
