//! `sqrl login`, `disable`, `enable`, `remove`: one transaction with a site.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use rand_core::OsRng;
use sqrl_core::client::Device;
use sqrl_core::keys::IdentityUnlockKey;
use sqrl_core::msg::{Ask, Button};
use sqrl_core::url::SqrlUrl;

use super::Context;
use crate::cli::{HttpArgs, LoginArgs, SiteArgs};
use crate::error::{AddressMismatch, Error, QrFailure, Result};
use crate::identity::{KdfProgress, StoredIdentity, Unlocked};
use crate::prompt;
use crate::qr;
use crate::session::{self, Action, QuerySummary, Transaction, Ui};
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
    let metadata =
        std::fs::metadata(path).map_err(|_| Error::NotALinkOrImage(target.to_owned()))?;
    if metadata.len() > MAX_IMAGE_FILE {
        return Err(QrFailure::ImageFileTooLarge(target.to_owned()).into());
    }
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let text = qr::decode_sqrl_url(&bytes)?;
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
    /// The unlocked identity (to check the rescue code against).
    pub unlocked: &'a Unlocked,
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
        let answer = prompt::read_line(
            &format!("Choose 1-{}: ", ask.buttons().len()),
            "answer to the site's question",
        )?;
        match answer.as_str() {
            "1" => Ok(Button::First),
            "2" if ask.buttons().len() >= 2 => Ok(Button::Second),
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
            Some(self.unlocked),
            &mut KdfProgress::new(self.context.out.show_progress()),
        )
    }
}

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
    let unlocked = stored.unlock(
        &context.secrets,
        &mut KdfProgress::new(context.out.show_progress()),
    )?;
    let mut transport = HttpTransport::new(&http_settings(&site.http))?;
    let mut ui = TerminalUi {
        context,
        stored: &stored,
        unlocked: &unlocked,
        button: site.button,
        allow_relayed_code,
    };
    let transaction = Transaction {
        url,
        alt_id: site.alt_id.clone(),
        action,
        device,
    };
    session::run(&mut transport, transaction, &unlocked, &mut ui, &mut OsRng)
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

/// `sqrl disable|enable|remove`.
pub fn other(context: &Context, args: &SiteArgs, action: Action) -> Result<()> {
    let outcome = run_action(context, args, action, Device::CrossDevice, false)?;
    context.out.result(&outcome.to_json(), &outcome.message)
}
