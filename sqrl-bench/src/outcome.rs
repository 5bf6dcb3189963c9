//! What one login produced: the time each step took, or the step where it
//! stopped and why.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqrl_core::client::ClientError;
use sqrl_core::msg::Tif;

/// A timed step of a login. The report lists them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// SSP flow: the browser's `GET /nut.sqrl`.
    Nut,
    /// Page flow: the browser's `GET /` (a new login attempt).
    Page,
    /// Page flow: opening `/login/events?nut=` until its first event.
    Stream,
    /// The phone's `POST` of `query` (retries after a transient error included).
    Query,
    /// The phone's `POST` of `ident` (retries included).
    Ident,
    /// SSP flow: polling `/pag.sqrl` from the ident reply to the URL.
    Pag,
    /// Page flow: from the phone holding its ident reply to the page's
    /// event stream delivering `confirmed`.
    Confirm,
    /// Following the URL the page got (page flow, or `--follow` in the SSP flow).
    Collect,
}

impl Step {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Step::Nut => "nut",
            Step::Page => "page",
            Step::Stream => "stream",
            Step::Query => "query",
            Step::Ident => "ident",
            Step::Pag => "pag",
            Step::Confirm => "confirm",
            Step::Collect => "collect",
        }
    }

    /// What the step measures, for the text report.
    pub fn label(self) -> &'static str {
        match self {
            Step::Nut => "GET /nut.sqrl (browser)",
            Step::Page => "GET / (login page)",
            Step::Stream => "event stream open -> first event",
            Step::Query => "POST query (phone)",
            Step::Ident => "POST ident (phone)",
            Step::Pag => "poll /pag.sqrl -> URL (browser)",
            Step::Confirm => "ident reply -> SSE confirmed",
            Step::Collect => "follow URL -> session (browser)",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a login failed, in a form that groups equal causes together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server answered with an unexpected HTTP status.
    HttpStatus(u16),
    /// A SQRL reply reported failure or undefined flags (TIF in hex).
    Tif(u32),
    /// No answer within `--timeout`.
    Timeout,
    /// The TCP connection could not be made.
    Connect,
    /// The connection broke, or the body could not be read.
    Transport(String),
    /// The answer was not what the protocol says (unparseable reply, missing
    /// field, wrong event, refused state).
    Protocol(String),
}

impl ErrorKind {
    /// A short machine-readable category.
    pub fn category(&self) -> &'static str {
        match self {
            ErrorKind::HttpStatus(_) => "http-status",
            ErrorKind::Tif(_) => "tif",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Transport(_) => "transport",
            ErrorKind::Protocol(_) => "protocol",
        }
    }

    /// A broken connection or unreadable answer, named by its innermost cause.
    pub fn transport(error: &(dyn std::error::Error + 'static)) -> Self {
        ErrorKind::Transport(clip(&root_cause(error)))
    }

    /// From the client state machine: failures that carry a TIF are grouped by
    /// it; the others by their message.
    pub fn from_client(error: &ClientError) -> Self {
        match error.tif() {
            Some(tif) => ErrorKind::Tif(tif.bits()),
            None => ErrorKind::Protocol(clip(&error.to_string())),
        }
    }

    /// A protocol error with a fixed reason.
    pub fn protocol(reason: impl Into<String>) -> Self {
        ErrorKind::Protocol(clip(&reason.into()))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::HttpStatus(status) => write!(f, "HTTP {status}"),
            ErrorKind::Tif(bits) => {
                write!(
                    f,
                    "tif {bits:x} ({})",
                    Tif::from_bits_retain(*bits).describe()
                )
            }
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Connect => f.write_str("connection refused or failed"),
            ErrorKind::Transport(reason) => write!(f, "transport: {reason}"),
            ErrorKind::Protocol(reason) => write!(f, "protocol: {reason}"),
        }
    }
}

/// The innermost cause of an error: an HTTP library's own text is often
/// only "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Keeps error texts short, so that a server answering with long varying
/// text cannot flood the report.
fn clip(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A failed login: where, why, and (when there was one) the start of the
/// offending body, so the operator can see what the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginError {
    /// The step that failed.
    pub step: Step,
    /// Why.
    pub kind: ErrorKind,
    /// The start of the reply that caused it, if any.
    pub example: Option<String>,
}

impl LoginError {
    /// A failure without a body to show.
    pub fn new(step: Step, kind: ErrorKind) -> Self {
        Self {
            step,
            kind,
            example: None,
        }
    }

    /// Keeps the start of the body that caused the failure.
    pub fn with_body(mut self, body: &str) -> Self {
        const MAX: usize = 80;
        let mut end = body.len().min(MAX);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        self.example = Some(body[..end].to_owned());
        self
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.kind)
    }
}

/// Whether the phone's identity was new at the site or returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityUse {
    /// The query found no account: `ident` carried `suk`/`vuk`.
    New,
    /// The query found the identity (TIF 0x01).
    Returning,
}

/// What one login attempt recorded on its way, failed or not.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The steps that completed, with their latency.
    pub steps: Vec<(Step, Duration)>,
    /// Time the phone spent deriving its site key, signing requests and
    /// parsing replies (kept out of the request latencies).
    pub client_work: Duration,
    /// Bytes the phone's signatures covered, over all its requests (sizes
    /// the Ed25519 floor's message).
    pub signed_bytes: usize,
    /// Requests the phone signed.
    pub signed_requests: u32,
    /// Requests resent after a transient error (TIF 0x20).
    pub retries: u32,
    /// `/pag.sqrl` requests made.
    pub polls: u32,
    /// Whether the page's `confirmed` event arrived before the phone held
    /// its ident reply (its confirm latency then counts as zero).
    pub confirmed_early: bool,
    /// New or returning identity, once the query told.
    pub identity: Option<IdentityUse>,
}

impl Trace {
    /// Notes a completed step.
    pub fn step(&mut self, step: Step, took: Duration) {
        self.steps.push((step, took));
    }

    /// Runs `work` as the phone's own computation and adds its time to
    /// [`Trace::client_work`].
    pub fn client<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let value = work();
        self.client_work += started.elapsed();
        value
    }
}
