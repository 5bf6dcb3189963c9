//! One SQRL transaction with a site, driven over a [`Transport`]: query, show
//! the user what the site said, then `ident`, `disable`, `enable` or `remove`.
//!
//! All protocol decisions are `sqrl_core::client`'s; this module supplies the
//! network, the keys, and the user's answers (through [`Ui`]).

use rand_core::CryptoRngCore;
use serde_json::json;
use sqrl_core::client::{
    ClientError, CommandStep, Commanding, Completed, Device, OutgoingRequest, Queried, QueryStatus,
    QueryStep, Querying, TransactionOptions,
};
use sqrl_core::keys::{IdentityLockKey, IdentityUnlockKey, SiteKey};
use sqrl_core::msg::{Ask, Button, plain_text};
use sqrl_core::url::{SiteKeyString, SqrlUrl};

use crate::error::{Error, Result};
use crate::transport::Transport;

/// Most requests one transaction may send (queries over four previous identities,
/// one retry each, and the command with its retry); a server that wants more is
/// looping.
const MAX_REQUESTS: usize = 16;

/// What the user wants done at the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `ident`: log in (creating or moving the association as needed).
    Login,
    /// `disable`.
    Disable,
    /// `enable` (rescue code).
    Enable,
    /// `remove` (rescue code).
    Remove,
}

impl Action {
    /// The verb shown in confirmations.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Login => "log in to",
            Action::Disable => "disable SQRL login at",
            Action::Enable => "re-enable SQRL login at",
            Action::Remove => "remove this identity from",
        }
    }
}

/// The keys a transaction needs from an unlocked identity.
pub trait IdentityKeys {
    /// The current identity's key for a site.
    fn site_key(&self, site: &SiteKeyString) -> SiteKey;
    /// The previous identities' keys for a site, newest first.
    fn previous_site_keys(&self, site: &SiteKeyString) -> Vec<SiteKey>;
    /// The Identity Lock Key (to create associations).
    fn lock_key(&self) -> IdentityLockKey;
    /// The IUK of previous identity `index` (0 = newest).
    fn previous_unlock_key(&self, index: usize) -> Option<IdentityUnlockKey>;
    /// The identity's `sqrlonly` and `hardlock` requests (S4 option flags).
    fn sqrl_only_and_hard_lock(&self) -> (bool, bool) {
        (false, false)
    }
}

/// What the query phase learned, for the user to see before anything changes.
#[derive(Debug, Clone)]
pub struct QuerySummary {
    /// What will be done.
    pub action: Action,
    /// The site key string: host plus any `x=` path, plus the Alt-ID if any.
    pub site: String,
    /// What the site knows.
    pub status: QueryStatus,
    /// Whether the site saw this client at the browser's IP address.
    pub ip_matched: bool,
    /// Whether the transaction is same-device (CPS).
    pub same_device: bool,
    /// The site's question, if any.
    pub ask: Option<Ask>,
}

impl QuerySummary {
    /// What the site knows, in words.
    pub fn status_text(&self) -> String {
        match self.status {
            QueryStatus::Known => "The site knows this identity.".to_owned(),
            QueryStatus::KnownByPrevious { previous } => format!(
                "The site knows a previous identity of yours (#{}); logging in moves it to the current identity.",
                previous + 1
            ),
            QueryStatus::Unknown => {
                "The site does not know this identity; logging in creates a new association."
                    .to_owned()
            }
            QueryStatus::Disabled { .. } => {
                "SQRL login is disabled for this identity at this site.".to_owned()
            }
            QueryStatus::Superseded => "This identity has been superseded at this site.".to_owned(),
        }
    }

    /// The warning to show about the IP test, if any.
    pub fn ip_warning(&self) -> Option<&'static str> {
        match (self.ip_matched, self.same_device) {
            (true, _) => None,
            // noiptest was not sent, so the server would have failed the query
            // already; kept for completeness.
            (false, true) => Some(
                "The site saw a different network address than the browser's: the login page may not be the one in your browser.",
            ),
            (false, false) => Some(
                "The site saw a different network address than the browser that shows the code: expected when scanning with another device, but make sure the page is one you opened yourself.",
            ),
        }
    }

    /// The summary as lines of text, for a terminal.
    pub fn to_text(&self) -> String {
        let mut text = format!("Site: {}\n{}\n", self.site, self.status_text());
        if let Some(warning) = self.ip_warning() {
            text.push_str("Warning: ");
            text.push_str(warning);
            text.push('\n');
        }
        if let Some(ask) = &self.ask {
            text.push_str("The site asks: ");
            text.push_str(&plain_text(ask.message()));
            text.push('\n');
            for (index, button) in ask.buttons().iter().enumerate() {
                text.push_str(&format!(
                    "  [{}] {}\n",
                    index + 1,
                    plain_text(button.label())
                ));
            }
        }
        text
    }
}

/// The user's side of a transaction.
pub trait Ui {
    /// Shows the query outcome and asks whether to go on; `Err(Error::Declined)` stops.
    fn confirm(&mut self, summary: &QuerySummary) -> Result<()>;
    /// Answers the site's question.
    fn answer(&mut self, ask: &Ask) -> Result<Button>;
    /// The current identity's IUK, from the rescue code (for `enable`/`remove`).
    fn unlock_key(&mut self) -> Result<IdentityUnlockKey>;
}

/// How a transaction ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was done.
    pub action: Action,
    /// The site key string (domain part).
    pub site: String,
    /// What the query found.
    pub status: QueryStatus,
    /// The final reply, if a command was sent (`None`: nothing needed doing).
    pub completed: Option<Completed>,
    /// The button sent in answer to an `ask`.
    pub button: Option<Button>,
    /// What happened, in words.
    pub message: String,
}

impl Outcome {
    /// The session URL the site returned for a same-device login.
    pub fn cps_url(&self) -> Option<&str> {
        self.completed.as_ref().and_then(Completed::cps_url)
    }

    /// The outcome as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let tif = self.completed.as_ref().map(Completed::tif);
        json!({
            "action": match self.action {
                Action::Login => "login",
                Action::Disable => "disable",
                Action::Enable => "enable",
                Action::Remove => "remove",
            },
            "site": self.site,
            "known": match self.status {
                QueryStatus::Known | QueryStatus::Disabled { previous: None } => "current",
                QueryStatus::KnownByPrevious { .. } | QueryStatus::Disabled { previous: Some(_) } => "previous",
                QueryStatus::Unknown => "unknown",
                QueryStatus::Superseded => "superseded",
            },
            "changed": self.completed.is_some(),
            "tif": tif.map(|t| t.to_hex()),
            "tif_text": tif.map(|t| t.describe()),
            "button": self.button.map(|b| b.as_str()),
            "cps_url": self.cps_url(),
            "message": self.message,
        })
    }
}

/// What one transaction is to do.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The site's SQRL URL.
    pub url: SqrlUrl,
    /// An Alt-ID selecting a different identity at the site.
    pub alt_id: Option<String>,
    /// The command to send after the query.
    pub action: Action,
    /// CPS (same device) or `noiptest` (another device).
    pub device: Device,
}

/// Runs one transaction.
pub fn run(
    transport: &mut dyn Transport,
    transaction: Transaction,
    keys: &dyn IdentityKeys,
    ui: &mut dyn Ui,
    rng: &mut impl CryptoRngCore,
) -> Result<Outcome> {
    let Transaction {
        url,
        alt_id,
        action,
        device,
    } = transaction;
    let site = match alt_id.as_deref() {
        Some(alt) => url.site_key_string().clone().with_alt_id(alt),
        None => url.site_key_string().clone(),
    };
    let site_text = site.to_string();
    let (sqrl_only, hard_lock) = keys.sqrl_only_and_hard_lock();
    let options = TransactionOptions::new(device)
        .sqrl_only(sqrl_only)
        .hard_lock(hard_lock);
    let mut budget = MAX_REQUESTS;

    let (mut querying, mut request) = Querying::start(
        url,
        keys.site_key(&site),
        keys.previous_site_keys(&site),
        options,
    )
    .map_err(|e| client_error(&site_text, e))?;
    let mut queried = loop {
        let body = send(transport, &request, &mut budget)?;
        match querying
            .receive(&body)
            .map_err(|e| client_error(&site_text, e))?
        {
            QueryStep::Send(next, next_request) => (querying, request) = (next, next_request),
            QueryStep::Done(queried) => break queried,
        }
    };

    let status = queried.status();
    let summary = QuerySummary {
        action,
        site: site_text.clone(),
        status,
        ip_matched: queried.ip_matched(),
        same_device: device == Device::SameDevice,
        ask: queried.ask().cloned(),
    };
    if status == QueryStatus::Superseded {
        return Err(Error::Refused(format!(
            "this identity has been replaced by a newer one at {site_text}; import the current identity on this device"
        )));
    }
    // Nothing to do: say so instead of sending a command the site would refuse.
    let nothing = match (action, status) {
        (Action::Disable, QueryStatus::Disabled { .. }) => {
            Some(format!("SQRL login is already disabled at {site_text}."))
        }
        (Action::Enable, QueryStatus::Known) => {
            Some(format!("SQRL login is already enabled at {site_text}."))
        }
        _ => None,
    };
    if let Some(message) = nothing {
        return Ok(Outcome {
            action,
            site: site_text,
            status,
            completed: None,
            button: None,
            message,
        });
    }
    check_possible(action, status, &site_text)?;
    ui.confirm(&summary)?;
    let mut button = None;
    if let Some(ask) = summary.ask.as_ref() {
        let answer = ui.answer(ask)?;
        queried
            .answer_ask(answer)
            .map_err(|e| client_error(&site_text, e))?;
        button = Some(answer);
    }

    let (mut commanding, mut request) =
        start_command(queried, action, keys, ui, rng).map_err(|e| match e {
            Failure::Client(e) => client_error(&site_text, e),
            Failure::Local(e) => e,
        })?;
    let completed = loop {
        let body = send(transport, &request, &mut budget)?;
        match commanding
            .receive(&body)
            .map_err(|e| client_error(&site_text, e))?
        {
            CommandStep::Send(next, next_request) => (commanding, request) = (next, next_request),
            CommandStep::Done(done) => break done,
        }
    };
    let message = success_message(action, status, &site_text);
    Ok(Outcome {
        action,
        site: site_text,
        status,
        completed: Some(completed),
        button,
        message,
    })
}

enum Failure {
    Client(ClientError),
    Local(Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn start_command(
    queried: Queried,
    action: Action,
    keys: &dyn IdentityKeys,
    ui: &mut dyn Ui,
    rng: &mut impl CryptoRngCore,
) -> std::result::Result<(Commanding, OutgoingRequest), Failure> {
    Ok(match (action, queried.status()) {
        (Action::Login, QueryStatus::KnownByPrevious { previous }) => {
            let piuk = keys.previous_unlock_key(previous).ok_or_else(|| {
                Failure::Local(Error::Internal(format!(
                    "previous identity #{} is not in this identity file",
                    previous + 1
                )))
            })?;
            queried.ident_replacing_previous(&keys.lock_key(), &piuk, rng)?
        }
        (Action::Login, _) => queried.ident(&keys.lock_key(), rng)?,
        (Action::Disable, _) => queried.disable()?,
        (Action::Enable, _) => {
            let iuk = ui.unlock_key().map_err(Failure::Local)?;
            queried.enable(&iuk)?
        }
        (Action::Remove, _) => {
            let iuk = ui.unlock_key().map_err(Failure::Local)?;
            queried.remove(&iuk)?
        }
    })
}

/// Refuses, before asking the user anything, commands the query outcome rules out.
fn check_possible(action: Action, status: QueryStatus, site: &str) -> Result<()> {
    let problem = match (action, status) {
        (Action::Login, QueryStatus::Disabled { .. }) => Some(format!(
            "SQRL login is disabled for this identity at {site}; re-enable it with `sqrl enable` and your rescue code"
        )),
        (Action::Disable | Action::Enable | Action::Remove, QueryStatus::Unknown) => {
            Some(format!("{site} does not know this identity"))
        }
        (
            Action::Disable | Action::Enable | Action::Remove,
            QueryStatus::KnownByPrevious { .. } | QueryStatus::Disabled { previous: Some(_) },
        ) => Some(format!(
            "{site} knows only a previous identity of yours; log in first to move it to this identity"
        )),
        _ => None,
    };
    match problem {
        Some(problem) => Err(Error::Refused(problem)),
        None => Ok(()),
    }
}

fn success_message(action: Action, status: QueryStatus, site: &str) -> String {
    match (action, status) {
        (Action::Login, QueryStatus::Unknown) => {
            format!("Logged in to {site}: the site now knows this identity (new association).")
        }
        (Action::Login, QueryStatus::KnownByPrevious { previous }) => format!(
            "Logged in to {site}: the site's association moved from previous identity #{} to this identity.",
            previous + 1
        ),
        (Action::Login, _) => format!("Logged in to {site}."),
        (Action::Disable, _) => format!(
            "SQRL login disabled at {site}; re-enable it with `sqrl enable` and your rescue code."
        ),
        (Action::Enable, _) => format!("SQRL login re-enabled at {site}."),
        (Action::Remove, _) => format!("This identity's association with {site} was removed."),
    }
}

fn send(
    transport: &mut dyn Transport,
    request: &OutgoingRequest,
    budget: &mut usize,
) -> Result<String> {
    if *budget == 0 {
        return Err(Error::Network {
            context: "the site kept asking for more requests; giving up".to_owned(),
            source: None,
        });
    }
    *budget -= 1;
    transport.post(request.url(), request.body())
}

/// Turns a protocol failure into the CLI's error, in words.
fn client_error(site: &str, error: ClientError) -> Error {
    match &error {
        ClientError::Message(_)
        | ClientError::Url(_)
        | ClientError::UnsupportedVersion
        | ClientError::UndefinedTif(_)
        | ClientError::ProtocolViolation(_)
        | ClientError::Key(_)
        | ClientError::MissingServerUnlockKey => {
            Error::network(format!("{site} did not answer as SQRL requires"), error)
        }
        _ => Error::Refused(format!("{site}: {error}")),
    }
}
