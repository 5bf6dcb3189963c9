//! Defences against the network and the person in the middle, from the
//! outside: real HTTP, a real SQLite file. Each test names the attack it
//! stops and fails when that defence is removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use sqrl_core::msg::{ClientOptions as O, Command};
use sqrl_server::config::{Config, OperatorToken, PublicOrigin};
use sqrl_server::net::IpNet;

/// Clients and browsers may pose as other addresses through X-Forwarded-For.
fn behind_local_proxy(config: &mut Config) {
    config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
}

fn with_operator(config: &mut Config) {
    config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
}

/// `GET path` on the server's own address, naming `host` in the `Host` header.
async fn get_as_host(h: &Harness, path: &str, host: &str) -> reqwest::Response {
    h.http
        .get(format!("http://{}{path}", h.server.addr()))
        .header("host", host)
        .send()
        .await
        .unwrap()
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

// --- Host -------------------------------------------------------------------

/// DNS rebinding: a page on evil.example whose name resolves to this service
/// would start logins "from" the victim's own address and read their `pag`.
#[tokio::test]
async fn a_foreign_host_is_misdirected() {
    let h = Harness::start().await;
    for path in ["/nut.sqrl", "/", "/cli.sqrl"] {
        let response = get_as_host(&h, path, "evil.example").await;
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    assert_eq!(h.in_flight().await.attempts, 0);
    // A load balancer's health check addresses the instance, not the name.
    let health = get_as_host(&h, "/healthz", "10.0.0.5:8080").await;
    assert_eq!(health.status(), StatusCode::OK);
    // The public origin itself is served.
    assert_eq!(h.get("/nut.sqrl").await.status(), StatusCode::OK);
}

// --- Same-device links ----------------------------------------------------------

/// Login CSRF: an attacker mints a same-device link for their own identity
/// and sends the victim's browser to it; the victim would be signed in to the
/// attacker's account without noticing.
#[tokio::test]
async fn a_same_device_link_works_only_in_the_browser_that_opened_the_page() {
    let h = Harness::start().await;
    let attacker = Identity::new();
    let mut attackers_browser = h.browser();
    let mut c = SqrlConversation::new(&h.http, &attackers_browser.mint_url().await);
    c.query(&attacker, O::CPS).await;
    let reply = c.ident(&attacker, O::CPS, true).await;
    assert_tif(&reply, 0x05);
    let link = reply.url().expect("url= with cps").to_owned();

    // The victim's browser, with a login page of its own open.
    let mut victim = h.browser();
    victim.open_login_page().await;
    assert_eq!(victim.collect(&link).await.0, StatusCode::FORBIDDEN);
    let bare = h.browser().collect(&link).await.0;
    assert_eq!(bare, StatusCode::FORBIDDEN);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
    assert!(!victim.has_cookie("sqrl_session"));

    // The link was not spent: its own browser still signs in with it.
    let (status, _) = attackers_browser.collect(&link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(attackers_browser.has_cookie("sqrl_session"));
}

/// A link minted for no page at all: a POST to a made-up nut gets a fresh
/// nut, and a CPS `ident` on it used to return a session link.
#[tokio::test]
async fn a_same_device_login_without_a_waiting_page_is_refused() {
    let h = Harness::start().await;
    let id = Identity::new();
    let made_up = h.minted_url().await.replace("nut=", "nut=AAAA");
    let mut c = SqrlConversation::new(&h.http, &made_up);
    assert_tif(&c.query(&id, O::CPS | O::NOIPTEST).await, 0x60);
    // The retry with the fresh nut: no page waits behind it.
    assert_tif(&c.query(&id, O::CPS | O::NOIPTEST).await, 0x00);
    let reply = c.ident(&id, O::CPS | O::NOIPTEST, true).await;
    assert_tif(&reply, 0x60);
    assert!(reply.url().is_none());
    assert_eq!(h.in_flight().await.links, 0);
    assert_eq!(h.identity_count(), 0);
}

/// A made-up nut used to cost a stored conversation (kept for two minutes)
/// per request: a flood of them filled the store. Its retry conversation,
/// which has no page behind it, lives in a bounded cache instead; the retry
/// still works.
#[tokio::test]
async fn a_made_up_nut_stores_no_conversation() {
    let h = Harness::start().await;
    let id = Identity::new();
    h.associate(&id).await;
    let before = h.in_flight().await.conversations;
    for _ in 0..20 {
        let made_up = h.minted_url().await.replace("nut=", "nut=AAAA");
        let minted = h.in_flight().await.conversations;
        let mut c = SqrlConversation::new(&h.http, &made_up);
        assert_tif(&c.query(&id, O::NOIPTEST).await, 0x61);
        assert_eq!(
            h.in_flight().await.conversations,
            minted,
            "no row for the made-up nut's retry"
        );
    }
    assert_eq!(
        h.in_flight().await.conversations,
        before + 20,
        "only the pages' own nuts"
    );
    // The retry of a stale link still works for identity management.
    let made_up = h.minted_url().await.replace("nut=", "nut=AAAA");
    let mut c = SqrlConversation::new(&h.http, &made_up);
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x61);
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x01);
    let disabled = c
        .run(Request::new(Command::Disable, &id).options(O::NOIPTEST))
        .await;
    assert_tif(&disabled, 0x09);
}

// --- Sessions die with the identity --------------------------------------------

/// A user who disables SQRL login because their identity may be in someone
/// else's hands expects every session it opened to end.
#[tokio::test]
async fn disable_ends_every_session_of_the_account() {
    let h = Harness::start().await;
    let id = Identity::new();
    let bystander = Identity::new();
    let mut laptop = h.logged_in_browser(&id, "Laptop/1.0").await;
    let mut phone = h.logged_in_browser(&id, "Phone/1.0").await;
    let mut other = h.logged_in_browser(&bystander, "Other/1.0").await;
    assert_eq!(laptop.get("/account").await.status(), StatusCode::OK);

    let mut c = h.conversation().await;
    assert_tif(&c.query(&id, NONE).await, 0x05);
    assert_tif(&c.run(Request::new(Command::Disable, &id)).await, 0x0D);

    for browser in [&mut laptop, &mut phone] {
        assert_eq!(
            browser.get("/account").await.status(),
            StatusCode::SEE_OTHER,
            "logged out"
        );
    }
    assert_eq!(other.get("/account").await.status(), StatusCode::OK);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 1);
}

#[tokio::test]
async fn operator_removal_ends_every_session_of_the_account() {
    let h = Harness::start_with(with_operator).await;
    let id = Identity::new();
    let mut browser = h.logged_in_browser(&id, "Laptop/1.0").await;
    let c = h.conversation().await;
    let idk = sqrl_core::base64url::encode(id.idk(&c.url).to_bytes());
    let status = h
        .operator_status(Method::DELETE, &format!("/identities/{idk}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        browser.get("/account").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

/// Rekeying retires an identity feared lost; its sessions go with it unless
/// the site chooses otherwise. The browser the rekey signs in keeps its new
/// session either way.
#[tokio::test]
async fn rekey_ends_the_old_sessions_unless_the_site_keeps_them() {
    for revoke in [true, false] {
        let h = Harness::start_with(|config| config.revoke_sessions_on_rekey = revoke).await;
        let old = Identity::new();
        let new = Identity::new();
        let mut before = h.logged_in_browser(&old, "Before/1.0").await;

        let mut browser = h.browser();
        let page = browser.open_login_page().await;
        let mut c = SqrlConversation::new(&h.http, &page.url);
        let reply = c.run(Request::query(&new).previous(&old)).await;
        assert_tif(&reply, 0x06);
        let suk = *reply.suk().unwrap();
        let replace = Request::ident(&new)
            .previous(&old)
            .new_lock()
            .urs(&old, suk);
        assert_tif(&c.run(replace).await, 0x05);
        let url = browser.pag_url(&page.nut).await;
        assert_eq!(browser.collect(&url).await.0, StatusCode::SEE_OTHER);

        let old_session = before.get("/account").await.status();
        let expected = if revoke {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::OK
        };
        assert_eq!(old_session, expected, "revoke_sessions_on_rekey = {revoke}");
        assert_eq!(browser.get("/account").await.status(), StatusCode::OK);
    }
}

/// SPEC 2.2: after the client's `remove` the browser stays logged in, so
/// that a new identity can be associated with the account.
#[tokio::test]
async fn client_remove_keeps_the_browser_session() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut browser = h.logged_in_browser(&id, "Laptop/1.0").await;
    let mut c = h.conversation().await;
    let suk = *c.query(&id, O::SUK).await.suk().unwrap();
    let reply = c
        .run(Request::new(Command::Remove, &id).urs(&id, suk))
        .await;
    assert_tif(&reply, 0x04);
    assert_eq!(browser.get("/account").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    let h = Harness::start_with(|config| {
        config.session_idle_timeout = std::time::Duration::from_secs(600);
        config.session_lifetime = std::time::Duration::from_secs(3600);
    })
    .await;
    let id = Identity::new();
    let clock = h.server.clock();

    // Used every 9 minutes: alive until the absolute lifetime.
    let mut active = h.logged_in_browser(&id, "Active/1.0").await;
    for _ in 0..6 {
        clock.advance(9 * 60);
        assert_eq!(active.get("/account").await.status(), StatusCode::OK);
    }
    clock.advance(9 * 60);
    assert_eq!(
        active.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "past the absolute lifetime"
    );

    // Unused for longer than the idle timeout: over, and gone from the table.
    let mut idle = h.logged_in_browser(&id, "Idle/1.0").await;
    let mut watcher = h.logged_in_browser(&id, "Watcher/1.0").await;
    clock.advance(5 * 60);
    assert_eq!(watcher.get("/account").await.status(), StatusCode::OK);
    clock.advance(6 * 60);
    let html = watcher.get("/account").await.text().await.unwrap();
    let listed = html
        .split("Recent logins")
        .next()
        .unwrap()
        .split("Active sessions")
        .nth(1)
        .unwrap();
    assert!(listed.contains("Watcher/1.0"), "{listed}");
    assert!(
        !listed.contains("Idle/1.0"),
        "not listed once idle: {listed}"
    );
    assert_eq!(idle.get("/account").await.status(), StatusCode::SEE_OTHER);
    let left = h.count("SELECT count(*) FROM sessions WHERE user_agent = 'Idle/1.0'");
    assert_eq!(left, 0);
}

// --- https ----------------------------------------------------------------------------

/// Behind a TLS-terminating proxy the origin is https: cookies are `Secure`
/// with the `__Host-` prefix (no sibling subdomain can plant or shadow them),
/// and browsers are told to keep to https.
#[tokio::test]
async fn an_https_origin_gets_host_prefixed_cookies_and_hsts() {
    let h = Harness::start_with(|config| {
        config.public_origin = Some(PublicOrigin::parse("https://login.example.com").unwrap());
    })
    .await;
    let page = get_as_host(&h, "/", "login.example.com").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookies = set_cookies(&page);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(cookie.name().starts_with("__Host-sqrl_pag_"), "{cookie}");
    // What the `__Host-` prefix demands, or the browser drops the cookie.
    assert_eq!(cookie.secure(), Some(true), "{cookie}");
    assert_eq!(cookie.path(), Some("/"), "{cookie}");
    assert_eq!(cookie.domain(), None, "{cookie}");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");

    let plain = Harness::start().await;
    let page = plain.get("/").await;
    assert!(page.headers().get("strict-transport-security").is_none());
}

// --- QRLJacking: what the person at the device and the page are shown -----------

fn notice_of(reply: &sqrl_core::msg::ServerReply) -> Option<String> {
    reply.ask().map(|ask| ask.message().to_owned())
}

/// A code relayed from an attacker's screen names the attacker's browser,
/// not the victim's, before the victim confirms.
#[tokio::test]
async fn a_device_on_another_network_is_told_which_browser_it_signs_in() {
    let h = Harness::start_with(behind_local_proxy).await;
    let id = Identity::new();
    h.associate(&id).await;

    let mut attacker = h.browser().posing_as("198.51.100.7");
    attacker.user_agent = FIREFOX.to_owned();
    let page = attacker.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    let reply = c.query(&id, O::NOIPTEST).await;
    assert_tif(&reply, 0x01);
    let notice = notice_of(&reply).expect("an ask describing the browser");
    assert!(
        notice.contains("Firefox on Linux at 198.51.100.7"),
        "{notice}"
    );
    assert!(notice.contains("do not continue"), "{notice}");

    // On the browser's own network there is nothing to warn about.
    let mut own = h.browser().posing_as("203.0.113.9");
    let page = own.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x05);
    assert!(notice_of(&reply).is_none());
}

/// Whoever answers a page's code first from elsewhere (a relayed code, or an
/// observer racing the victim) would sign the page in to their own account:
/// the page shows the identity and waits for a click. From the browser's own
/// network it signs in at once.
#[tokio::test]
async fn a_confirmation_from_another_network_shows_the_identity_on_the_page() {
    let h = Harness::start_with(behind_local_proxy).await;
    let observer = Identity::new();

    let mut victim = h.browser().posing_as("198.51.100.7");
    let page = victim.open_login_page().await;
    let mut events = victim.events(&page.nut).await;
    events.expect("pending").await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    c.query(&observer, O::NOIPTEST).await;
    assert_tif(&c.ident(&observer, O::NOIPTEST, true).await, 0x01);
    events.expect("scanned").await;
    let confirmed = events.expect("confirmed").await;
    let fingerprint = confirmed.check.expect("the page must ask first");
    assert_eq!(fingerprint.len(), 39, "{fingerprint}");
    let (_, polled) = victim.pag_json(&page.nut).await;
    assert_eq!(polled["check"], fingerprint.as_str());

    // Same network: no check.
    let mut browser = h.browser().posing_as("198.51.100.7");
    let page = browser.open_login_page().await;
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("198.51.100.7");
    c.query(&observer, NONE).await;
    assert_tif(&c.ident(&observer, NONE, false).await, 0x05);
    events.expect("scanned").await;
    assert_eq!(events.expect("confirmed").await.check, None);
}

// --- Operator-only --------------------------------------------------------------

#[tokio::test]
async fn metrics_are_the_operators_and_count_refusals() {
    let h = Harness::start_with(with_operator).await;
    assert_eq!(h.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    let _ = get_as_host(&h, "/", "evil.example").await;
    let metrics = text(h.http.get(h.url("/metrics")).bearer_auth(OPERATOR_TOKEN)).await;
    assert!(
        metrics.contains("sqrl_requests_refused_total{reason=\"misdirected\"} 1"),
        "{metrics}"
    );
    let off = Harness::start().await;
    assert_eq!(off.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

/// Someone who photographed the code answers it first with a same-device
/// (CPS) login of their own identity, and sends the link to the victim's
/// browser, which holds the page's cookie. The link was confirmed from
/// another network, so the browser is shown the identity and signs in only
/// on a same-origin click.
#[tokio::test]
async fn a_same_device_link_confirmed_from_another_network_asks_first() {
    let h = Harness::start_with(behind_local_proxy).await;
    let observer = Identity::new();
    let mut victim = h.browser().posing_as("198.51.100.7");
    let page = victim.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.link).posing_as("203.0.113.9");
    c.query(&observer, O::CPS | O::NOIPTEST).await;
    let reply = c.ident(&observer, O::CPS | O::NOIPTEST, true).await;
    assert_tif(&reply, 0x01);
    let link = reply.url().unwrap().to_owned();

    let shown = victim.get(&link).await;
    assert_eq!(shown.status(), StatusCode::OK);
    let html = shown.text().await.unwrap();
    let fingerprint = observer.idk(&c.url).fingerprint();
    assert!(html.contains(&fingerprint), "{html}");
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0, "not yet");

    let token = link.rsplit("token=").next().unwrap().to_owned();
    let post = |site: &'static str| {
        victim
            .request(Method::POST, "/login/complete")
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    assert_eq!(
        post("cross-site").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
    let clicked = post("same-origin").await.unwrap();
    assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 1);

    // From the browser's own network the link signs in at once.
    let mut own = h.browser().posing_as("198.51.100.7");
    let page = own.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.link).posing_as("198.51.100.7");
    c.query(&observer, O::CPS).await;
    let link = c
        .ident(&observer, O::CPS, false)
        .await
        .url()
        .unwrap()
        .to_owned();
    assert_eq!(own.collect(&link).await.0, StatusCode::SEE_OTHER);
}

/// A site that learnt a page's nut must not navigate the browser holding
/// the page's cookie into collecting it: only the page (same origin) does.
#[tokio::test]
async fn collecting_with_the_cookie_refuses_a_cross_site_navigation() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let collect = format!("/login/collect?nut={}", page.nut);
    let refused = browser
        .request(Method::GET, &collect)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let collected = browser
        .request(Method::GET, &collect)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(collected.status(), StatusCode::SEE_OTHER);
}

// --- Memory -------------------------------------------------------------------

/// A flood of page loads from many addresses (each under the rate limit)
/// would keep a login in flight per load until it expires: memory grows
/// with the flood. Beyond the configured number the server refuses new
/// logins, and says when to try again, while the ones it keeps go on.
#[tokio::test]
async fn logins_in_flight_are_capped() {
    let h = Harness::start_with(|config| config.max_logins_in_flight = 2).await;
    assert_eq!(h.get("/nut.sqrl").await.status(), StatusCode::OK);
    assert_eq!(h.get("/").await.status(), StatusCode::OK);
    for path in ["/nut.sqrl", "/", "/png.sqrl"] {
        let refused = h.get(path).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(refused.headers()["retry-after"], "10");
        let text = refused.text().await.unwrap();
        assert!(text.contains("too many logins in progress"), "{text}");
    }
    assert_eq!(h.in_flight().await.attempts, 2);
}
