//! The whole product as a person uses it, in a real headless Chromium.
//!
//! `sqrl-server` runs in-process; Chromium opens its login page; a screenshot
//! of the page is the camera's picture; the real `sqrl` binary logs in from
//! that picture (`sqrl login shot.png --yes`) as the phone would; and the
//! page, untouched by the test, signs itself in and shows the account of the
//! identity that logged in. Chromium is driven by `driver.mjs` (node and
//! `playwright-core`); without them the tests say what is missing and pass,
//! unless `SQRL_REQUIRE_BROWSER=1` (CI) makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use serde_json::Value;
use sqrl_core::keys::IdentityKey;

use crate::harness::{Browser, Cli, Mode, Site, Tools, artifact_dir, unix_ms};

/// Longest a page may take to sign itself in after the client is done. The
/// design target is a blink (SSE: milliseconds; polling: one 500 ms tick);
/// the margin is for a loaded two-core CI machine.
const SIGN_IN_BOUND_MS: i64 = 5_000;

/// The requests the browser made, from the driver's log.
fn requests(event: &Value) -> Vec<&Value> {
    event["requests"].as_array().unwrap().iter().collect()
}

fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|scheme| {
            url[scheme + 3..]
                .find('/')
                .map(|at| &url[scheme + 3 + at..])
        })
        .unwrap_or(url)
}

/// A failed load of the page's probe for a SQRL app on this computer
/// (`localhost:25519`, SPEC 7): expected wherever none runs.
fn is_local_app_probe(message: &Value) -> bool {
    message["url"]
        .as_str()
        .is_some_and(|url| url.starts_with("http://localhost:25519/"))
        && message["text"]
            .as_str()
            .is_some_and(|text| text.contains("ERR_CONNECTION_REFUSED"))
}

/// One person, one login: page → screenshot → `sqrl login shot.png` → the
/// page signs in by itself.
fn sign_in(mode: Mode) {
    let Some(tools) = Tools::find() else { return };
    let site = Site::start(|config| {
        if mode == Mode::Rotate {
            // The page script rotates at most every 5 s.
            config.nut_rotation = Duration::from_secs(5);
        }
    });
    let base = site.base();
    let cli = Cli::with_identity();
    let name = mode.as_str();
    let mut browser = Browser::open(&tools, &base, mode, artifact_dir(name));

    // The page as a person sees it.
    let ready = browser.expect("ready", Duration::from_secs(40));
    let page_url = ready["url"].as_str().unwrap().to_owned();
    let port = base.rsplit(':').next().unwrap();
    browser.check(
        page_url.starts_with(&format!("qrl://127.0.0.1:{port}/cli.sqrl?nut=")),
        format!("the page shows {page_url:?}, not a qrl:// link to this site"),
    );
    let link = ready["link"].as_str().unwrap();
    browser.check(
        link.starts_with(&format!("{page_url}&can=")),
        format!("same-device link {link:?} is not the code's URL with can="),
    );
    if mode == Mode::Rotate {
        browser.check(
            ready["firstUrl"] != ready["url"],
            "the page did not rotate its code",
        );
    }

    // What the camera sees is exactly what the page prints.
    let screenshot = ready["screenshot"].as_str().unwrap().to_owned();
    let image = std::fs::read(&screenshot).unwrap();
    let decoded = sqrl_client::qr::decode_sqrl_url(&image)
        .unwrap_or_else(|e| browser.fail(format!("no SQRL code in the screenshot: {e}")));
    browser.check(
        decoded == page_url,
        format!("the screenshot's code says {decoded:?}, the page prints {page_url:?}"),
    );

    // The identity's public key for this site, for the account page check.
    let shown = cli.run(&["identity", "show", "--site", &page_url]);
    let idk = IdentityKey::from_base64url(shown["idk"].as_str().unwrap()).unwrap();

    // The phone: scans the picture, confirms.
    let outcome = cli.run(&["login", &screenshot, "--yes"]);
    let cli_done = unix_ms();
    browser.check(
        outcome["known"] == "unknown" && outcome["changed"] == true,
        format!("a first login should create the association: {outcome}"),
    );

    // The browser, left alone, ends up signed in.
    browser.send(&format!("expect-account {cli_done}"));
    let account = browser.expect("account", Duration::from_secs(30));
    browser.check(
        account["pageUrl"] == format!("{base}/account"),
        format!("the page ended at {}", account["pageUrl"]),
    );
    browser.check(
        account["fingerprint"] == idk.fingerprint(),
        format!(
            "the account shows fingerprint {}, the identity's key for this site is {}",
            account["fingerprint"],
            idk.fingerprint()
        ),
    );
    let text = account["text"].as_str().unwrap();
    for expected in [
        "Your account",
        "this browser",
        "cross-device",
        "HeadlessChrome",
    ] {
        browser.check(
            text.contains(expected),
            format!("the account page lacks {expected:?}:\n{text}"),
        );
    }

    // Without reload: one load of the login page, then the page's own
    // navigation to collect its session, then the account page.
    let documents: Vec<String> = requests(&account)
        .into_iter()
        .filter(|r| r["navigation"] == true)
        .map(|r| path_of(r["url"].as_str().unwrap()).to_owned())
        .collect();
    let attempt = ready["firstUrl"]
        .as_str()
        .unwrap()
        .rsplit("nut=")
        .next()
        .unwrap();
    browser.check(
        documents
            == [
                "/".to_owned(),
                format!("/login/collect?nut={attempt}"),
                "/account".to_owned(),
            ],
        format!("the browser loaded these documents: {documents:?}"),
    );

    // The live channel that did it.
    let events: Vec<&Value> = requests(&account)
        .into_iter()
        .filter(|r| path_of(r["url"].as_str().unwrap()).starts_with("/login/events?"))
        .collect();
    let polls = requests(&account)
        .into_iter()
        .filter(|r| path_of(r["url"].as_str().unwrap()).starts_with("/pag.sqrl?"))
        .count();
    match mode {
        Mode::Sse | Mode::Rotate => {
            browser.check(
                events.len() == 1 && events[0]["status"] == 200,
                format!("expected one event stream, served: {events:?}"),
            );
            browser.check(
                polls == 0,
                format!("{polls} polls while the stream was open"),
            );
        }
        Mode::Poll | Mode::Held => {
            browser.check(
                !events.is_empty() && events.iter().all(|r| r.get("status").is_none()),
                format!("the event stream should have been cut off: {events:?}"),
            );
            browser.check(polls > 0, "the page never polled /pag.sqrl");
        }
    }
    if mode == Mode::Rotate {
        let rotations = requests(&account)
            .into_iter()
            .filter(|r| path_of(r["url"].as_str().unwrap()).starts_with("/login/rotate?"))
            .count();
        browser.check(rotations >= 1, "no /login/rotate request");
    }

    // No script error, no blocked resource (a Content-Security-Policy
    // violation shows up as a console error).
    browser.check(
        account["pageErrors"].as_array().unwrap().is_empty(),
        format!("script errors: {}", account["pageErrors"]),
    );
    let console_errors: Vec<&Value> = account["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "error")
        // The refused event stream, in the polling variant, is the test's doing.
        .filter(|m| {
            !(mode == Mode::Poll && m["text"].as_str().unwrap().contains("CONNECTION_REFUSED"))
        })
        // The page's look for a SQRL app on this computer finds none here.
        .filter(|m| !is_local_app_probe(m))
        .collect();
    browser.check(
        console_errors.is_empty(),
        format!("console errors: {console_errors:?}"),
    );

    let latency = account["latencyMs"].as_i64().unwrap();
    // A held stream can only be noticed by its silence, which takes a while.
    let bound = if mode == Mode::Held {
        2 * SIGN_IN_BOUND_MS
    } else {
        SIGN_IN_BOUND_MS
    };
    browser.check(
        latency < bound,
        format!("the page signed in {latency} ms after the client finished"),
    );
    eprintln!("{name}: the page signed itself in {latency} ms after `sqrl login` exited");
}

/// The page follows the login by Server-Sent Events.
#[test]
fn a_screenshot_of_the_login_page_signs_the_browser_in() {
    sign_in(Mode::Sse);
}

/// Where the event stream is refused, `/pag.sqrl` polling signs the page in.
#[test]
fn without_event_streams_polling_signs_the_browser_in() {
    sign_in(Mode::Poll);
}

/// Behind a proxy that holds event streams (accepted, nothing delivered until
/// the response ends) the page must still sign in, by polling.
#[test]
fn with_a_silently_held_event_stream_polling_signs_the_browser_in() {
    sign_in(Mode::Held);
}

/// An open page replaces its code; the fresh code on screen is the one that
/// works, and the page still follows the login it started.
#[test]
fn a_rotated_code_signs_the_browser_in() {
    sign_in(Mode::Rotate);
}
