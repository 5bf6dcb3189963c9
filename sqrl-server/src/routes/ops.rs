//! `/healthz`, `/readyz`, `/metrics` and `/favicon.ico`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::routes::operator::Operator;

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// `GET /readyz`: 200 while this instance takes new work (the database
/// answers and no shutdown has begun), 503 otherwise, so a load balancer
/// drains it before it stops.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match state.store.health().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// `GET /favicon.ico`: none (204), so browsers stop asking and logs stay quiet.
pub async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "public, max-age=86400")],
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text format, for the operator only (bearer
/// token): counts of refusals and failures tell an attacker which defence
/// they are hitting.
pub async fn metrics(_: Operator, State(state): State<AppState>) -> Response {
    // What only the store knows is counted now; a store that does not
    // answer leaves the last counts and shows in /healthz instead.
    let now = state.clock.now();
    let idle_cutoff = now.saturating_sub(state.config.session_idle_timeout.as_secs());
    match (
        state.store.active_sessions(now, idle_cutoff).await,
        state.store.in_flight().await,
    ) {
        (Ok(active), Ok(in_flight)) => state.metrics.store_counts(active, in_flight),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "metrics: the store's counts are unavailable");
        }
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
