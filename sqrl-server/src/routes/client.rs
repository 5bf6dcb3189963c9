//! `POST /cli.sqrl`: the SQRL client endpoint (SPEC 2–3, 8).
//!
//! Every protocol decision is `sqrl_core::server`'s; this driver only moves
//! state in and out of storage around it:
//!
//! 1. take (read and delete) the conversation under the request's nut: a nut
//!    is single use even when the request fails (SPEC 3.2 step 2);
//! 2. read the account records the request names;
//! 3. `Incoming::decide`;
//! 4. commit the mutation, the page update, the indexed secret
//!    ([`crate::indexed_secret`]) and the next conversation in one
//!    transaction, provided the records are unchanged (otherwise the reply
//!    becomes a transient failure, TIF 0x60, and nothing changes) and the
//!    presented `ins`/`pins` matches the stored one (otherwise the core's
//!    `Decision::into_client_failure`, TIF 0xC0, and nothing changes);
//! 5. wake the waiting page, send the reply.
//!
//! The answer to an `ask` (`btn`, SPEC 3) travels with the login: the chosen
//! button's URL is where the browser goes once it has its session, and the
//! answer is kept in the account's login history.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rand_core::OsRng;
use sqrl_core::msg::Tif;
use sqrl_core::server::{BrowserOutcome, Decision, Failure, Incoming, Issued, Nut, Records};

use crate::app::{AppState, ClientIp};
use crate::error::AppError;
use crate::indexed_secret::SecretStep;
use crate::store::{AskAnswer, AttemptUpdate, Step, StepOutcome};
use crate::token::Token;

/// Handles one client request. Always a SQRL reply (HTTP 200) unless storage
/// is down (503).
pub async fn client(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, AppError> {
    let started = Instant::now();
    let target = uri
        .path_and_query()
        .map_or(crate::app::CLIENT_PATH, |pq| pq.as_str());
    // Non-UTF-8 bytes cannot be base64url; lossy decoding keeps the request
    // malformed (TIF 0xC0) rather than unanswered.
    let body = String::from_utf8_lossy(&body);
    let incoming = Incoming::parse(target, &body, ip);
    let now = state.clock.now();

    let conversation = match incoming.nut() {
        Some(nut) => match state.retries.take(nut) {
            Some(retry) => Some(retry),
            None => state.store.take_conversation(nut).await?,
        },
        None => None,
    };
    let attempt = conversation
        .as_ref()
        .and_then(|c| c.browser.as_ref())
        .map(|browser| browser.attempt.clone());
    let lookups = incoming.lookups();
    let records = match &lookups {
        Some(lookups) => state.store.records(lookups).await?,
        None => Records::default(),
    };
    let mut decision = incoming.decide(&state.policy, conversation, records.clone(), now);
    if let Some(attempt) = &attempt {
        describe_waiting_browser(&state, &mut decision, attempt, now).await?;
    }
    let command = decision.command().map_or("malformed", |c| c.as_str());
    let button = decision.button().map(|b| b.as_str());
    // The failure's Display names the check, never a key or secret.
    let mut failure = decision.failure().map(ToString::to_string);

    let indexed_secret = SecretStep::plan(&decision, &records, lookups.as_ref());
    let answer = ask_answer(&state, &decision);
    let (update, cps_url) = page_update(&state, &decision, attempt.as_ref(), answer, now);
    let issued = finish(&state, decision.clone(), cps_url.as_deref(), now)?;
    // Records matter to the commit only when something is written on their
    // strength (a mutation or a login).
    let guarded = !decision.mutation().is_none()
        || matches!(
            update,
            AttemptUpdate::LogIn { .. } | AttemptUpdate::ClientSession { .. }
        );
    let step = Step {
        now,
        lookups: if guarded { lookups } else { None },
        seen: records.clone(),
        mutation: decision.mutation().clone(),
        next_nut: issued.nut.clone(),
        next: has_page(&issued).then(|| issued.conversation.clone()),
        attempt: update.clone(),
        indexed_secret,
        revoke_sessions: decision
            .mutation()
            .ends_sessions(state.config.revoke_sessions_on_rekey),
    };
    // When nothing was written, the reply is the core's failure for the same
    // request, with a fresh nut whose conversation is stored on its own.
    let refused = match state.store.commit_step(step).await? {
        StepOutcome::Committed => None,
        // A concurrent request changed the account first: the client retries
        // with the fresh nut (TIF 0x60).
        StepOutcome::Conflict => Some(decision.into_transient_failure()),
        // TIF 0xC0 plus the state known before the command.
        StepOutcome::IndexedSecretMismatch => {
            Some(decision.into_client_failure(Failure::IndexedSecretMismatch))
        }
    };
    let (issued, update) = match refused {
        None => (issued, update),
        Some(refused) => {
            failure = refused.failure().map(ToString::to_string);
            let issued = finish(&state, refused, None, now)?;
            if has_page(&issued) {
                state
                    .store
                    .put_conversation(issued.nut.clone(), issued.conversation.clone())
                    .await?;
            }
            (issued, AttemptUpdate::None)
        }
    };

    if !has_page(&issued) {
        state
            .retries
            .insert(&issued.nut, issued.conversation.clone());
    }

    if let Some(attempt) = &attempt {
        if !matches!(update, AttemptUpdate::None) {
            state.notifier.notify(attempt).await;
        }
    }

    let tif = issued.reply.tif().to_hex();
    state
        .metrics
        .client_request(command, &tif, started.elapsed());
    match failure {
        Some(failure) => tracing::info!(%ip, command, tif, %failure, "client request failed"),
        None => tracing::info!(%ip, command, tif, button, "client request"),
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        issued.body().to_owned(),
    )
        .into_response())
}

/// When the device is on another network than the waiting browser, tells
/// the person at the device which browser they are about to sign in (in the
/// reply's `ask`; see `Decision::describe_waiting_browser`). The attempt is
/// read only then.
async fn describe_waiting_browser(
    state: &AppState,
    decision: &mut Decision,
    attempt: &str,
    now: u64,
) -> Result<(), AppError> {
    if !decision.wants_browser_description() {
        return Ok(());
    }
    if let Some(attempt) = state.store.attempt(attempt).await? {
        let notice = crate::browser::waiting_browser_notice(
            attempt.browser_ip,
            &attempt.user_agent,
            now.saturating_sub(attempt.created_at),
        );
        decision.describe_waiting_browser(&notice);
    }
    Ok(())
}

/// Whether a login page waits behind the reply's conversation. Only then is
/// it stored durably; one with no page behind it is kept in memory instead
/// (see [`crate::retry`]): a made-up nut must not cost a database write.
fn has_page(issued: &Issued) -> bool {
    issued.conversation.browser.is_some()
}

/// Builds the reply with a fresh nut. A conversation with a waiting browser
/// lives for one nut lifetime from now (the store caps it at the attempt's
/// expiry); one without keeps the core's retry window.
fn finish(
    state: &AppState,
    decision: Decision,
    cps_url: Option<&str>,
    now: u64,
) -> Result<Issued, AppError> {
    let mut issued = decision
        .finish(Nut::generate(&mut OsRng), cps_url)
        .map_err(|error| AppError::Internal(format!("building reply: {error}")))?;
    if issued.conversation.browser.is_some() {
        issued.conversation.expires_at = now.saturating_add(state.config.nut_lifetime.as_secs());
    }
    Ok(issued)
}

/// The user's answer to the `ask` of the previous reply, with the chosen
/// button's label and URL as configured.
fn ask_answer(state: &AppState, decision: &Decision) -> Option<AskAnswer> {
    let button = decision.button()?;
    let chosen = button
        .index()
        .and_then(|index| state.policy.ask()?.buttons().get(index - 1));
    Some(AskAnswer {
        button,
        label: chosen.map(|b| b.label().to_owned()),
        url: chosen.and_then(|b| b.url()).map(str::to_owned),
    })
}

/// What the decision means for the waiting page, and the CPS URL to send.
fn page_update(
    state: &AppState,
    decision: &Decision,
    attempt: Option<&String>,
    answer: Option<AskAnswer>,
    now: u64,
) -> (AttemptUpdate, Option<String>) {
    match (decision.browser(), attempt) {
        (BrowserOutcome::Scanned, Some(attempt)) => (
            AttemptUpdate::Scanned {
                attempt: attempt.clone(),
            },
            None,
        ),
        (BrowserOutcome::LogIn { idk }, Some(attempt)) => (
            AttemptUpdate::LogIn {
                attempt: attempt.clone(),
                idk: *idk,
                answer,
                device_on_browser_network: decision.tif().contains(Tif::IP_MATCHED),
            },
            None,
        ),
        (BrowserOutcome::ClientProvidedSession { idk }, attempt) => {
            // SPEC 7, 8.2: a single-use, short-lived link that becomes a
            // session when the client's browser arrives.
            let token = Token::generate(&mut OsRng);
            let url = state.url(&format!("/login/complete?token={}", token.encode()));
            (
                AttemptUpdate::ClientSession {
                    attempt: attempt.cloned(),
                    idk: *idk,
                    token_hash: token.hash(),
                    expires_at: now.saturating_add(state.config.login_token_lifetime.as_secs()),
                    answer,
                    device_on_browser_network: decision.tif().contains(Tif::IP_MATCHED),
                },
                Some(url),
            )
        }
        (BrowserOutcome::Rejected, Some(attempt)) => (
            AttemptUpdate::Rejected {
                attempt: attempt.clone(),
            },
            None,
        ),
        _ => (AttemptUpdate::None, None),
    }
}
