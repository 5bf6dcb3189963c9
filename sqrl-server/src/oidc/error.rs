//! Every refusal the provider gives, and how it travels: one table from the
//! error to its OAuth 2.0 code and HTTP status.
//!
//! At the authorization endpoint, a request whose client or redirect URI
//! cannot be trusted is refused on a page here (never sent anywhere); any
//! later refusal goes back to the client's redirect URI as `error=`. The
//! token, revocation and introspection endpoints answer with a JSON error
//! body (RFC 6749 §5.2); userinfo with `WWW-Authenticate: Bearer` (RFC 6750).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An OAuth 2.0 / OpenID Connect error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// The client did not authenticate, or not as it must.
    InvalidClient,
    /// The code or refresh token is unknown, used, expired, another
    /// client's, or fails PKCE or the redirect URI.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not one the provider has.
    UnsupportedGrantType,
    /// `response_type` other than `code`.
    UnsupportedResponseType,
    /// `openid` missing, or a scope the client may not have.
    InvalidScope,
    /// The person refused.
    AccessDenied,
    /// `prompt=none`, and the person must sign in.
    LoginRequired,
    /// `prompt=none`, and the person must consent.
    ConsentRequired,
    /// The access token is unknown, expired or revoked.
    InvalidToken,
    /// The provider failed.
    ServerError,
    /// The provider cannot answer now.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The status of a JSON error response with this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refusal: its code and a description for the relying party's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// What was wrong.
    pub description: String,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// A store or key failure, logged here and described to nobody.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "openid connect provider failed");
        Self::new(ErrorCode::ServerError, "the provider failed; try again")
    }
}

impl IntoResponse for OAuthError {
    /// The JSON error body of the token-side endpoints.
    fn into_response(self) -> Response {
        let mut response = (
            self.code.status(),
            Json(serde_json::json!({
                "error": self.code.as_str(),
                "error_description": self.description,
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        match self.code {
            // RFC 6749 §5.2: the scheme the client tried (Basic; harmless
            // when it used the body).
            ErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"sqrl-oidc\""),
                );
            }
            ErrorCode::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(error: crate::store::StoreError) -> Self {
        OAuthError::internal(error)
    }
}

impl From<super::keys::KeyError> for OAuthError {
    fn from(error: super::keys::KeyError) -> Self {
        OAuthError::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_token_failures_are_401_the_rest_400() {
        assert_eq!(ErrorCode::InvalidClient.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ErrorCode::InvalidToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ErrorCode::InvalidGrant.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::InvalidGrant.as_str(), "invalid_grant");
    }
}
