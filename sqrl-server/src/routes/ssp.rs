//! GRC's SQRL Service Provider API (SPEC 9): `/nut.sqrl`, `/png.sqrl`,
//! `/pag.sqrl`, for site integrations written against it.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use sqrl_core::server::Nut;

use crate::app::{AppState, ClientIp};
use crate::error::AppError;
use crate::qr;
use crate::routes::login::{
    AttemptQuery, attempt_cookie, identity_check, page_state, start_attempt, user_agent,
    waiting_attempt,
};

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

/// `GET /nut.sqrl`: starts a login attempt for the calling browser (whose IP
/// is the one compared with the client's) and returns `nut`, `pag` (the
/// secret to poll with) and `exp` (seconds the nut is valid).
pub async fn nut(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let started = start_attempt(&state, ip, &user_agent(&headers)).await?;
    let exp = state.config.nut_lifetime.as_secs();
    let nut = started.nut.as_str();
    let pag = started.pag.encode();
    let response = if wants_json(&headers) {
        Json(serde_json::json!({ "nut": nut, "pag": pag, "exp": exp })).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            format!("nut={nut}&pag={pag}&exp={exp}"),
        )
            .into_response()
    };
    // A page that fetched its nut itself also holds the secret as a cookie,
    // which a same-device sign-in link is redeemed with.
    let cookies = CookieJar::new().add(attempt_cookie(&state, &started));
    Ok((cookies, response).into_response())
}

/// Query of `/png.sqrl`.
#[derive(Debug, Deserialize)]
pub struct PngQuery {
    /// The nut whose SQRL URL to draw; none mints one.
    pub nut: Option<String>,
}

/// `GET /png.sqrl[?nut=]`: the QR code of a nut's SQRL URL as PNG. Without
/// `nut` it starts an attempt and returns it in `Sqrl-Nut`, `Sqrl-Pag` and
/// `Sqrl-Exp` headers.
pub async fn png(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<PngQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (url, minted) = match query.nut.as_deref() {
        Some(text) => {
            let nut =
                Nut::parse(text).map_err(|_| AppError::bad_request("nut= is not a valid nut"))?;
            (state.endpoint.url(&nut), None)
        }
        None => {
            let started = start_attempt(&state, ip, &user_agent(&headers)).await?;
            (started.url.clone(), Some(started))
        }
    };
    let image = qr::png(&url).map_err(|e| AppError::Internal(format!("QR code: {e}")))?;
    let mut response = ([(header::CONTENT_TYPE, "image/png")], image).into_response();
    if let Some(started) = minted {
        let cookies = CookieJar::new().add(attempt_cookie(&state, &started));
        response = (cookies, response).into_response();
        let values = [
            ("sqrl-nut", started.nut.as_str().to_owned()),
            ("sqrl-pag", started.pag.encode()),
            ("sqrl-exp", state.config.nut_lifetime.as_secs().to_string()),
        ];
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    Ok(response)
}

/// `GET /pag.sqrl?nut=&pag=`: polled by a waiting page. `200` with an empty
/// body (`{"url": ""}` for JSON) while pending; the URL to navigate to once
/// the user confirmed (a single-use link that becomes a session); `410` once
/// the attempt is over (expired, rejected, collected, or taken over by the
/// client). The secret may also come from the page's cookie.
pub async fn pag(
    State(state): State<AppState>,
    Query(query): Query<AttemptQuery>,
    headers: HeaderMap,
    cookies: CookieJar,
) -> Result<Response, AppError> {
    let attempt = waiting_attempt(&state, &query.nut, query.pag.as_deref(), &cookies).await?;
    let pag = query.pag.as_deref().filter(|pag| !pag.is_empty());
    let (name, url) = page_state(&state, &attempt, pag);
    let check = identity_check(&attempt);
    let status = match name {
        "pending" | "scanned" | "confirmed" => StatusCode::OK,
        _ => StatusCode::GONE,
    };
    let url = url.unwrap_or_default();
    Ok(if wants_json(&headers) {
        (
            status,
            Json(serde_json::json!({ "url": url, "state": name, "check": check })),
        )
            .into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            url,
        )
            .into_response()
    })
}
