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
use sqrl_core::keys::{IdentityLockKey, IdentityUnlockKey, SiteSigner, UrsSigner};
use sqrl_core::msg::{Ask, Button, Tif, plain_text};
use sqrl_core::url::{SiteKeyString, SqrlUrl};

use crate::error::{AddressMismatch, Error, Refusal, Result};
use crate::refusal::tif_flag_names;
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

/// What a transaction needs from an unlocked identity: signers for one site
/// and the public lock key. Either the identity file unlocked with its
/// password (the keys are here), or the running agent (the keys stay there,
/// and it can fail).
pub trait IdentityKeys {
    /// Signs with the current identity's key for a site.
    fn site_signer(&self, site: &SiteKeyString) -> Result<Box<dyn SiteSigner>>;
    /// Signs with the previous identities' keys for a site, newest first.
    fn previous_site_signers(&self, site: &SiteKeyString) -> Result<Vec<Box<dyn SiteSigner>>>;
    /// The Identity Lock Key (public; it creates associations).
    fn lock_key(&self) -> Result<IdentityLockKey>;
    /// Signs `urs` with previous identity `index`'s IUK (0 = newest), if that
    /// identity exists.
    fn previous_urs_signer(&self, index: usize) -> Result<Option<Box<dyn UrsSigner>>>;
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

    /// The warning to show about the IP test, if any. (A same-device query
    /// never gets here without the IP match: that is an error.)
    pub fn ip_warning(&self) -> Option<&'static str> {
        match (self.ip_matched, self.action) {
            (true, _) => None,
            // A login only gets here after the user accepted the mismatch.
            (false, Action::Login) => Some(
                "going on although the site saw a different network address than the browser's, as you chose.",
            ),
            (false, _) => Some(
                "the site saw a different network address than the browser that shows the code: expected when using another device, but make sure the page is one you opened yourself.",
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
            // In full, every line: the site may describe the browser about to
            // be signed in. Lines after the first are indented so that the
            // site's text cannot pass for this program's own lines.
            const LEAD: &str = "The site asks: ";
            text.push_str(LEAD);
            let message = display_text(ask.message());
            for (index, line) in message.split('\n').enumerate() {
                if index > 0 {
                    text.push_str(&" ".repeat(LEAD.len()));
                }
                text.push_str(line);
                text.push('\n');
            }
            for (index, button) in ask.buttons().iter().enumerate() {
                text.push_str(&format!(
                    "  [{}] {}\n",
                    index + 1,
                    display_text(button.label()).replace('\n', " ")
                ));
            }
        }
        text
    }
}

/// Text from a site made safe to print: control characters other than newline
/// ([`plain_text`]) and the Unicode bidirectional controls, which could make a
/// line read differently from what it holds, become U+FFFD.
pub fn display_text(text: &str) -> String {
    plain_text(text)
        .chars()
        .map(|c| match c {
            '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// What an IP mismatch on a login may mean, for the user to read before
/// deciding (SPEC 2.2 `noiptest`).
pub fn ip_mismatch_explanation(site: &str) -> String {
    format!(
        "\
{site} saw this request come from a different network address than the browser
that showed the login code.
  * If you are signing in a browser on another computer or network yourself (a
    computer next to you on another network, a phone on mobile data), that is
    expected.
  * If you did not open this login page yourself (someone sent you this code or
    link, or a page you did not expect showed it), it may be an attacker's login
    page relayed to you, and confirming would sign THEIR browser in as you.
"
    )
}

/// The user's side of a transaction.
pub trait Ui {
    /// Shows the query outcome and asks whether to go on; `Err(Error::Declined)` stops.
    fn confirm(&mut self, summary: &QuerySummary) -> Result<()>;
    /// Answers the site's question.
    fn answer(&mut self, ask: &Ask) -> Result<Button>;
    /// The site saw this client at another IP address than the browser that
    /// showed the code (a login, cross-device): explain
    /// ([`ip_mismatch_explanation`]) and return `Ok` only on the user's
    /// explicit say-so, which `--yes` is not.
    fn accept_ip_mismatch(&mut self, site: &str) -> Result<()>;
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
    /// Whether the site saw this client at the browser's IP address.
    pub ip_matched: bool,
    /// The identity's fingerprint at this site ([`IdentityKey::fingerprint`]),
    /// to compare with what the site shows.
    ///
    /// [`IdentityKey::fingerprint`]: sqrl_core::keys::IdentityKey::fingerprint
    pub fingerprint: String,
    /// The final reply, if a command was sent (`None`: nothing needed doing).
    pub completed: Option<Completed>,
    /// The session URL of a same-device login, checked ([`session_url`]).
    pub session_url: Option<String>,
    /// The button sent in answer to an `ask`.
    pub button: Option<Button>,
    /// What happened, in words.
    pub message: String,
}

impl Outcome {
    /// The session URL the site returned for a same-device login: an absolute
    /// http(s) URL (anything else was refused).
    pub fn cps_url(&self) -> Option<&str> {
        self.session_url.as_deref()
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
            "fingerprint": self.fingerprint,
            "ip_matched": self.ip_matched,
            "changed": self.completed.is_some(),
            "tif": tif.map(|t| t.to_hex()),
            "tif_text": tif.map(|t| t.describe()),
            "tif_flags": tif.map(tif_flag_names),
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
    /// CPS (same device, the IP must match) or another device (a login lets
    /// the site test the IP first and asks the user on a mismatch; the other
    /// commands send `noiptest`).
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
    // A login lets the site test the IP address first, so that a code relayed
    // from an attacker's page elsewhere is noticed before anyone is signed in
    // (QRLJacking). The other commands sign no browser in, so they skip the
    // test from the start, as cross-device clients do.
    let options = TransactionOptions::new(device)
        .test_ip_first(action == Action::Login)
        .sqrl_only(sqrl_only)
        .hard_lock(hard_lock);
    let mut budget = MAX_REQUESTS;
    let site_key = keys.site_signer(&site)?;
    let fingerprint = site_key.public_key().fingerprint();
    let same_device = device == Device::SameDevice;

    let (mut querying, mut request) =
        Querying::start(url, site_key, keys.previous_site_signers(&site)?, options)
            .map_err(|e| client_error(&site_text, same_device, e))?;
    let mut queried = loop {
        let body = send(transport, &request, &mut budget)?;
        match querying
            .receive(&body)
            .map_err(|e| client_error(&site_text, same_device, e))?
        {
            QueryStep::Send(next, next_request) => (querying, request) = (next, next_request),
            QueryStep::Done(queried) => break queried,
            QueryStep::IpMismatch(mismatch) => {
                ui.accept_ip_mismatch(&site_text)?;
                (querying, request) = mismatch
                    .continue_without_ip_test()
                    .map_err(|e| client_error(&site_text, same_device, e))?;
            }
        }
    };

    let status = queried.status();
    let summary = QuerySummary {
        action,
        site: site_text.clone(),
        status,
        ip_matched: queried.ip_matched(),
        same_device,
        ask: queried.ask().cloned(),
    };
    let ip_matched = summary.ip_matched;
    if status == QueryStatus::Superseded {
        return Err(Refusal::Superseded {
            site: site_text,
            tif: queried.tif(),
        }
        .into());
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
            ip_matched,
            fingerprint,
            completed: None,
            session_url: None,
            button: None,
            message,
        });
    }
    check_possible(action, status, &site_text, queried.tif())?;
    ui.confirm(&summary)?;
    let mut button = None;
    if let Some(ask) = summary.ask.as_ref() {
        let answer = ui.answer(ask)?;
        queried
            .answer_ask(answer)
            .map_err(|e| client_error(&site_text, same_device, e))?;
        button = Some(answer);
    }

    let (mut commanding, mut request) =
        start_command(queried, action, keys, ui, rng).map_err(|e| match e {
            Failure::Client(e) => client_error(&site_text, same_device, e),
            Failure::Local(e) => e,
        })?;
    let completed = loop {
        let body = send(transport, &request, &mut budget)?;
        match commanding
            .receive(&body)
            .map_err(|e| client_error(&site_text, same_device, e))?
        {
            CommandStep::Send(next, next_request) => (commanding, request) = (next, next_request),
            CommandStep::Done(done) => break done,
        }
    };
    let checked_url = match completed.cps_url() {
        Some(target) => Some(session_url(target).map_err(|problem| {
            Error::network(
                format!(
                    "{site_text} returned an unusable session address for the browser; it was not opened or shown"
                ),
                problem,
            )
        })?),
        None => None,
    };
    let message = success_message(action, status, &site_text);
    Ok(Outcome {
        action,
        site: site_text,
        status,
        ip_matched,
        fingerprint,
        completed: Some(completed),
        session_url: checked_url,
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
            let piuk = keys
                .previous_urs_signer(previous)
                .map_err(Failure::Local)?
                .ok_or_else(|| {
                    Failure::Local(Error::Internal(format!(
                        "previous identity #{} is not in this identity file",
                        previous + 1
                    )))
                })?;
            let ilk = keys.lock_key().map_err(Failure::Local)?;
            queried.ident_replacing_previous_signed(&ilk, piuk, rng)?
        }
        (Action::Login, _) => {
            let ilk = keys.lock_key().map_err(Failure::Local)?;
            queried.ident(&ilk, rng)?
        }
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

/// Refuses, before asking the user anything, commands the query outcome
/// (`status`, from a reply with `tif`) rules out.
fn check_possible(action: Action, status: QueryStatus, site: &str, tif: Tif) -> Result<()> {
    let site = site.to_owned();
    let refusal = match (action, status) {
        (Action::Login, QueryStatus::Disabled { .. }) => Refusal::LoginDisabled { site, tif },
        (Action::Disable | Action::Enable | Action::Remove, QueryStatus::Unknown) => {
            Refusal::UnknownIdentity { site, tif }
        }
        (
            Action::Disable | Action::Enable | Action::Remove,
            QueryStatus::KnownByPrevious { .. } | QueryStatus::Disabled { previous: Some(_) },
        ) => Refusal::PreviousIdentityOnly { site, tif },
        _ => return Ok(()),
    };
    Err(refusal.into())
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

/// Checks the session URL (`url=`) a site returns for a same-device login
/// (SPEC 7) before it is handed to a browser or printed as a link: an absolute
/// `http` or `https` URL with a host and no user name or password in it.
/// Returns it as the `url` crate writes it; anything else (`undefined`, a
/// relative path, `javascript:`, `//host`) is refused with the reason.
pub fn session_url(target: &str) -> std::result::Result<String, String> {
    let shown = display_text(target);
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{shown:?} is not a URL (empty, or spaces or control characters)"
        ));
    }
    // The url crate forgives `http:///host`, `http:host` and backslashes in
    // http(s) URLs; a session URL has no reason to need that.
    let lower = target.to_ascii_lowercase();
    let after_scheme = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if after_scheme.is_none_or(|rest| rest.starts_with('/')) || target.contains('\\') {
        return Err(format!("{shown:?} is not an absolute http(s) URL"));
    }
    let parsed =
        url::Url::parse(target).map_err(|e| format!("{shown:?} is not an absolute URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{shown:?} is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{shown:?} carries a user name or password"));
    }
    Ok(parsed.into())
}

/// Turns a protocol failure into the CLI's error, in words.
fn client_error(site: &str, same_device: bool, error: ClientError) -> Error {
    match &error {
        ClientError::IpMismatch | ClientError::IpMatchUnconfirmed(_) if same_device => {
            AddressMismatch::SameDevice {
                site: site.to_owned(),
                error,
            }
            .into()
        }
        // The agent, not the site, failed: say so, not that the site misbehaved.
        ClientError::Signer(failure) => Error::Agent(format!(
            "the sqrl agent could not sign for {site}: {failure}"
        )),
        ClientError::Message(_)
        | ClientError::Url(_)
        | ClientError::UnsupportedVersion
        | ClientError::UndefinedTif(_)
        | ClientError::ProtocolViolation(_)
        | ClientError::Key(_)
        | ClientError::MissingServerUnlockKey => {
            Error::network(format!("{site} did not answer as SQRL requires"), error)
        }
        _ => Refusal::Reply {
            site: site.to_owned(),
            error,
        }
        .into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn session_urls_must_be_absolute_http() {
        assert_eq!(
            session_url("https://example.com/cps?token=abc").unwrap(),
            "https://example.com/cps?token=abc"
        );
        assert_eq!(
            session_url("HTTP://127.0.0.1:8080/cps?t=1").unwrap(),
            "http://127.0.0.1:8080/cps?t=1"
        );
        for bad in [
            "undefined",
            "",
            "/cps?token=abc",
            "cps?token=abc",
            "//evil.example/x",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "http://",
            "http:///path",
            "http:evil.example/x",
            "https:\\\\evil.example\\x",
            "https://bank.example@evil.example/",
            "https://example.com/a b",
            "https://example.com/\x1b[2J",
        ] {
            assert!(session_url(bad).is_err(), "{bad:?} accepted");
        }
        // The reason shows the text without its control characters.
        let reason = session_url("\x1b[31mundefined").unwrap_err();
        assert!(!reason.contains('\x1b'), "{reason}");
    }

    #[test]
    fn site_text_loses_control_and_bidi_characters() {
        assert_eq!(display_text("a\x1b[2Jb\nc"), "a\u{fffd}[2Jb\nc");
        assert_eq!(display_text("x\u{202e}y\u{2066}z"), "x\u{fffd}y\u{fffd}z");
    }

    #[test]
    fn a_multi_line_ask_is_shown_whole_and_indented() {
        let ask = Ask::new("Signing in: Chrome on Windows at 203.0.113.7,\npage opened 12 s ago\r")
            .with_button(sqrl_core::msg::AskButton::new("Yes", None).unwrap())
            .unwrap();
        let summary = QuerySummary {
            action: Action::Login,
            site: "example.com".into(),
            status: QueryStatus::Known,
            ip_matched: true,
            same_device: false,
            ask: Some(ask),
        };
        let text = summary.to_text();
        assert!(
            text.contains(
                "The site asks: Signing in: Chrome on Windows at 203.0.113.7,\n               page opened 12 s ago\u{fffd}\n  [1] Yes\n"
            ),
            "{text}"
        );
    }
}
