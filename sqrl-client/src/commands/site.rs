//! `sqrl login`, `disable`, `enable`, `remove`: one transaction with a site.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use rand_core::OsRng;
use sqrl_core::client::Device;
use sqrl_core::keys::IdentityUnlockKey;
use sqrl_core::msg::{Ask, Button};
use sqrl_core::url::{Scheme, SiteKeyString, SqrlUrl};

use super::Context;
use crate::cli::{HttpArgs, LoginArgs, SiteArgs};
use crate::error::{AddressMismatch, Error, QrFailure, Result};
use crate::identity::{KdfProgress, StoredIdentity, Unlocked};
use crate::prompt;
use crate::qr;
use crate::session::{self, Action, IdentityKeys, QuerySummary, Transaction, Ui, display_text};
use crate::transport::{HttpSettings, HttpTransport};

/// Largest image file read for a QR code.
const MAX_IMAGE_FILE: u64 = qr::MAX_IMAGE_BYTES as u64;

/// Reads the SQRL URL from a link or from an image of its QR code.
pub fn resolve_target(target: &str) -> Result<SqrlUrl> {
    let lower = target
        .get(..7)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if lower.starts_with("sqrl://") || lower.starts_with("qrl://") {
        return SqrlUrl::parse(target).map_err(Error::InvalidLink);
    }
    let path = Path::new(target);
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        // `https://...`, `javascript:...`: an address of another kind.
        Err(_) if target.contains("://") => return Err(Error::NotASqrlLink(target.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoSuchFile(target.to_owned()));
        }
        Err(source) => {
            return Err(Error::ReadFile {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !metadata.is_file() {
        return Err(Error::NotALinkOrImage(target.to_owned()));
    }
    if metadata.len() > MAX_IMAGE_FILE {
        return Err(QrFailure::ImageFileTooLarge(target.to_owned()).into());
    }
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let text = match qr::decode_sqrl_url(&bytes) {
        Err(Error::Qr(QrFailure::IdentityNotALink)) => {
            return Err(Error::IdentityQrNotALink(target.to_owned()));
        }
        other => other?,
    };
    SqrlUrl::parse(&text).map_err(Error::InvalidLinkInQr)
}

/// HTTP settings from the command line.
pub fn http_settings(args: &HttpArgs) -> HttpSettings {
    HttpSettings {
        ca_cert: args.ca_cert.clone(),
        timeout: Some(Duration::from_secs(args.timeout.max(1))),
    }
}

/// The terminal side of a transaction.
pub struct TerminalUi<'a> {
    /// The command's context.
    pub context: &'a Context,
    /// The identity (for the rescue code).
    pub stored: &'a StoredIdentity,
    /// The identity unlocked with its password (to check the rescue code
    /// against), or `None` when the agent supplied the keys.
    pub unlocked: Option<&'a Unlocked>,
    /// `--button`.
    pub button: Option<u8>,
    /// `--allow-relayed-code`.
    pub allow_relayed_code: bool,
}

impl core::fmt::Debug for TerminalUi<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TerminalUi").finish_non_exhaustive()
    }
}

impl Ui for TerminalUi<'_> {
    fn confirm(&mut self, summary: &QuerySummary) -> Result<()> {
        // The summary goes to stderr, so it is seen even with --json, and a
        // non-interactive --yes run still leaves a record of what was agreed to.
        let _ = write!(std::io::stderr(), "{}", summary.to_text());
        if summary.action == Action::Login {
            // Confirmed before the password was asked.
            return Ok(());
        }
        if summary
            .ask
            .as_ref()
            .is_some_and(|ask| !ask.buttons().is_empty())
        {
            // Choosing one of the site's buttons is the confirmation: one question, not two.
            return Ok(());
        }
        prompt::confirm(
            &format!("Do you want to {} {}?", summary.action.verb(), summary.site),
            self.context.yes,
        )
    }

    fn answer(&mut self, ask: &Ask) -> Result<Button> {
        if let Some(button) = self.button {
            return Button::parse(&button.to_string()).map_err(Error::InvalidButton);
        }
        if ask.buttons().is_empty() {
            return Ok(Button::Ok);
        }
        if !prompt::interactive() {
            return Err(Error::NoPrompt {
                what: "answer to the site's question",
                flag: "--button",
            });
        }
        let count = ask.buttons().len();
        let answer = prompt::read_line(
            &format!(
                "Answer with {} (anything else cancels): ",
                if count == 1 {
                    "1".to_owned()
                } else {
                    format!("1-{count}")
                }
            ),
            "answer to the site's question",
        )?;
        match answer.as_str() {
            "1" => Ok(Button::First),
            "2" if count >= 2 => Ok(Button::Second),
            _ => Err(Error::Declined),
        }
    }

    fn accept_ip_mismatch(&mut self, site: &str) -> Result<()> {
        let _ = write!(
            std::io::stderr(),
            "{}",
            session::ip_mismatch_explanation(site)
        );
        if self.allow_relayed_code {
            prompt::say("Going on: --allow-relayed-code was given.");
            return Ok(());
        }
        if !prompt::interactive() {
            return Err(AddressMismatch::Unconfirmed {
                site: site.to_owned(),
            }
            .into());
        }
        prompt::confirm_word(
            "Only if you opened this login page yourself, type CONTINUE to sign in anyway \
             (anything else stops): ",
            "continue",
            "--allow-relayed-code",
        )
    }

    fn unlock_key(&mut self) -> Result<IdentityUnlockKey> {
        self.stored.unlock_key(
            &self.context.secrets,
            self.unlocked,
            &mut KdfProgress::new(self.context.out.show_progress()),
        )
    }
}

/// The site a link names, as a person should check it before anything else:
/// the site key string (host and any `x=` path, which decides the identity
/// the site sees) and the address the requests will go to.
pub fn site_text(url: &SqrlUrl, site: &SiteKeyString) -> String {
    let mut text = format!("Site: {}\n", display_text(&site.to_string()));
    let post = url.post_url();
    let address = crate::transport::origin_of(&post);
    text.push_str(&format!("  requests go to {}\n", display_text(address)));
    if url.scheme() == Scheme::Qrl {
        text.push_str(
            "  over plain HTTP (a qrl:// link): fine on a test machine, not on the Internet\n",
        );
    }
    text
}

/// The keys for one site: from the running agent when it holds this identity
/// (no password, no EnScrypt), else from the identity file and its password.
pub enum SiteKeys {
    /// The agent's keys for the site.
    #[cfg(unix)]
    Agent(Box<crate::agent::remote::AgentKeys>),
    /// The identity unlocked with its password.
    Password(Box<Unlocked>),
}

impl core::fmt::Debug for SiteKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            #[cfg(unix)]
            SiteKeys::Agent(_) => "SiteKeys::Agent",
            SiteKeys::Password(_) => "SiteKeys::Password",
        })
    }
}

impl SiteKeys {
    /// Gets the keys for `site`, asking the agent first.
    pub fn get(context: &Context, stored: &StoredIdentity, site: &SiteKeyString) -> Result<Self> {
        #[cfg(unix)]
        {
            use crate::agent::remote::{AgentAnswer, AgentKeys};
            // On stderr in every mode (like the site shown above): where the
            // keys came from is part of the record of what was agreed to.
            match AgentKeys::fetch(&context.store, &stored.name, site) {
                Ok(AgentAnswer::Keys(keys)) => {
                    prompt::say("Unlocked by the running sqrl agent.");
                    return Ok(SiteKeys::Agent(keys));
                }
                Ok(AgentAnswer::NotRunning) => {}
                Ok(AgentAnswer::Locked) => {
                    prompt::say("The sqrl agent is locked; using the password instead.");
                }
                Ok(AgentAnswer::OtherIdentity(other)) => prompt::say(&format!(
                    "The sqrl agent holds identity {other:?}, not this one; using the password."
                )),
                Err(error) => context
                    .out
                    .warn(&format!("{}; using the password instead", error.one_line())),
            }
        }
        let unlocked = stored.unlock(
            &context.secrets,
            &mut KdfProgress::new(context.out.show_progress()),
        )?;
        Ok(SiteKeys::Password(Box::new(unlocked)))
    }

    /// The keys, for a transaction.
    pub fn keys(&self) -> &dyn IdentityKeys {
        match self {
            #[cfg(unix)]
            SiteKeys::Agent(keys) => keys.as_ref() as &dyn IdentityKeys,
            SiteKeys::Password(unlocked) => unlocked.as_ref() as &dyn IdentityKeys,
        }
    }

    /// The identity unlocked with its password, if that is where the keys came from.
    pub fn unlocked(&self) -> Option<&Unlocked> {
        match self {
            #[cfg(unix)]
            SiteKeys::Agent(_) => None,
            SiteKeys::Password(unlocked) => Some(unlocked.as_ref()),
        }
    }
}

/// One transaction, in the order a person can follow: the site from the link
/// (nothing unlocked yet), the go-ahead for a login, the keys (agent or
/// password), then the site's answer and the command.
fn run_action(
    context: &Context,
    site: &SiteArgs,
    action: Action,
    device: Device,
    allow_relayed_code: bool,
) -> Result<session::Outcome> {
    let url = resolve_target(&site.target)?;
    let name = context.identity_name()?;
    let stored = StoredIdentity::load(&context.store, &name)?;
    let site_key = match site.alt_id.as_deref() {
        Some(alt) => url.site_key_string().clone().with_alt_id(alt),
        None => url.site_key_string().clone(),
    };
    let _ = write!(std::io::stderr(), "{}", site_text(&url, &site_key));
    if action == Action::Login {
        prompt::confirm(
            &format!(
                "Log in to {} as identity {name:?}?",
                display_text(&site_key.to_string())
            ),
            context.yes,
        )?;
    }
    let keys = SiteKeys::get(context, &stored, &site_key)?;
    let mut transport = HttpTransport::new(&http_settings(&site.http))?;
    let mut ui = TerminalUi {
        context,
        stored: &stored,
        unlocked: keys.unlocked(),
        button: site.button,
        allow_relayed_code,
    };
    let transaction = Transaction {
        url,
        alt_id: site.alt_id.clone(),
        action,
        device,
    };
    session::run(
        &mut transport,
        transaction,
        keys.keys(),
        &mut ui,
        &mut OsRng,
    )
}

/// `sqrl login`.
pub fn login(context: &Context, args: &LoginArgs) -> Result<()> {
    let device = if args.same_device {
        Device::SameDevice
    } else {
        Device::CrossDevice
    };
    let outcome = run_action(
        context,
        &args.site,
        Action::Login,
        device,
        args.allow_relayed_code,
    )?;
    let mut human = outcome.message.clone();
    human.push_str(&format!(
        "\nIdentity fingerprint for {}: {} (the site's page should show the same)",
        outcome.site, outcome.fingerprint
    ));
    if let Some(url) = outcome.cps_url() {
        human.push_str(&format!(
            "\nOpen this address in your browser to finish: {url}"
        ));
    }
    context.out.result(&outcome.to_json(), &human)
}

/// `sqrl disable|enable|remove` (the rescue code comes through the context).
pub fn other(context: &Context, args: &SiteArgs, action: Action) -> Result<()> {
    let outcome = run_action(context, args, action, Device::CrossDevice, false)?;
    context.out.result(&outcome.to_json(), &outcome.message)
}
