//! The two ways a login is driven. Both end with the browser holding what
//! the site gives a logged-in visitor; they differ in how the browser waits.
//!
//! * [`ssp`]: GRC's SQRL Service Provider API (SPEC 9), which any SSP server
//!   serves: `/nut.sqrl`, the phone's `/cli.sqrl`, and polling `/pag.sqrl`.
//! * [`page`]: this project's login page and its event stream.

pub mod page;
pub mod ssp;

use std::time::Duration;

use crate::http::{Browser, PhoneLink};
use crate::outcome::{ErrorKind, LoginError, Step, Trace};
use crate::phone::Phone;
use crate::site::Site;

/// Which login flow to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// `GET /nut.sqrl`, phone `query` + `ident`, poll `GET /pag.sqrl` (any SSP server).
    Ssp,
    /// `GET /`, event stream `/login/events`, phone `query` + `ident`, wait
    /// for `confirmed`, `GET /login/collect` (this project's server).
    Page,
}

/// How `/nut.sqrl` and `/pag.sqrl` are asked to answer (SPEC 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NutFormat {
    /// `application/x-www-form-urlencoded` (the API's default).
    Form,
    /// `Accept: application/json`, exactly (some servers compare the header whole).
    Json,
}

impl NutFormat {
    /// The `Accept` header to send.
    pub fn accept(self) -> &'static str {
        match self {
            NutFormat::Form => "application/x-www-form-urlencoded, text/plain, */*",
            NutFormat::Json => "application/json",
        }
    }
}

/// What every login of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The site under test.
    pub site: Site,
    /// The flow.
    pub flow: Flow,
    /// How long one request, one wait for an event, or the whole polling
    /// of `/pag.sqrl` may take.
    pub timeout: Duration,
    /// Pause between two polls of `/pag.sqrl` that found the login pending
    /// (the first poll goes out as soon as the phone holds its ident reply).
    pub poll_interval: Duration,
    /// SSP flow: also GET the URL `/pag.sqrl` returned.
    pub follow: bool,
    /// How `/nut.sqrl` and `/pag.sqrl` answer.
    pub nut_format: NutFormat,
}

/// The two devices of one login loop.
#[derive(Debug)]
pub struct Devices {
    /// The visitor's browser.
    pub browser: Browser,
    /// The phone's connection.
    pub phone: PhoneLink,
}

/// Runs one whole login of `phone` in the configured flow.
pub async fn login(
    settings: &Settings,
    devices: &mut Devices,
    phone: &Phone,
    trace: &mut Trace,
) -> Result<(), LoginError> {
    devices.browser.forget();
    match settings.flow {
        Flow::Ssp => ssp::login(settings, devices, phone, trace).await,
        Flow::Page => page::login(settings, devices, phone, trace).await,
    }
}

/// The browser follows the URL it was given once the login is confirmed, as
/// the page's own navigation would (hence `Sec-Fetch-Site: same-origin`).
/// Any 2xx or 3xx is the site letting the visitor in.
async fn follow(
    settings: &Settings,
    browser: &mut Browser,
    url: &str,
    trace: &mut Trace,
) -> Result<(), LoginError> {
    let target = settings.site.resolve(url);
    let (reply, took) = browser
        .get(
            &target,
            &[("accept", "text/html"), ("sec-fetch-site", "same-origin")],
        )
        .await
        .map_err(|kind| LoginError::new(Step::Collect, kind))?;
    if !(200..400).contains(&reply.status) {
        return Err(
            LoginError::new(Step::Collect, ErrorKind::HttpStatus(reply.status))
                .with_body(&reply.body),
        );
    }
    trace.step(Step::Collect, took);
    Ok(())
}
