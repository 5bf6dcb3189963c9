//! The whole product as a person uses it, in a real headless Chromium.
//!
//! `sqrl-server` runs in-process; Chromium opens its login page; a screenshot
//! of the page is the camera's picture; the real `sqrl` binary logs in from
//! that picture (`sqrl login shot.png --yes`) as the phone would; and the
//! page, untouched by the test, signs itself in and shows the account of the
//! identity that logged in. Chromium is driven by `driver.mjs` (node and
//! `playwright-core`); without them the tests are reported as ignored (see
//! `build.rs`), unless `SQRL_REQUIRE_BROWSER=1` (CI) makes them run and fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
#[path = "../common/in_process_server.rs"]
mod in_process_server;

use std::time::Duration;

use serde_json::Value;
use sqrl_core::keys::IdentityKey;

use crate::harness::{
    Browser, Cli, Mode, RelyingParty, Site, Tools, artifact_dir, http_get, unix_ms,
};

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
    let tools = Tools::find();
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
        "Chrome (headless) on Linux",
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
        Mode::Sse | Mode::Rotate | Mode::Elsewhere => {
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
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_screenshot_of_the_login_page_signs_the_browser_in() {
    sign_in(Mode::Sse);
}

/// Where the event stream is refused, `/pag.sqrl` polling signs the page in.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn without_event_streams_polling_signs_the_browser_in() {
    sign_in(Mode::Poll);
}

/// Behind a proxy that holds event streams (accepted, nothing delivered until
/// the response ends) the page must still sign in, by polling.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn with_a_silently_held_event_stream_polling_signs_the_browser_in() {
    sign_in(Mode::Held);
}

/// An open page replaces its code; the fresh code on screen is the one that
/// works, and the page still follows the login it started.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_rotated_code_signs_the_browser_in() {
    sign_in(Mode::Rotate);
}

/// Opens the login page in Chromium and signs it in with `cli` (the code's
/// URL as the page prints it); returns the browser on the account page.
fn signed_in(tools: &Tools, site: &Site, cli: &Cli, name: &str) -> Browser {
    let mut browser = Browser::open(tools, &site.base(), Mode::Sse, artifact_dir(name));
    let ready = browser.expect("ready", Duration::from_secs(40));
    cli.run(&["login", ready["url"].as_str().unwrap(), "--yes"]);
    browser.send(&format!("expect-account {}", unix_ms()));
    browser.expect("account", Duration::from_secs(30));
    browser
}

/// The account page's list of active sessions (not the login history).
fn active_sessions(page: &Value) -> &str {
    let text = page["text"].as_str().unwrap();
    let from = text.find("Active sessions").unwrap_or(text.len());
    let to = text.find("Recent logins").unwrap_or(text.len()).max(from);
    &text[from..to]
}

/// The page a command led to.
fn page(browser: &mut Browser, command: &str) -> Value {
    browser.send(command);
    browser.expect("page", Duration::from_secs(20))
}

/// A person clicks Revoke next to another session and Log out on the
/// account page: both take effect (a same-origin form post from a page sent
/// with `Referrer-Policy: no-referrer`, which Chromium sends with
/// `Origin: null`, must pass the cross-site check).
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn revoke_and_log_out_work_when_clicked() {
    let tools = Tools::find();
    let site = Site::start(|_| {});
    let base = site.base();
    let cli = Cli::with_identity();
    let mut browser = signed_in(&tools, &site, &cli, "revoke-logout");

    // Another browser of the same account.
    let other = site.session_elsewhere(&cli);
    let listed = page(&mut browser, "goto /account");
    browser.check(
        active_sessions(&listed).contains("ureq"),
        format!("the other session is not listed:\n{}", listed["text"]),
    );

    let revoked = page(
        &mut browser,
        "click form[action^=\"/account/sessions/\"] button",
    );
    browser.check(
        revoked["pageUrl"] == format!("{base}/account"),
        format!("Revoke led to {}: {}", revoked["pageUrl"], revoked["text"]),
    );
    browser.check(
        !active_sessions(&revoked).contains("ureq"),
        format!("the revoked session is still listed:\n{}", revoked["text"]),
    );
    let gone = http_get(&format!("{base}/account"), &[("Cookie", &other)]);
    browser.check(
        gone.status == 303,
        format!(
            "the revoked session still opens the account: {}",
            gone.status
        ),
    );

    let out = page(&mut browser, "click form[action=\"/logout\"] button");
    browser.check(
        out["pageUrl"] == format!("{base}/"),
        format!("Log out led to {}: {}", out["pageUrl"], out["text"]),
    );
    let after = page(&mut browser, "goto /account");
    browser.check(
        after["pageUrl"] == format!("{base}/"),
        format!(
            "/account still opens after logging out: {}",
            after["pageUrl"]
        ),
    );
}

/// A code left on screen too long expires in front of the person: the dead
/// code and its links go away and a button brings a fresh one. The page
/// carries the site's name, and tells someone who has never heard of SQRL
/// what to do, with the operator's help link.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn an_expired_code_gives_way_to_a_fresh_one_on_a_click() {
    let tools = Tools::find();
    let site = Site::start(|config| {
        config.site_name = Some("Example Shop".to_owned());
        config.help_url = "https://help.example/sqrl".to_owned();
    });
    let mut browser = Browser::open(&tools, &site.base(), Mode::Sse, artifact_dir("expired"));
    let ready = browser.expect("ready", Duration::from_secs(40));
    let first_url = ready["url"].as_str().unwrap().to_owned();
    // Past the whole attempt's lifetime (at most ten minutes).
    site.advance_clock(601);
    browser.send("expect-expired");
    let expired = browser.expect("expired", Duration::from_secs(30));
    let text = expired["text"].as_str().unwrap();
    browser.check(
        expired["qrHidden"] == true && expired["linkHidden"] == true,
        format!("the dead code is still offered: {expired}"),
    );
    browser.check(
        text.contains("Get a fresh code") && !text.contains(&first_url),
        format!("no fresh-code button, or the dead URL still shown:\n{text}"),
    );
    browser.check(
        expired["siteName"] == "Example Shop"
            && expired["help"] == "https://help.example/sqrl"
            && text.contains("New to SQRL?"),
        format!("the page does not present the site or help a newcomer: {expired}"),
    );
    let fresh = page(&mut browser, "click #fresh-code");
    let text = fresh["text"].as_str().unwrap();
    browser.check(
        text.contains("qrl://") && !text.contains(&first_url) && !text.contains("has expired"),
        format!("the button did not bring a fresh code:\n{text}"),
    );
}

/// The account page on a phone (390 CSS pixels): nothing runs off the
/// side, browsers are named ("Chrome (headless) on Linux", not a user agent
/// string), times are in the viewer's zone (the browser runs in UTC+05:30),
/// and a sign-in from another browser since this one's is called out.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn the_account_page_reads_on_a_phone_in_the_viewers_zone() {
    let tools = Tools::find();
    let site = Site::start(|_| {});
    let cli = Cli::with_identity();
    let mut browser = signed_in(&tools, &site, &cli, "account-phone");
    // Sign-in times have one-second resolution: the other one is later.
    std::thread::sleep(Duration::from_millis(1100));
    let _other = site.session_elsewhere(&cli);
    page(&mut browser, "goto /account");
    browser.send("layout 390");
    let layout = browser.expect("layout", Duration::from_secs(20));

    browser.check(
        layout["scrollWidth"].as_u64() <= Some(390)
            && layout["overflowing"].as_array().is_some_and(Vec::is_empty),
        format!(
            "the page is wider than the phone: scrollWidth {}, overflowing {}",
            layout["scrollWidth"], layout["overflowing"]
        ),
    );
    let text = layout["text"].as_str().unwrap();
    browser.check(
        text.contains("Chrome (headless) on Linux") && !text.contains("Mozilla/5.0"),
        format!("browsers are not named for people:\n{text}"),
    );
    browser.check(
        text.contains("New sign-in from ureq"),
        format!("the other browser's sign-in is not called out:\n{text}"),
    );
    let times = layout["times"].as_array().unwrap();
    browser.check(!times.is_empty(), "no times on the account page".to_owned());
    for time in times {
        // `2026-11-30T03:30:07Z`: in UTC+05:30 the minutes move by 30.
        let datetime = time["datetime"].as_str().unwrap();
        let minute: u32 = datetime[14..16].parse().unwrap();
        let shown = time["text"].as_str().unwrap();
        browser.check(
            !shown.contains("UTC")
                && shown.contains(&format!(":{:02}", (minute + 30) % 60))
                && time["title"].as_str().unwrap().ends_with("UTC"),
            format!("{datetime} is not shown in the viewer's zone: {time}"),
        );
    }
}

/// Login CSRF: someone mints a same-device sign-in link for their own
/// identity and sends this browser to it. The link belongs to the browser
/// whose page started it; here it is refused and signs nobody in.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_sign_in_link_minted_elsewhere_is_refused() {
    let tools = Tools::find();
    let site = Site::start(|_| {});
    let base = site.base();
    let mut browser = Browser::open(&tools, &base, Mode::Sse, artifact_dir("foreign-link"));
    browser.expect("ready", Duration::from_secs(40));

    let attacker = Cli::with_identity();
    let (url, attackers_cookie) = site.page_elsewhere();
    let outcome = attacker.run(&["login", &url, "--same-device", "--yes"]);
    let link = outcome["cps_url"].as_str().unwrap().to_owned();

    let opened = page(&mut browser, &format!("goto {link}"));
    browser.check(
        opened["status"] == 403
            && opened["text"]
                .as_str()
                .unwrap()
                .contains("belongs to another browser"),
        format!(
            "the foreign link answered {}: {}",
            opened["status"], opened["text"]
        ),
    );
    let account = page(&mut browser, "goto /account");
    browser.check(
        account["pageUrl"] == format!("{base}/"),
        format!("the browser was signed in: {}", account["pageUrl"]),
    );
    // The link itself was not spent: its own browser still signs in.
    let own = http_get(&link, &[("Cookie", &attackers_cookie)]);
    browser.check(
        own.status == 303,
        format!("its own browser got {}", own.status),
    );
}

/// A code confirmed from a device on another network: the page shows the
/// identity's fingerprint and signs in only when the person clicks.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_sign_in_from_another_network_waits_for_a_click() {
    let tools = Tools::find();
    let site = Site::start(|config| {
        config.trusted_proxies = vec![sqrl_server::net::IpNet::parse("127.0.0.1").unwrap()];
    });
    let base = site.base();
    let cli = Cli::with_identity();
    let mut browser = Browser::open(&tools, &base, Mode::Elsewhere, artifact_dir("elsewhere"));
    let ready = browser.expect("ready", Duration::from_secs(40));
    let url = ready["url"].as_str().unwrap();

    // The device notices the other network (with --yes alone it would
    // stop; the CLI's own tests show that) and is told to go on.
    let outcome = cli.run(&["login", url, "--yes", "--allow-relayed-code"]);
    let shown = cli.run(&["identity", "show", "--site", url]);
    let idk = IdentityKey::from_base64url(shown["idk"].as_str().unwrap()).unwrap();

    browser.send("expect-check");
    let check = browser.expect("check", Duration::from_secs(20));
    browser.check(
        check["fingerprint"] == idk.fingerprint() && outcome["fingerprint"] == idk.fingerprint(),
        format!(
            "the page shows {}, the CLI {}, the identity is {}",
            check["fingerprint"],
            outcome["fingerprint"],
            idk.fingerprint()
        ),
    );
    browser.check(
        check["pageUrl"] == format!("{base}/"),
        format!("the page moved on without a click: {}", check["pageUrl"]),
    );
    let account = page(&mut browser, "click #check-continue");
    browser.check(
        account["pageUrl"] == format!("{base}/account")
            && account["text"]
                .as_str()
                .unwrap()
                .contains(&idk.fingerprint()),
        format!(
            "after the click: {} {}",
            account["pageUrl"], account["text"]
        ),
    );
}

/// Same-device sign-in as a person does it: a SQRL app runs on this
/// computer (`sqrl agent` on 127.0.0.1:25519), the page notices it and makes
/// the same-device link the obvious choice, a click on it goes through the
/// app (which signs in with CPS and redirects the browser to the site's
/// single-use link), and the link opens the account: the page's own cookie,
/// which the link is redeemed with, comes along through the redirect from
/// localhost.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn the_same_device_link_signs_in_through_the_local_app() {
    let tools = Tools::find();
    let site = Site::start(|_| {});
    let base = site.base();
    let cli = Cli::with_identity();
    let mut agent = cli.agent();
    let mut browser = Browser::open(&tools, &base, Mode::Sse, artifact_dir("same-device"));
    browser.expect("ready", Duration::from_secs(40));
    browser.send("expect-local-app");
    let local = browser.expect("local-app", Duration::from_secs(20));
    browser.check(
        local["linkClass"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .any(|class| class == "primary"),
        format!("the same-device link is not the primary action: {local}"),
    );

    let signed_in = page(&mut browser, "click #link");
    let _ = agent.wait();
    browser.check(
        signed_in["pageUrl"] == format!("{base}/account"),
        format!(
            "the same-device link led to {}: {}",
            signed_in["pageUrl"], signed_in["text"]
        ),
    );
    let text = signed_in["text"].as_str().unwrap();
    browser.check(
        text.contains("same-device"),
        format!("the login is not recorded as same-device:\n{text}"),
    );
    let documents: Vec<String> = requests(&signed_in)
        .into_iter()
        .filter(|r| r["navigation"] == true)
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    browser.check(
        documents
            .iter()
            .any(|url| url.starts_with("http://localhost:25519/"))
            && documents
                .iter()
                .any(|url| path_of(url).starts_with("/login/complete?token=")),
        format!("the browser did not go through the app: {documents:?}"),
    );
}

/// Someone who saw the code answers the page's same-device link first, from
/// another network, with their own identity, and sends this browser (which
/// holds the page's cookie) the session link. The browser is shown whose
/// identity it would be signed in as, and is signed in only when the person
/// clicks Continue (a same-origin form post).
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_same_device_link_answered_from_elsewhere_shows_the_identity_first() {
    let tools = Tools::find();
    let site = Site::start(|config| {
        config.trusted_proxies = vec![sqrl_server::net::IpNet::parse("127.0.0.1").unwrap()];
    });
    let base = site.base();
    let mut browser = Browser::open(&tools, &base, Mode::Sse, artifact_dir("cps-elsewhere"));
    let ready = browser.expect("ready", Duration::from_secs(40));
    let (link, fingerprint) =
        harness::answer_with_cps_from(ready["link"].as_str().unwrap(), "203.0.113.9");

    let shown = page(&mut browser, &format!("goto {link}"));
    browser.check(
        shown["status"] == 200
            && shown["text"].as_str().unwrap().contains(&fingerprint)
            && path_of(shown["pageUrl"].as_str().unwrap()).starts_with("/login/complete"),
        format!(
            "the link did not stop to show the identity: {} {}",
            shown["pageUrl"], shown["text"]
        ),
    );
    let signed_in = page(&mut browser, "click #check-continue");
    browser.check(
        signed_in["pageUrl"] == format!("{base}/account")
            && signed_in["text"].as_str().unwrap().contains(&fingerprint),
        format!(
            "Continue led to {}: {}",
            signed_in["pageUrl"], signed_in["text"]
        ),
    );
}

/// A person opens a page of an app that nginx protects with sqrl-server
/// (mounted under `/auth/` of the same site, by the operator configuration
/// `deploy/nginx/sqrl-forward-auth.conf`): they are sent to the login page,
/// sign in with their phone (the `sqrl` CLI scanning the screenshot), and
/// the page takes them back to where they were going, where the app knows
/// who they are. Logging out on the account page ends their access.
#[test]
#[cfg_attr(
    any(no_browser, no_nginx),
    ignore = "needs Chromium, Node.js 20+, playwright-core (.ci/install-browser) and nginx (.ci/install-server-tools)"
)]
fn an_app_behind_nginx_sends_the_person_to_sign_in_and_back() {
    let tools = Tools::find();
    let port = harness::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let site = Site::start(|config| {
        config.public_origin = Some(sqrl_server::config::PublicOrigin::parse(&origin).unwrap());
        config.path_prefix = "/auth".to_owned();
        config.trusted_proxies = vec![sqrl_server::net::IpNet::parse("127.0.0.1").unwrap()];
    });
    let app = harness::start_protected_app();
    let nginx = harness::Nginx::start(port, site.addr(), app);
    let cli = Cli::with_identity();
    let wanted = format!("{origin}/app/page/");
    let mut browser = Browser::open(
        &tools,
        &format!("{origin}/app/page"),
        Mode::Sse,
        artifact_dir("forward-auth"),
    );

    // Turned away to the login page, which is to bring them back.
    let ready = browser.expect("ready", Duration::from_secs(40));
    let rd: String = url::form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
    browser.check(
        ready["pageUrl"] == format!("{origin}/auth/?rd={rd}"),
        format!(
            "the app's page led to {}; nginx: {}",
            ready["pageUrl"],
            nginx.errors()
        ),
    );
    let code = ready["url"].as_str().unwrap();
    browser.check(
        code.starts_with(&format!("qrl://127.0.0.1:{port}/auth/cli.sqrl?nut=")),
        format!("the page shows {code:?}"),
    );

    // The phone scans the picture and confirms; the page, left alone,
    // signs in and returns to the app, which hears who signed in.
    let screenshot = ready["screenshot"].as_str().unwrap().to_owned();
    cli.run(&["login", &screenshot, "--yes"]);
    browser.send("expect-path /app/page/");
    let back = browser.expect("page", Duration::from_secs(30));
    browser.check(
        back["pageUrl"] == wanted,
        format!("the login ended at {}", back["pageUrl"]),
    );
    let text = back["text"].as_str().unwrap();
    let user = text
        .strip_prefix("app page /app/page/; users [\"")
        .and_then(|rest| rest.strip_suffix("\"]"))
        .unwrap_or_else(|| browser.fail(format!("the app saw: {text:?}")));
    browser.check(
        user.len() == 22
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        format!("the user header is {user:?}, not an account handle"),
    );
    let documents: Vec<String> = requests(&back)
        .into_iter()
        .filter(|r| r["navigation"] == true)
        .map(|r| path_of(r["url"].as_str().unwrap()).to_owned())
        .collect();
    browser.check(
        documents.first().map(String::as_str) == Some("/app/page/")
            && documents.last().map(String::as_str) == Some("/app/page/")
            && documents
                .iter()
                .all(|d| d.starts_with("/app/") || d.starts_with("/auth/")),
        format!("the browser loaded these documents: {documents:?}"),
    );
    browser.check(
        back["pageErrors"].as_array().is_some_and(Vec::is_empty),
        format!("script errors: {}", back["pageErrors"]),
    );

    // The account page, under the prefix; logging out there ends access.
    let account = page(&mut browser, "goto /auth/account");
    browser.check(
        account["pageUrl"] == format!("{origin}/auth/account"),
        format!("/auth/account led to {}", account["pageUrl"]),
    );
    let out = page(&mut browser, "click form[action=\"/auth/logout\"] button");
    browser.check(
        out["pageUrl"] == format!("{origin}/auth/"),
        format!("Log out led to {}: {}", out["pageUrl"], out["text"]),
    );
    let again = page(&mut browser, "goto /app/page/");
    browser.check(
        again["pageUrl"] == format!("{origin}/auth/?rd={rd}"),
        format!(
            "after logging out the app's page led to {}",
            again["pageUrl"]
        ),
    );
}

/// A site's app signs people in through sqrl-server's OpenID Connect
/// provider with a certified relying-party library (`openid-client`, in
/// `oidc-rp.mjs`): the person clicks "log in" on the app, is sent to the
/// SQRL login page, signs in with their phone (the `sqrl` CLI scanning the
/// screenshot), allows the app on the consent screen, and is back at the
/// app, which has validated the ID token (signature against the published
/// keys, issuer, audience, nonce), read userinfo, refreshed, refused a
/// tampered ID token, and revoked its tokens.
#[test]
#[cfg_attr(
    no_browser,
    ignore = "needs Chromium, Node.js 20+ and playwright-core: run .ci/install-browser"
)]
fn a_relying_party_signs_the_person_in_with_openid_client() {
    use sqrl_server::oidc::clients::{ClientSecretText, ClientSettings, OidcConfig, OidcSettings};
    const SECRET: &str = "demo-app-secret-0123456789-0123456789";
    let tools = Tools::find();
    let rp_port = harness::free_port();
    let site = Site::start(|config| {
        let settings = OidcSettings {
            clients: vec![ClientSettings {
                client_id: "demo".into(),
                name: Some("Demo App".into()),
                client_secret: Some(ClientSecretText::new(SECRET)),
                redirect_uris: vec![format!("http://127.0.0.1:{rp_port}/callback")],
                post_logout_redirect_uris: vec![format!("http://127.0.0.1:{rp_port}/signed-out")],
                // What the library expects when told nothing.
                id_token_signed_response_alg: Some("RS256".into()),
                ..ClientSettings::default()
            }],
            ..OidcSettings::default()
        };
        config.oidc = OidcConfig::from_settings(&settings).unwrap();
    });
    let rp = RelyingParty::start(&tools, rp_port, &site.base(), "demo", SECRET);
    let cli = Cli::with_identity();
    let mut browser = Browser::open(
        &tools,
        &format!("{}/login", rp.base),
        Mode::Sse,
        artifact_dir("oidc"),
    );

    // The app sends the person to the SQRL login page.
    let ready = browser.expect("ready", Duration::from_secs(40));
    let page_url = ready["pageUrl"].as_str().unwrap_or_default();
    browser.check(
        page_url.starts_with(&format!("{}/?rd=", site.base())),
        format!("the app's login led to {page_url}"),
    );

    // The phone signs in; the page moves on by itself to the consent
    // screen, which names the app.
    let screenshot = ready["screenshot"].as_str().unwrap().to_owned();
    cli.run(&["login", &screenshot, "--yes"]);
    browser.send("expect-path /oidc/authorize");
    let consent = browser.expect("page", Duration::from_secs(30));
    let text = consent["text"].as_str().unwrap_or_default();
    browser.check(
        text.contains("Sign in to Demo App?") && text.contains("fingerprint"),
        format!("the consent screen says: {text}"),
    );

    // Allowed: back at the app, which reports what the library did.
    let back = page(&mut browser, "click #allow");
    let at = back["pageUrl"].as_str().unwrap_or_default();
    browser.check(
        at.starts_with(&format!("{}/callback?", rp.base)),
        format!("Allow led to {at}: {}", back["text"]),
    );
    let text = back["text"].as_str().unwrap_or_default();
    let result: Value = text
        .find('{')
        .and_then(|start| serde_json::from_str(&text[start..]).ok())
        .unwrap_or_else(|| browser.fail(format!("the app shows: {text}")));
    browser.check(
        result.get("failed").is_none(),
        format!("the library refused the sign-in: {result}"),
    );
    let id_token = &result["idToken"];
    let sub = id_token["sub"].as_str().unwrap_or_default();
    browser.check(
        sub.len() == 22 && id_token["nonce"] == result["expectedNonce"],
        format!("ID token: {id_token}"),
    );
    browser.check(
        id_token["amr"] == serde_json::json!(["sqrl", "xdev"])
            && id_token["iss"] == site.base().as_str()
            && id_token["aud"] == "demo",
        format!("ID token: {id_token}"),
    );
    let fingerprint = result["userinfo"]["sqrl_fingerprint"]
        .as_str()
        .unwrap_or_default();
    browser.check(
        result["userinfo"]["sub"] == sub && !fingerprint.is_empty(),
        format!("userinfo: {}", result["userinfo"]),
    );
    browser.check(
        result["refresh"]["sub"] == sub,
        format!("refresh: {}", result["refresh"]),
    );
    let tampered = result["tampered"]["error"].as_str().unwrap_or_default();
    browser.check(
        !tampered.is_empty(),
        format!("a tampered ID token was {}", result["tampered"]),
    );
    browser.check(
        result["introspectedBefore"] == true
            && result["revoked"] == true
            && result["introspectedAfter"] == false
            && result["userinfoAfterRevocation"]["error"].is_string(),
        format!("introspection and revocation: {result}"),
    );

    // The account page lists the app among the connected ones, and still
    // fits a phone; its Disconnect button, clicked, takes the app off.
    page(&mut browser, &format!("goto {}/account", site.base()));
    browser.send("layout 390");
    let layout = browser.expect("layout", Duration::from_secs(20));
    browser.check(
        layout["scrollWidth"].as_u64() <= Some(390)
            && layout["overflowing"].as_array().is_some_and(Vec::is_empty),
        format!(
            "the page with a connected app is wider than the phone: scrollWidth {}, overflowing {}",
            layout["scrollWidth"], layout["overflowing"]
        ),
    );
    let text = layout["text"].as_str().unwrap_or_default();
    browser.check(
        text.contains("Connected apps") && text.contains("Demo App") && text.contains("Disconnect"),
        format!("the app is not listed:\n{text}"),
    );
    let after = page(&mut browser, "click #connected-apps button");
    let text = after["text"].as_str().unwrap_or_default();
    browser.check(
        after["pageUrl"] == format!("{}/account", site.base())
            && !text.contains("Demo App")
            && text.contains("You have not allowed any app"),
        format!("Disconnect led to {}:\n{text}", after["pageUrl"]),
    );

    // The app asks to sign the person out without a hint of this session:
    // the provider asks first, and the person's click on "Sign out" (a
    // form post whose answer sends the browser to the app's origin, which
    // the page's policy must allow) ends the session and returns to the app.
    let signed_out = format!("{}/signed-out", rp.base);
    let ask: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", "demo")
        .append_pair("post_logout_redirect_uri", &signed_out)
        .append_pair("state", "bye")
        .finish();
    let question = page(
        &mut browser,
        &format!("goto {}/oidc/logout?{ask}", site.base()),
    );
    let text = question["text"].as_str().unwrap_or_default();
    browser.check(
        text.contains("Sign out?"),
        format!("the sign-out request showed: {text}"),
    );
    let out = page(&mut browser, "click #sign-out");
    browser.check(
        out["pageUrl"] == format!("{signed_out}?state=bye"),
        format!("Sign out led to {}: {}", out["pageUrl"], out["text"]),
    );
    let account = page(&mut browser, &format!("goto {}/account", site.base()));
    let at = account["pageUrl"].as_str().unwrap_or_default();
    browser.check(
        !at.ends_with("/account"),
        format!("after signing out the account page still opened: {at}"),
    );
}
