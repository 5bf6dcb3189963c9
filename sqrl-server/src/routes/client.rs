//! `POST /cli.sqrl`: the SQRL client endpoint (SPEC 2–3, 8).
//!
//! Every protocol decision is `sqrl_core::server`'s, made inside the one
//! store step of the request ([`crate::store::Attempts::step`]); this driver
//! only moves the request in and the reply out:
//!
//! 1. parse the request (`Incoming::parse`, which checks the identity
//!    signatures before anything is locked);
//! 2. take the conversation from memory when the nut names one kept there
//!    ([`crate::retry`]);
//! 3. one store step, handed the decision (`plan`): the core decides on
//!    the conversation and records the store read, the waiting browser is
//!    described to the device when the core asks for it, the page's update
//!    (and the single-use link of a CPS login) is derived from the
//!    decision, and the reply is built, once. The store commits it all
//!    together: the account change, the indexed secret, the page's update,
//!    the next conversation;
//! 4. keep a next conversation with no page behind it in memory, wake the
//!    waiting page, send the reply.
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
use sqrl_core::msg::{Command, Tif};
use sqrl_core::server::{BrowserOutcome, Decision, Incoming, Nut};

use crate::app::{AppState, ClientIp};
use crate::error::AppError;
use crate::store::{
    AskAnswer, AttemptUpdate, ConversationSource, Decide, NextConversation, PlanError, StepInput,
    StepPlan, StepRequest, Stepped,
};
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
            Some(retry) => ConversationSource::Taken(Box::new(retry)),
            None => ConversationSource::Stored(nut.clone()),
        },
        None => ConversationSource::None,
    };
    let request = StepRequest {
        now,
        conversation,
        lookups: incoming.lookups(),
        // Most logins are returning ones: their `ident` sets the options
        // already stored and confirms the page, which changes only memory.
        likely_read_only: incoming.changes_nothing() || incoming.command() == Some(Command::Ident),
    };
    let Stepped {
        issued,
        next,
        changed_attempt,
        published,
    } = state
        .store
        .step(request, decider(state.clone(), incoming, now))
        .await?;

    if next == NextConversation::Unstored {
        state
            .retries
            .insert(&issued.nut, issued.conversation.clone());
    }
    if let Some(attempt) = &changed_attempt {
        state.notifier.notify_committed(attempt, published).await;
    }

    let command = issued.command.map_or("malformed", |c| c.as_str());
    let tif = issued.reply.tif().to_hex();
    let result = issued
        .failure
        .as_ref()
        .map_or("ok", |failure| failure.name());
    state
        .metrics
        .client_request(command, &tif, result, started.elapsed());
    // The failure's Display names the check, never a key or secret.
    match &issued.failure {
        Some(failure) => {
            tracing::info!(%ip, command, tif, result, %failure, "client request failed");
        }
        // A `query` changes nothing the site keeps and precedes every
        // action: at `info` it would double the log of every login. Its
        // count is in the metrics; `debug` shows each one.
        None if issued.command == Some(Command::Query) => {
            tracing::debug!(%ip, command, tif, "client request");
        }
        None => {
            let button = issued.button.map(|b| b.as_str());
            tracing::info!(%ip, command, tif, button, "client request");
        }
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

/// The decision the store runs inside its step. It may run more than once
/// (a step the database refused is decided again), so it keeps the parsed
/// request and decides on a copy each time.
fn decider(state: AppState, incoming: Incoming, now: u64) -> Decide {
    Box::new(move |input| plan(&state, incoming.clone(), input, now))
}

/// Decides the request on what the store read and says what to commit.
fn plan(
    state: &AppState,
    incoming: Incoming,
    input: StepInput,
    now: u64,
) -> Result<StepPlan, PlanError> {
    let StepInput {
        conversation,
        records,
        attempt,
    } = input;
    let waiting = conversation
        .as_ref()
        .and_then(|c| c.browser.as_ref())
        .map(|browser| browser.attempt.clone());
    let mut decision = incoming.decide(&state.policy, conversation, records, now);
    // When the device is on another network than the waiting browser, the
    // person at the device is told which browser they are about to sign in
    // (in the reply's `ask`): a code relayed from someone else's screen names
    // a browser they do not recognise.
    if let Some(attempt) = attempt.filter(|_| decision.wants_browser_description()) {
        let notice = crate::browser::waiting_browser_notice(
            attempt.browser_ip,
            &attempt.user_agent,
            now.saturating_sub(attempt.created_at),
        );
        decision.describe_waiting_browser(&notice);
    }
    let answer = ask_answer(state, &decision);
    let (update, cps_url) = page_update(state, &decision, waiting, answer, now);
    let revoke_sessions = decision
        .mutation()
        .ends_sessions(state.config.revoke_sessions_on_rekey);
    let issued = decision
        .finish(Nut::generate(&mut OsRng), cps_url.as_deref())
        .map_err(PlanError)?;
    Ok(StepPlan {
        issued,
        attempt: update,
        revoke_sessions,
    })
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
    attempt: Option<String>,
    answer: Option<AskAnswer>,
    now: u64,
) -> (AttemptUpdate, Option<String>) {
    match (decision.browser(), attempt) {
        (BrowserOutcome::Scanned, Some(attempt)) => (AttemptUpdate::Scanned { attempt }, None),
        (BrowserOutcome::LogIn { idk }, Some(attempt)) => (
            AttemptUpdate::LogIn {
                attempt,
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
                    attempt,
                    idk: *idk,
                    token_hash: token.hash(),
                    expires_at: now.saturating_add(state.config.login_token_lifetime.as_secs()),
                    answer,
                    device_on_browser_network: decision.tif().contains(Tif::IP_MATCHED),
                },
                Some(url),
            )
        }
        (BrowserOutcome::Rejected, Some(attempt)) => (AttemptUpdate::Rejected { attempt }, None),
        _ => (AttemptUpdate::None, None),
    }
}
