//! Handler errors and how they answer.
//!
//! Bad input answers 4xx with a plain message and is not logged as a failure;
//! a storage failure answers 503 with a generic body and is logged with its
//! context (STYLE 18). Nothing a client sends can produce a 500.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::{StepError, StoreError};

/// An error a handler returns.
#[derive(Debug)]
pub enum AppError {
    /// The request is wrong: the status and a message for the caller.
    Client(StatusCode, &'static str),
    /// Storage failed.
    Store(StoreError),
    /// Something the server itself produced is invalid (a bug): logged, 503.
    Internal(String),
}

impl AppError {
    /// 400 with a message.
    pub fn bad_request(message: &'static str) -> Self {
        AppError::Client(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with a message.
    pub fn not_found(message: &'static str) -> Self {
        AppError::Client(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        AppError::Store(error)
    }
}

impl From<StepError> for AppError {
    fn from(error: StepError) -> Self {
        match error {
            StepError::Store(error) => AppError::Store(error),
            // The reply could not be built from the server's own values.
            StepError::Plan(error) => AppError::Internal(format!("{error}: {}", error.0)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, message) = match self {
            AppError::Client(status, message) => (status, message),
            // A flood of page loads (or a limit set too low): not an outage,
            // and not worth an error line per refused page.
            AppError::Store(StoreError::TooManyInFlight) => {
                tracing::warn!("login refused: --max-logins-in-flight reached");
                retry_after = Some("10");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many logins in progress here, try again shortly",
                )
            }
            AppError::Store(error) => {
                // The source chain holds what the database said.
                let source = std::error::Error::source(&error).map(ToString::to_string);
                tracing::error!(%error, kind = error.kind(), source, "storage failure");
                if error.is_transient() {
                    retry_after = Some("1");
                }
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable, try again",
                )
            }
            AppError::Internal(error) => {
                tracing::error!(%error, "internal failure");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable, try again",
                )
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(seconds),
            );
        }
        response
    }
}
