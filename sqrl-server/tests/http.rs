//! The service from the outside: real HTTP on 127.0.0.1, a real SQLite file,
//! a SQRL client built on `sqrl_core`. Each protocol scenario asserts the exact
//! TIF and, where nothing may change, that the account tables did not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use sqrl_core::base64url;
use sqrl_core::msg::{Ask, Button, ClientOptions as O, ClientRequest, Command, RequestBody};
use sqrl_server::net::IpNet;

/// Mints a nut through the SSP API and returns its SQRL URL.
async fn minted_url(h: &Harness) -> String {
    let text = h
        .http
        .get(format!("{}/nut.sqrl", h.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let nut = text
        .split('&')
        .find_map(|pair| pair.strip_prefix("nut="))
        .unwrap()
        .to_owned();
    format!(
        "{}/cli.sqrl?nut={nut}",
        h.base().replace("http://", "qrl://")
    )
}

/// Associates `id` with a new account (query + ident); returns the conversation.
async fn associate(h: &Harness, id: &Identity) -> SqrlConversation {
    let mut conversation = SqrlConversation::new(&h.http, &minted_url(h).await);
    assert_tif(&conversation.query(id, NONE).await, 0x04);
    assert_tif(&conversation.ident(id, NONE, true).await, 0x05);
    conversation
}

fn identity_count(h: &Harness) -> i64 {
    h.count("SELECT count(*) FROM sqrl_identities")
}

#[tokio::test]
async fn full_cross_device_login_reaches_the_waiting_page() {
    let h = Harness::start().await;
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    assert!(page.url.starts_with("qrl://127.0.0.1:"), "{}", page.url);
    assert!(
        !page.url.contains("can="),
        "the QR code carries no can= (SPEC 1.1)"
    );
    assert!(page.link.contains("&can="), "the same-device link does");
    let pag_secret = browser
        .cookies
        .iter()
        .find(|(k, _)| *k == format!("sqrl_pag_{}", page.nut))
        .expect("the attempt's secret is a cookie")
        .1
        .clone();
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;

    let phone = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.url);
    let reply = conversation.query(&phone, NONE).await;
    assert_tif(&reply, 0x04); // unknown identity, same IP
    let scanned = events.expect("scanned").await;
    assert!(
        scanned.url.is_none(),
        "nothing to collect before the user confirms"
    );

    let reply = conversation.ident(&phone, NONE, true).await;
    assert_tif(&reply, 0x05);
    assert!(reply.url().is_none(), "no url= without cps");
    let confirmed = events.expect("confirmed").await;
    let link = confirmed.url.expect("the page gets its link");
    assert_eq!(link, format!("/login/collect?nut={}", page.nut));

    let (status, location) = browser.collect(&link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
    assert!(browser.has_cookie("sqrl_session"));
    assert!(
        !browser.has_cookie(&format!("sqrl_pag_{}", page.nut)),
        "attempt cookie cleared"
    );
    events.expect("logged-in").await;
    assert!(
        events.next(Duration::from_millis(300)).await.is_none(),
        "stream ends"
    );

    let account = browser.get("/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let html = account.text().await.unwrap();
    assert!(html.contains("id=\"fingerprint\""));
    assert!(html.contains("cross-device"));
    assert!(html.contains("TestBrowser/1.0"));

    let db = h.db();
    let method: String = db
        .query_row("SELECT method FROM login_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(method, "cross-device");
    let hash: Vec<u8> = db
        .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    let cookie = browser
        .cookies
        .iter()
        .find(|(k, _)| k == "sqrl_session")
        .unwrap()
        .1
        .clone();
    assert_ne!(hash, cookie.as_bytes(), "sessions are stored hashed");
    assert_eq!(
        base64url::decode(&cookie).unwrap().len(),
        16,
        "128-bit session token"
    );

    // Without the attempt's secret the link is worth nothing, and with it
    // the login is collected once.
    let (status, _) = h.browser().collect(&link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut again = h.browser();
    again.cookies = vec![(format!("sqrl_pag_{}", page.nut), pag_secret.clone())];
    assert_eq!(again.collect(&link).await.0, StatusCode::GONE);

    // A second login of the same identity: known now.
    let mut browser2 = h.browser();
    let page2 = browser2.open_login_page().await;
    let mut conversation = SqrlConversation::new(&h.http, &page2.url);
    assert_tif(&conversation.query(&phone, NONE).await, 0x05);
    assert_tif(&conversation.ident(&phone, NONE, false).await, 0x05);
    assert_eq!(h.count("SELECT count(*) FROM accounts"), 1);
}

#[tokio::test]
async fn someone_who_only_sees_the_code_cannot_collect_the_login() {
    let h = Harness::start().await;
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let phone = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.url);
    conversation.query(&phone, NONE).await;
    assert_tif(&conversation.ident(&phone, NONE, true).await, 0x05);

    let observer = h.http.clone();
    let base = h.base();
    for path in [
        format!("/pag.sqrl?nut={}", page.nut),
        format!("/pag.sqrl?nut={}&pag=AAAAAAAAAAAAAAAAAAAAAA", page.nut),
        format!("/login/events?nut={}", page.nut),
        format!("/pag.sqrl?nut={}&pag=not-a-token", page.nut),
    ] {
        let response = observer.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let rotate = observer
        .post(format!("{base}/login/rotate?nut={}", page.nut))
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.count("SELECT count(*) FROM login_links"),
        0,
        "no link minted for them"
    );

    // The browser holding the cookie can.
    let response = browser
        .request(reqwest::Method::GET, &format!("/pag.sqrl?nut={}", page.nut))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["state"], "confirmed");
    assert_eq!(json["url"], format!("/login/collect?nut={}", page.nut));
    // ... and only it: the observer who learns the URL still lacks the secret.
    let response = observer
        .get(format!("{base}/login/collect?nut={}", page.nut))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn same_device_cps_login_hands_the_browser_a_single_use_link() {
    let h = Harness::start().await;
    let mut page_browser = h.browser();
    let page = page_browser.open_login_page().await;
    let mut events = page_browser.events(&page.nut).await;
    events.expect("pending").await;

    // The client got the link (with can=) through localhost:25519 (SPEC 7).
    let id = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.link);
    assert_eq!(
        conversation.url.cancel_url().unwrap().as_deref(),
        Some(format!("{}/", h.base()).as_str())
    );
    assert_tif(&conversation.query(&id, O::CPS).await, 0x04);
    events.expect("scanned").await;
    let reply = conversation.ident(&id, O::CPS | O::SUK, true).await;
    assert_tif(&reply, 0x05);
    assert!(reply.suk().is_some(), "opt=suk returns the SUK");
    let url = reply.url().expect("url= with cps").to_owned();
    assert!(url.starts_with(&format!("{}/login/complete?token=", h.base())));
    // The page is abandoned: it is never logged in itself (SPEC 7).
    events.expect("client-session").await;
    let response = page_browser
        .request(reqwest::Method::GET, &format!("/pag.sqrl?nut={}", page.nut))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(response.text().await.unwrap(), "", "no URL for the page");

    // The client's redirect brings the browser to the link.
    let mut redirected = h.browser();
    let (status, location) = redirected.collect(&url).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
    assert!(redirected.has_cookie("sqrl_session"));
    let method: String = h
        .db()
        .query_row("SELECT method FROM login_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(method, "same-device");
    assert_eq!(
        h.browser().collect(&url).await.0,
        StatusCode::GONE,
        "single use"
    );
}

#[tokio::test]
async fn cps_link_expires_quickly() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &minted_url(&h).await);
    conversation.query(&id, O::CPS).await;
    let reply = conversation.ident(&id, O::CPS, true).await;
    let url = reply.url().unwrap().to_owned();
    h.server.clock().advance(61);
    assert_eq!(h.browser().collect(&url).await.0, StatusCode::GONE);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn disable_enable_and_remove() {
    let h = Harness::start().await;
    let id = Identity::new();
    associate(&h, &id).await;

    // disable: needs only ids; SUK returned from then on.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    let key = id.site_key(&c.url);
    let disable = ClientRequest::builder(Command::Disable, key.public_key())
        .build()
        .unwrap();
    let reply = c.send(&disable, &key, None, None).await;
    assert_tif(&reply, 0x0D);
    let suk = *reply.suk().expect("suk while disabled");
    let disabled: bool = h
        .db()
        .query_row("SELECT disabled FROM sqrl_identities", [], |r| r.get(0))
        .unwrap();
    assert!(disabled);

    // ident of a disabled account fails, nothing changes.
    let before = h.snapshot();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x0D);
    assert_eq!(reply.suk(), Some(&suk));
    assert_tif(&c.ident(&id, NONE, false).await, 0x4D);
    assert_eq!(h.snapshot(), before);

    // enable without urs: client failure, nothing changes.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let key = id.site_key(&c.url);
    let enable = ClientRequest::builder(Command::Enable, key.public_key())
        .build()
        .unwrap();
    assert_tif(&c.send(&enable, &key, None, None).await, 0xCD);
    assert_eq!(h.snapshot(), before);
    // ... with a urs from the wrong identity: client failure.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let stranger = Identity::new();
    assert_tif(
        &c.send(&enable, &key, None, Some(&stranger.ursk(&suk)))
            .await,
        0xCD,
    );
    assert_eq!(h.snapshot(), before);
    // ... with the rescue-code key: enabled.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    assert_tif(
        &c.send(&enable, &key, None, Some(&id.ursk(&suk))).await,
        0x05,
    );
    let disabled: bool = h
        .db()
        .query_row("SELECT disabled FROM sqrl_identities", [], |r| r.get(0))
        .unwrap();
    assert!(!disabled);

    // remove: needs urs; the account stays, the association goes.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.query(&id, O::SUK).await;
    assert_tif(&reply, 0x05);
    let suk = *reply.suk().expect("opt=suk");
    let remove = ClientRequest::builder(Command::Remove, key.public_key())
        .build()
        .unwrap();
    let before = h.snapshot();
    assert_tif(&c.send(&remove, &key, None, None).await, 0xC5);
    assert_eq!(h.snapshot(), before);
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    assert_tif(
        &c.send(&remove, &key, None, Some(&id.ursk(&suk))).await,
        0x04,
    );
    assert_eq!(identity_count(&h), 0);
    assert_eq!(
        h.count("SELECT count(*) FROM accounts"),
        1,
        "the account itself stays"
    );

    // Unknown now.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    assert_tif(&c.query(&id, NONE).await, 0x04);
}

#[tokio::test]
async fn rekey_replaces_the_identity_and_retires_the_old_one() {
    let h = Harness::start().await;
    let old = Identity::new();
    associate(&h, &old).await;
    let account: i64 = h
        .db()
        .query_row("SELECT account_id FROM sqrl_identities", [], |r| r.get(0))
        .unwrap();

    let new = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let key = new.site_key(&c.url);
    let old_key = old.site_key(&c.url);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .previous_identity(old_key.public_key())
        .build()
        .unwrap();
    let reply = c.send(&query, &key, Some(&old_key), None).await;
    assert_tif(&reply, 0x06); // previous identity known, same IP
    let old_suk = *reply
        .suk()
        .expect("suk on a previous-identity match (PITFALLS 24)");

    // Without urs the replacement is refused, nothing changes.
    let (suk, vuk) = new.lock();
    let ident = ClientRequest::builder(Command::Ident, key.public_key())
        .previous_identity(old_key.public_key())
        .lock(suk, vuk)
        .build()
        .unwrap();
    let before = h.snapshot();
    assert_tif(&c.send(&ident, &key, Some(&old_key), None).await, 0xC4);
    assert_eq!(h.snapshot(), before);

    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.send(&query, &key, Some(&old_key), None).await;
    assert_tif(&reply, 0x06);
    let reply = c
        .send(&ident, &key, Some(&old_key), Some(&old.ursk(&old_suk)))
        .await;
    assert_tif(&reply, 0x05);

    let db = h.db();
    let (idk, owner): (Vec<u8>, i64) = db
        .query_row("SELECT idk, account_id FROM sqrl_identities", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(idk, key.public_key().to_bytes());
    assert_eq!(owner, account, "same account, new identity");
    let (retired, retired_owner): (Vec<u8>, i64) = db
        .query_row(
            "SELECT idk, account_id FROM superseded_identities",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(retired, old_key.public_key().to_bytes());
    assert_eq!(retired_owner, account);

    // The old identity on a stale device: 0x200 on query, 0x240 otherwise,
    // and never a second account (PITFALLS 25).
    let before = h.snapshot();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    assert_tif(&c.query(&old, NONE).await, 0x204);
    assert_tif(&c.ident(&old, NONE, true).await, 0x244);
    assert_eq!(h.snapshot(), before);
    // The new one logs in.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    assert_tif(&c.query(&new, NONE).await, 0x05);
    assert_tif(&c.ident(&new, NONE, false).await, 0x05);
}

#[tokio::test]
async fn ask_is_sent_to_known_identities_and_answered_with_btn() {
    let h = Harness::start_with(|config| {
        config.ask = Some(sqrl_server::config::AskConfig {
            message: "Sign in to the example site?".into(),
            buttons: vec!["Yes".into(), "Not now".into()],
        });
    })
    .await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x04);
    assert!(reply.ask().is_none(), "ask only with TIF 0x01 (SPEC 3)");
    c.ident(&id, NONE, true).await;

    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x05);
    let ask: &Ask = reply.ask().expect("ask for a known identity");
    assert_eq!(ask.message(), "Sign in to the example site?");
    assert_eq!(ask.buttons().len(), 2);
    assert_eq!(ask.buttons()[0].label(), "Yes");
    let key = id.site_key(&c.url);
    let ident = ClientRequest::builder(Command::Ident, key.public_key())
        .button(Button::parse("1").unwrap())
        .build()
        .unwrap();
    assert_tif(&c.send(&ident, &key, None, None).await, 0x05);
}

#[tokio::test]
async fn sin_requires_ins_on_the_next_request() {
    let h = Harness::start_with(|config| config.sin = Some("7".into())).await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let reply = c.query(&id, NONE).await;
    assert_eq!(reply.sin(), Some("7"));
    // Without ins: client failure, nothing stored.
    let before = h.snapshot();
    assert_tif(&c.ident(&id, NONE, true).await, 0xC4);
    assert_eq!(h.snapshot(), before);

    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let key = id.site_key(&c.url);
    let (suk, vuk) = id.lock();
    let ident = ClientRequest::builder(Command::Ident, key.public_key())
        .lock(suk, vuk)
        .indexed_secret(key.indexed_secret("7"))
        .build()
        .unwrap();
    assert_tif(&c.send(&ident, &key, None, None).await, 0x05);
    assert_eq!(identity_count(&h), 1);
}

#[tokio::test]
async fn ip_mismatch_without_noiptest_is_exactly_0x40() {
    let h = Harness::start_with(|config| {
        config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let mut browser = h.browser().posing_as("198.51.100.7");
    let page = browser.open_login_page().await;
    let id = Identity::new();

    let before = h.snapshot();
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    assert_tif(&c.query(&id, NONE).await, 0x40);
    assert_eq!(h.snapshot(), before);

    // The port is not part of the comparison, and a spoofed left-most
    // X-Forwarded-For entry is not believed.
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("198.51.100.7");
    assert_tif(&c.query(&id, NONE).await, 0x04);
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("198.51.100.7, 203.0.113.9");
    assert_tif(&c.query(&id, NONE).await, 0x40);

    // Cross-device with noiptest: allowed, no IP bit.
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x00);
    assert_tif(&c.ident(&id, O::NOIPTEST, true).await, 0x01);
}

#[tokio::test]
async fn a_replayed_nut_is_a_transient_error_with_a_fresh_nut() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let key = id.site_key(&c.url);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .build()
        .unwrap();
    let body = RequestBody::sign(&query, &c.server, &key, None, None)
        .unwrap()
        .to_form();
    let first = c.post_url.clone();
    assert_tif(&c.send_form(body.clone()).await, 0x04);

    let before = h.snapshot();
    c.post_url = first;
    let reply = c.send_form(body).await;
    assert_tif(&reply, 0x60);
    assert!(
        reply.qry().ends_with(&format!("nut={}", reply.nut())),
        "fresh nut and qry"
    );
    assert_eq!(h.snapshot(), before);
    // The retry with the fresh nut works (no browser behind it: no IP match).
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x00);
}

#[tokio::test]
async fn a_tampered_server_value_fails() {
    let h = Harness::start().await;
    let id = Identity::new();
    let url = minted_url(&h).await;

    // Re-signed over a server= value this server never sent: transient.
    let mut c = SqrlConversation::new(&h.http, &url);
    c.server = base64url::encode(url.replace("qrl://", "qrl://evil.").as_str());
    let before = h.snapshot();
    assert_tif(&c.query(&id, NONE).await, 0x64);
    assert_eq!(h.snapshot(), before);

    // Changed after signing: the signature fails, client failure.
    let url = minted_url(&h).await;
    let mut c = SqrlConversation::new(&h.http, &url);
    let key = id.site_key(&c.url);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .build()
        .unwrap();
    let body = RequestBody::sign(&query, &c.server, &key, None, None)
        .unwrap()
        .to_form();
    let tampered = body.replace(&c.server, &base64url::encode(format!("{url}&x=1")));
    assert_tif(&c.send_form(tampered).await, 0xC4);

    // A later step whose server= is not the last reply: transient.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let text = String::from_utf8(base64url::decode(&c.server).unwrap()).unwrap();
    c.server = base64url::encode(text.replace("tif=", "mac=0\r\ntif="));
    assert_tif(&c.ident(&id, NONE, true).await, 0x64);
    assert_eq!(h.snapshot(), before);
}

#[tokio::test]
async fn bad_signatures_are_client_failures_and_change_nothing() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let key = id.site_key(&c.url);
    let (suk, vuk) = id.lock();
    let ident = ClientRequest::builder(Command::Ident, key.public_key())
        .lock(suk, vuk)
        .build()
        .unwrap();
    let body = RequestBody::sign(&ident, &c.server, &key, None, None).unwrap();
    let ids = body.ids().to_base64url();
    let mut bad = base64url::decode(&ids).unwrap();
    bad[10] ^= 0x01;
    let forged = body.to_form().replace(&ids, &base64url::encode(&bad));
    let before = h.snapshot();
    assert_tif(&c.send_form(forged).await, 0xC4);
    assert_eq!(h.snapshot(), before);

    // Signed by another key than idk.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.query(&id, NONE).await;
    let other = Identity::new().site_key(&c.url);
    let body = RequestBody::sign(&ident, &c.server, &key, None, None).unwrap();
    let by_other = body.to_form().replace(
        &body.ids().to_base64url(),
        &other.sign(b"something else").to_base64url(),
    );
    assert_tif(&c.send_form(by_other).await, 0xC4);
    // pidk without pids.
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .previous_identity(other.public_key())
        .build()
        .unwrap();
    let body = RequestBody::sign(&query, &c.server, &key, Some(&other), None)
        .unwrap()
        .to_form();
    let without_pids = body.split("&pids=").next().unwrap().to_owned();
    assert_tif(&c.send_form(without_pids).await, 0xC4);
    assert_eq!(h.snapshot(), before);
    assert_eq!(identity_count(&h), 0);
}

#[tokio::test]
async fn a_nut_bound_to_another_identity_is_0x1c0() {
    let h = Harness::start_with(|config| {
        config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let mut browser = h.browser().posing_as("198.51.100.7");
    let page = browser.open_login_page().await;
    let alice = Identity::new();
    let mallory = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &page.url).posing_as("203.0.113.9");
    assert_tif(&c.query(&alice, O::NOIPTEST).await, 0x00);
    let before = h.snapshot();
    assert_tif(&c.ident(&mallory, O::NOIPTEST, true).await, 0x1C0);
    assert_eq!(h.snapshot(), before);
}

#[tokio::test]
async fn an_expired_nut_is_0x60_with_a_fresh_nut() {
    let h = Harness::start().await;
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let id = Identity::new();
    h.server.clock().advance(121); // past the nut lifetime (120 s)
    let mut c = SqrlConversation::new(&h.http, &page.url);
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x60);
    assert_ne!(reply.nut(), page.nut);
    // The fresh nut works for the client's one retry.
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x00);

    // The whole attempt is over after 10 minutes.
    h.server.clock().advance(600);
    let response = browser.get(&format!("/pag.sqrl?nut={}", page.nut)).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let mut events = browser.events(&page.nut).await;
    events.expect("expired").await;
}

#[tokio::test]
async fn the_open_page_rotates_its_nut() {
    let h = Harness::start().await;
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let response = browser
        .post(&format!("/login/rotate?nut={}", page.nut))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh: serde_json::Value = response.json().await.unwrap();
    let url = fresh["url"].as_str().unwrap().to_owned();
    assert_ne!(url, page.url);
    assert!(fresh["svg"].as_str().unwrap().starts_with("<svg"));
    assert!(fresh["link"].as_str().unwrap().contains("&can="));

    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    // The rotated code belongs to the same attempt.
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &url);
    assert_tif(&c.query(&id, NONE).await, 0x04);
    events.expect("scanned").await;
    // Once scanned, no more rotation.
    let response = browser
        .post(&format!("/login/rotate?nut={}", page.nut))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn malformed_requests_never_get_a_500() {
    let h = Harness::start().await;
    let id = Identity::new();
    let url = minted_url(&h).await;
    let c = SqrlConversation::new(&h.http, &url);
    let key = id.site_key(&c.url);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .build()
        .unwrap();
    let good = RequestBody::sign(&query, &c.server, &key, None, None)
        .unwrap()
        .to_form();
    let long = "A".repeat(20_000);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"garbage".to_vec(),
        b"client=&server=&ids=".to_vec(),
        b"client=%ZZ&server=x&ids=y".to_vec(),
        b"=&&&=".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        good.replace("client=", "client=AAAA").into_bytes(),
        format!("{good}&client=AAAA").into_bytes(),
        good.replace("ids=", "ids=%2B").into_bytes(),
        format!(
            "client={}&server={}&ids={}",
            base64url::encode("ver=1\r\ncmd=query\r\n"),
            c.server,
            "A".repeat(86)
        )
        .into_bytes(),
        format!(
            "client={}&server={}&ids={}",
            base64url::encode("ver=1\r\ncmd=fly\r\nidk=AAAA\r\n"),
            c.server,
            "A".repeat(86)
        )
        .into_bytes(),
        format!(
            "client={}&server={}&ids={}",
            base64url::encode("cmd=query\r\nver=1\r\n"),
            c.server,
            "A".repeat(86)
        )
        .into_bytes(),
        format!("client={long}&server={long}&ids={long}").into_bytes(),
    ];
    let before = h.snapshot();
    for (index, body) in bodies.into_iter().enumerate() {
        for target in [
            c.post_url.clone(),
            format!("{}/cli.sqrl", h.base()),
            format!("{}/cli.sqrl?nut=%00&nut=x", h.base()),
        ] {
            let response = h
                .http
                .post(&target)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(!status.is_server_error(), "body {index}: {status} {text}");
            if status == StatusCode::OK {
                let reply = sqrl_core::msg::ServerReply::parse(&text).unwrap();
                assert!(is_failure(&reply), "body {index}: {:?}", reply.tif());
                assert!(
                    reply.tif().bits() & 0x80 != 0
                        || reply.tif().bits() & 0x10 != 0
                        || reply.tif().bits() & 0x20 != 0
                );
            } else {
                assert!(status.is_client_error(), "body {index}: {status}");
            }
        }
    }
    // Other shapes: wrong method, odd queries, huge headers.
    for (method, path) in [
        (reqwest::Method::GET, "/cli.sqrl"),
        (reqwest::Method::PUT, "/cli.sqrl"),
        (reqwest::Method::GET, "/pag.sqrl"),
        (reqwest::Method::GET, "/pag.sqrl?nut=%ff%fe&pag=x"),
        (reqwest::Method::GET, "/png.sqrl?nut=../../etc"),
        (reqwest::Method::GET, "/login/events?nut="),
        (reqwest::Method::GET, "/login/complete"),
        (reqwest::Method::GET, "/login/complete?token=%00"),
        (reqwest::Method::POST, "/account/sessions/abc/revoke"),
        (reqwest::Method::GET, "/api/identities/zzz"),
        (reqwest::Method::GET, "/nope"),
    ] {
        let response = h
            .http
            .request(method.clone(), format!("{}{path}", h.base()))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error()
                || response.status().is_success()
                || response.status().is_redirection(),
            "{method} {path}: {}",
            response.status()
        );
        assert!(!response.status().is_server_error(), "{method} {path}");
    }
    assert_eq!(h.snapshot(), before);
}

#[tokio::test]
async fn concurrent_requests_with_one_nut_are_answered_once() {
    let h = Harness::start().await;
    let id = Identity::new();
    let c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    let key = id.site_key(&c.url);
    let query = ClientRequest::builder(Command::Query, key.public_key())
        .build()
        .unwrap();
    let body = RequestBody::sign(&query, &c.server, &key, None, None)
        .unwrap()
        .to_form();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = h.http.clone();
        let url = c.post_url.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let text = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            sqrl_core::msg::ServerReply::parse(&text)
                .unwrap()
                .tif()
                .bits()
        }));
    }
    let mut tifs = Vec::new();
    for task in tasks {
        tifs.push(task.await.unwrap());
    }
    assert_eq!(tifs.iter().filter(|t| **t == 0x04).count(), 1, "{tifs:x?}");
    assert_eq!(tifs.iter().filter(|t| **t == 0x60).count(), 7, "{tifs:x?}");
}

#[tokio::test]
async fn ssp_api_nut_png_pag() {
    let h = Harness::start().await;
    // Form and JSON.
    let form = h
        .http
        .get(format!("{}/nut.sqrl", h.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        form.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    let text = form.text().await.unwrap();
    assert!(
        text.starts_with("nut=") && text.contains("&pag=") && text.ends_with("&exp=120"),
        "{text}"
    );
    let json: serde_json::Value = h
        .http
        .get(format!("{}/nut.sqrl", h.base()))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nut = json["nut"].as_str().unwrap().to_owned();
    let pag = json["pag"].as_str().unwrap().to_owned();
    assert_eq!(nut.len(), 22, "128-bit nut");
    assert_eq!(json["exp"], 120);

    // PNG of a given nut; minting PNG returns headers.
    let png = h
        .http
        .get(format!("{}/png.sqrl?nut={nut}", h.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.headers().get("sqrl-nut").is_none());
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    let minted = h
        .http
        .get(format!("{}/png.sqrl", h.base()))
        .send()
        .await
        .unwrap();
    for name in ["sqrl-nut", "sqrl-pag", "sqrl-exp"] {
        assert!(minted.headers().get(name).is_some(), "{name}");
    }

    // pag.sqrl: pending, then the URL once confirmed.
    let pag_url = format!("{}/pag.sqrl?nut={nut}&pag={pag}", h.base());
    let pending = h.http.get(&pag_url).send().await.unwrap();
    assert_eq!(pending.status(), StatusCode::OK);
    assert_eq!(pending.text().await.unwrap(), "");
    let pending: serde_json::Value = h
        .http
        .get(&pag_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["url"], "");
    let id = Identity::new();
    let mut c = SqrlConversation::new(
        &h.http,
        &format!(
            "{}/cli.sqrl?nut={nut}",
            h.base().replace("http://", "qrl://")
        ),
    );
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let done = h.http.get(&pag_url).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let url = done.text().await.unwrap();
    assert_eq!(
        url,
        format!("{}/login/collect?nut={nut}&pag={pag}", h.base()),
        "the SSP caller holds no cookie: the URL carries the secret"
    );
    let mut browser = h.browser();
    assert_eq!(browser.collect(&url).await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        h.http.get(&pag_url).send().await.unwrap().status(),
        StatusCode::GONE
    );
}

#[tokio::test]
async fn operator_api() {
    let token = "operator-token-0123456789";
    let h = Harness::start_with(|config| {
        config.operator_token = Some(sqrl_server::config::OperatorToken::new(token));
    })
    .await;
    let api = |path: &str| format!("{}/api{path}", h.base());
    let id = Identity::new();
    let url = minted_url(&h).await;
    let sqrl_url = sqrl_core::url::SqrlUrl::parse(&url).unwrap();
    let idk = id.idk(&sqrl_url).to_base64url();

    assert_eq!(
        h.http
            .get(api(&format!("/identities/{idk}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.http
            .get(api(&format!("/identities/{idk}")))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.http
            .get(api(&format!("/identities/{idk}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Associate with a new account, then the same identity again: conflict.
    let (suk, vuk) = id.lock();
    let body =
        serde_json::json!({ "idk": idk, "suk": suk.to_base64url(), "vuk": vuk.to_base64url() });
    let created = h
        .http
        .post(api("/associations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let account = created.json::<serde_json::Value>().await.unwrap()["account_id"]
        .as_i64()
        .unwrap();
    let again = h
        .http
        .post(api("/associations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // The identity now logs in to that account.
    let mut c = SqrlConversation::new(&h.http, &url);
    assert_tif(&c.query(&id, NONE).await, 0x05);

    let found: serde_json::Value = h
        .http
        .get(api(&format!("/identities/{idk}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["account_id"], account);
    assert_eq!(found["identity"]["idk"], idk.as_str());
    let by_id: serde_json::Value = h
        .http
        .get(api(&format!("/accounts/{account}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["identity"]["idk"], idk.as_str());

    // Another identity onto the same account: refused (one per account).
    let other = Identity::new();
    let (suk2, vuk2) = other.lock();
    let body2 = serde_json::json!({ "idk": other.idk(&sqrl_url).to_base64url(), "suk": suk2.to_base64url(), "vuk": vuk2.to_base64url(), "account_id": account });
    assert_eq!(
        h.http
            .post(api("/associations"))
            .bearer_auth(token)
            .json(&body2)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT
    );

    // Remove, then it can be associated with the existing account.
    assert_eq!(
        h.http
            .delete(api(&format!("/identities/{idk}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.http
            .delete(api(&format!("/identities/{idk}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.http
            .post(api("/associations"))
            .bearer_auth(token)
            .json(&body2)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let owner: i64 = h
        .db()
        .query_row("SELECT account_id FROM sqrl_identities", [], |r| r.get(0))
        .unwrap();
    assert_eq!(owner, account);
    // Malformed input: 4xx.
    let bad = serde_json::json!({ "idk": "short", "suk": "x", "vuk": "y" });
    assert_eq!(
        h.http
            .post(api("/associations"))
            .bearer_auth(token)
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn operator_api_is_off_without_a_token() {
    let h = Harness::start().await;
    let response = h
        .http
        .get(format!("{}/api/accounts/1", h.base()))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// Logs `id` in through the page and returns the logged-in browser.
async fn logged_in_browser(h: &Harness, id: &Identity, agent: &str) -> Browser {
    let mut browser = h.browser();
    browser.user_agent = agent.to_owned();
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url);
    let known = c.query(id, NONE).await.tif().bits() & 1 == 1;
    c.ident(id, NONE, !known).await;
    let url = browser
        .request(reqwest::Method::GET, &format!("/pag.sqrl?nut={}", page.nut))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(browser.collect(&url).await.0, StatusCode::SEE_OTHER);
    browser
}

#[tokio::test]
async fn account_page_sessions_revoke_and_logout() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut laptop = logged_in_browser(&h, &id, "Laptop/1.0").await;
    let mut desktop = logged_in_browser(&h, &id, "Desktop/2.0").await;
    let html = laptop.get("/account").await.text().await.unwrap();
    assert!(html.contains("Laptop/1.0") && html.contains("Desktop/2.0"));
    assert!(html.contains("this browser"));

    // The login page sends a logged-in browser to its account.
    assert_eq!(laptop.get("/").await.status(), StatusCode::SEE_OTHER);

    let desktop_session: i64 = h
        .db()
        .query_row(
            "SELECT id FROM sessions WHERE user_agent = 'Desktop/2.0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // A cross-site form post is refused.
    let refused = laptop
        .request(
            reqwest::Method::POST,
            &format!("/account/sessions/{desktop_session}/revoke"),
        )
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let revoked = laptop
        .post(&format!("/account/sessions/{desktop_session}/revoke"))
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        desktop.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "revoked: back to login"
    );

    // Someone else's session id: 404.
    let other = Identity::new();
    let _stranger = logged_in_browser(&h, &other, "Stranger/1.0").await;
    let stranger_session: i64 = h
        .db()
        .query_row(
            "SELECT id FROM sessions WHERE user_agent = 'Stranger/1.0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        laptop
            .post(&format!("/account/sessions/{stranger_session}/revoke"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let out = laptop.post("/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(!laptop.has_cookie("sqrl_session"));
    assert_eq!(
        h.count("SELECT count(*) FROM sessions"),
        1,
        "only the stranger's is left"
    );
    assert_eq!(h.count("SELECT count(*) FROM login_history"), 3);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let h = Harness::start().await;
    let id = Identity::new();
    associate(&h, &id).await;
    let before = h.snapshot();
    let Harness { server, dir, http } = h;
    server.shutdown().await;

    let mut config = sqrl_server::config::Config::for_tests(dir.path().join("sqrl.db"));
    config.rate_limit = None;
    let server = sqrl_server::start(config).await.unwrap();
    let h = Harness { server, dir, http };
    assert_eq!(h.snapshot(), before);
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    let migrations = h.count("SELECT count(*) FROM schema_migrations");
    assert_eq!(migrations, 1, "migrations run once");
}

#[tokio::test]
async fn health_metrics_and_headers() {
    let h = Harness::start().await;
    let health = h
        .http
        .get(format!("{}/healthz", h.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let id = Identity::new();
    associate(&h, &id).await;
    let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
    c.server = "tampered".into();
    c.query(&id, NONE).await;
    let _ = logged_in_browser(&h, &id, "Metrics/1.0").await;
    let metrics = h
        .http
        .get(format!("{}/metrics", h.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sqrl_client_requests_total{command=\"query\",tif=\"4\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sqrl_client_failures_total{tif=\"65\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sqrl_logins_total{method=\"cross-device\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sqrl_client_request_seconds_bucket{command=\"ident\",le=\"+Inf\"}"));

    let page = h.http.get(format!("{}/", h.base())).send().await.unwrap();
    let headers = page.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure")
    );
    let script = h
        .http
        .get(format!("{}/static/login.js", h.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        script.contains("replace(/\\+/g, \"-\").replace(/\\//g, \"_\")"),
        "global replace (PITFALLS 33)"
    );
    assert!(script.contains("http://localhost:25519/"));
}

#[tokio::test]
async fn rate_limit_per_address() {
    let h = Harness::start_with(|config| {
        config.rate_limit = Some(sqrl_server::config::RateLimit {
            per_second: 0.5,
            burst: 5,
        });
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            h.http
                .get(format!("{}/nut.sqrl", h.base()))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Health checks are never limited.
    assert_eq!(
        h.http
            .get(format!("{}/healthz", h.base()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Runs the real binary, acknowledges associations while it runs, kills it
/// with SIGKILL mid-stream, and checks that every acknowledged association
/// is in the database (`synchronous=FULL`: a commit is on disk before its reply).
#[cfg(unix)]
#[tokio::test]
async fn kill_9_loses_no_acknowledged_association() {
    use std::io::BufRead as _;
    use std::process::{Command as Process, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut child = Process::new(env!("CARGO_BIN_EXE_sqrl-server"))
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(&db)
        .args(["--rate-limit-per-second", "0"])
        .env("SQRL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let http = http_client();
    let base = format!("http://{addr}");
    let mut acknowledged = Vec::new();
    let identities: Vec<Identity> = (0..12).map(|_| Identity::new()).collect();
    let mut in_flight = Vec::new();
    for (index, id) in identities.iter().enumerate() {
        let text = http
            .get(format!("{base}/nut.sqrl"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let nut = text
            .split('&')
            .find_map(|p| p.strip_prefix("nut="))
            .unwrap()
            .to_owned();
        let mut c = SqrlConversation::new(&http, &format!("qrl://{addr}/cli.sqrl?nut={nut}"));
        c.query(id, NONE).await;
        if index < 8 {
            assert_tif(&c.ident(id, NONE, true).await, 0x05);
            acknowledged.push(id.idk(&c.url).to_bytes());
        } else {
            // Logins still in flight when the process dies.
            let key = id.site_key(&c.url);
            let (suk, vuk) = id.lock();
            let ident = ClientRequest::builder(Command::Ident, key.public_key())
                .lock(suk, vuk)
                .build()
                .unwrap();
            let form = RequestBody::sign(&ident, &c.server, &key, None, None)
                .unwrap()
                .to_form();
            let http = http.clone();
            let url = c.post_url.clone();
            in_flight.push(tokio::spawn(async move {
                http.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
            }));
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for task in in_flight {
        let _ = task.await;
    }

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for idk in &acknowledged {
        let found: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqrl_identities WHERE idk = ?1",
                [idk],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(found, 1, "an acknowledged association was lost");
    }
    // No half-written rows: every identity has its account.
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqrl_identities WHERE account_id NOT IN (SELECT id FROM accounts)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn racing_idents_of_one_new_identity_create_one_account() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut forms = Vec::new();
    for _ in 0..4 {
        let mut c = SqrlConversation::new(&h.http, &minted_url(&h).await);
        assert_tif(&c.query(&id, NONE).await, 0x04);
        let key = id.site_key(&c.url);
        let (suk, vuk) = id.lock();
        let ident = ClientRequest::builder(Command::Ident, key.public_key())
            .lock(suk, vuk)
            .build()
            .unwrap();
        let form = RequestBody::sign(&ident, &c.server, &key, None, None)
            .unwrap()
            .to_form();
        forms.push((c.post_url.clone(), form));
    }
    let mut tasks = Vec::new();
    for (url, form) in forms {
        let http = h.http.clone();
        tasks.push(tokio::spawn(async move {
            let text = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            sqrl_core::msg::ServerReply::parse(&text)
                .unwrap()
                .tif()
                .bits()
        }));
    }
    let mut tifs = Vec::new();
    for task in tasks {
        tifs.push(task.await.unwrap());
    }
    // Each either logged in (0x05) or lost the race and was told to retry
    // (0x60; the identity is known by then: 0x65); never a second account.
    assert!(tifs.iter().all(|t| *t == 0x05 || *t == 0x65), "{tifs:x?}");
    assert!(tifs.contains(&0x05));
    assert_eq!(h.count("SELECT count(*) FROM accounts"), 1);
    assert_eq!(identity_count(&h), 1);
}
