//! The service from the outside: real HTTP on 127.0.0.1, a real SQLite file,
//! a SQRL client built on `sqrl_core`. Each protocol scenario asserts the exact
//! TIF and, where nothing may change, that the account tables did not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use sqrl_core::base64url;
use sqrl_core::msg::{Ask, Button, ClientOptions as O, Command};
use sqrl_core::server::SecretDigest;
use sqrl_server::config::{AskButtonConfig, Config};
use sqrl_server::net::IpNet;

/// Clients and browsers may pose as other addresses through X-Forwarded-For.
fn behind_local_proxy(config: &mut Config) {
    config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
}

#[tokio::test]
async fn full_cross_device_login_reaches_the_waiting_page() {
    let h = Harness::start().await;
    let WaitingPage {
        mut browser,
        page,
        mut events,
    } = h.waiting_page().await;
    assert!(page.url.starts_with("qrl://127.0.0.1:"), "{}", page.url);
    assert!(
        !page.url.contains("can="),
        "the QR code carries no can= (SPEC 1.1)"
    );
    assert!(page.link.contains("&can="), "the same-device link does");
    // The attempt's secret is a cookie.
    let pag_cookie = format!("sqrl_pag_{}", page.nut);
    let pag_secret = browser.cookie(&pag_cookie);

    let phone = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&conversation.query(&phone, NONE).await, 0x04); // unknown identity, same IP
    let scanned = events.expect("scanned").await;
    assert!(
        scanned.url.is_none(),
        "nothing to collect before the user confirms"
    );

    let reply = conversation.ident(&phone, NONE, true).await;
    assert_tif(&reply, 0x05);
    assert!(reply.url().is_none(), "no url= without cps");
    let link = events
        .expect("confirmed")
        .await
        .url
        .expect("the page gets its link");
    assert_eq!(link, format!("/login/collect?nut={}", page.nut));

    let (status, location) = browser.collect(&link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
    assert!(browser.has_cookie("sqrl_session"));
    assert!(!browser.has_cookie(&pag_cookie), "attempt cookie cleared");
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

    let method: String = h.value("SELECT method FROM login_history");
    assert_eq!(method, "cross-device");
    let hash: Vec<u8> = h.value("SELECT token_hash FROM sessions");
    let cookie = browser.cookie("sqrl_session");
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
    again.cookies = vec![(pag_cookie, pag_secret)];
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

    // The observer uses no cookie.
    for path in [
        format!("/pag.sqrl?nut={}", page.nut),
        format!("/pag.sqrl?nut={}&pag=AAAAAAAAAAAAAAAAAAAAAA", page.nut),
        format!("/login/events?nut={}", page.nut),
        format!("/pag.sqrl?nut={}&pag=not-a-token", page.nut),
    ] {
        assert_eq!(h.get(&path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let rotate = h
        .http
        .post(h.url(&format!("/login/rotate?nut={}", page.nut)))
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.in_flight().await.links, 0, "no link minted for them");

    // The browser holding the cookie can.
    let (status, json) = browser.pag_json(&page.nut).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["state"], "confirmed");
    assert_eq!(json["url"], format!("/login/collect?nut={}", page.nut));
    // ... and only it: the observer who learns the URL still lacks the secret.
    let collect = h.get(&format!("/login/collect?nut={}", page.nut)).await;
    assert_eq!(collect.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn same_device_cps_login_hands_the_browser_a_single_use_link() {
    let h = Harness::start().await;
    let WaitingPage {
        browser: mut page_browser,
        page,
        mut events,
    } = h.waiting_page().await;

    // The client got the link (with can=) through localhost:25519 (SPEC 7).
    let id = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.link);
    assert_eq!(
        conversation.url.cancel_url().unwrap().as_deref(),
        Some(h.url("/").as_str())
    );
    assert_tif(&conversation.query(&id, O::CPS).await, 0x04);
    events.expect("scanned").await;
    let reply = conversation.ident(&id, O::CPS | O::SUK, true).await;
    assert_tif(&reply, 0x05);
    assert!(reply.suk().is_some(), "opt=suk returns the SUK");
    let url = reply.url().expect("url= with cps").to_owned();
    assert!(url.starts_with(&h.url("/login/complete?token=")));
    // The page is abandoned: it is never logged in itself (SPEC 7).
    events.expect("client-session").await;
    let response = page_browser.pag(&page.nut).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(response.text().await.unwrap(), "", "no URL for the page");

    // Opened in any other browser, the link is refused and not spent.
    assert_eq!(h.browser().collect(&url).await.0, StatusCode::FORBIDDEN);
    // The client's redirect brings the page's own browser to the link.
    let redirected = &mut page_browser;
    let (status, location) = redirected.collect(&url).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
    assert!(redirected.has_cookie("sqrl_session"));
    let method: String = h.value("SELECT method FROM login_history");
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
    let mut browser = h.browser();
    let mut conversation = SqrlConversation::new(&h.http, &browser.mint_url().await);
    conversation.query(&id, O::CPS).await;
    let reply = conversation.ident(&id, O::CPS, true).await;
    let url = reply.url().unwrap().to_owned();
    h.server.clock().advance(61);
    assert_eq!(browser.collect(&url).await.0, StatusCode::GONE);
    assert_eq!(h.count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test]
async fn disable_enable_and_remove() {
    let h = Harness::start().await;
    let id = Identity::new();
    let stranger = Identity::new();
    h.associate(&id).await;
    let is_disabled = || h.value::<bool>("SELECT disabled FROM sqrl_identities");

    // disable: needs only ids; SUK returned from then on.
    let mut c = h.conversation().await;
    assert_tif(&c.query(&id, NONE).await, 0x05);
    let reply = c.run(Request::new(Command::Disable, &id)).await;
    assert_tif(&reply, 0x0D);
    let suk = *reply.suk().expect("suk while disabled");
    assert!(is_disabled());

    // ident of a disabled account fails, nothing changes.
    let before = h.snapshot();
    let mut c = h.conversation().await;
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x0D);
    assert_eq!(reply.suk(), Some(&suk));
    assert_tif(&c.ident(&id, NONE, false).await, 0x4D);
    assert_eq!(h.snapshot(), before);

    // enable, after a query, with the given urs (or none).
    let enable = async |urs: Option<&Identity>| {
        let mut c = h.conversation().await;
        c.query(&id, NONE).await;
        let request = Request::new(Command::Enable, &id);
        c.run(match urs {
            Some(by) => request.urs(by, suk),
            None => request,
        })
        .await
    };
    // Without urs: client failure, nothing changes.
    assert_tif(&enable(None).await, 0xCD);
    assert_eq!(h.snapshot(), before);
    // ... with a urs from the wrong identity: client failure.
    assert_tif(&enable(Some(&stranger)).await, 0xCD);
    assert_eq!(h.snapshot(), before);
    // ... with the rescue-code key: enabled.
    assert_tif(&enable(Some(&id)).await, 0x05);
    assert!(!is_disabled());

    // remove: needs urs; the account stays, the association goes.
    let mut c = h.conversation().await;
    let reply = c.query(&id, O::SUK).await;
    assert_tif(&reply, 0x05);
    let suk = *reply.suk().expect("opt=suk");
    let before = h.snapshot();
    assert_tif(&c.run(Request::new(Command::Remove, &id)).await, 0xC5);
    assert_eq!(h.snapshot(), before);
    let mut c = h.conversation().await;
    c.query(&id, NONE).await;
    let reply = c
        .run(Request::new(Command::Remove, &id).urs(&id, suk))
        .await;
    assert_tif(&reply, 0x04);
    assert_eq!(h.identity_count(), 0);
    assert_eq!(
        h.count("SELECT count(*) FROM accounts"),
        1,
        "the account itself stays"
    );

    // Unknown now.
    assert_tif(&h.conversation().await.query(&id, NONE).await, 0x04);
}

#[tokio::test]
async fn rekey_replaces_the_identity_and_retires_the_old_one() {
    let h = Harness::start().await;
    let old = Identity::new();
    let new = Identity::new();
    h.associate(&old).await;
    let account: i64 = h.value("SELECT account_id FROM sqrl_identities");

    let mut c = h.conversation().await;
    let reply = c.run(Request::query(&new).previous(&old)).await;
    assert_tif(&reply, 0x06); // previous identity known, same IP
    let old_suk = *reply
        .suk()
        .expect("suk on a previous-identity match (PITFALLS 24)");

    // Without urs the replacement is refused, nothing changes; the failure
    // still reports the previous identity it knows (0x02, SPEC 3.2).
    let replace = Request::ident(&new).previous(&old).new_lock();
    let before = h.snapshot();
    assert_tif(&c.run(replace.clone()).await, 0xC6);
    assert_eq!(h.snapshot(), before);

    let mut c = h.conversation().await;
    assert_tif(&c.run(Request::query(&new).previous(&old)).await, 0x06);
    assert_tif(&c.run(replace.urs(&old, old_suk)).await, 0x05);

    let identities = h.rows("SELECT idk, account_id FROM sqrl_identities", |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
    });
    let new_idk = new.idk(&c.url).to_bytes().to_vec();
    assert_eq!(
        identities,
        vec![(new_idk, account)],
        "same account, new identity"
    );
    let retired = h.rows("SELECT idk, account_id FROM superseded_identities", |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
    });
    assert_eq!(
        retired,
        vec![(old.idk(&c.url).to_bytes().to_vec(), account)]
    );

    // The old identity on a stale device: 0x200 on query, 0x240 otherwise,
    // and never a second account (PITFALLS 25).
    let before = h.snapshot();
    let mut c = h.conversation().await;
    assert_tif(&c.query(&old, NONE).await, 0x204);
    assert_tif(&c.ident(&old, NONE, true).await, 0x244);
    assert_eq!(h.snapshot(), before);
    // The new one logs in.
    let mut c = h.conversation().await;
    assert_tif(&c.query(&new, NONE).await, 0x05);
    assert_tif(&c.ident(&new, NONE, false).await, 0x05);
}

fn ask_config(config: &mut Config) {
    config.ask = Some(sqrl_server::config::AskConfig {
        message: "Sign in to the example site?".into(),
        buttons: vec![
            AskButtonConfig::with_url("Yes", "/welcome"),
            AskButtonConfig::label("Not now"),
        ],
    });
}

/// An `ask` answer as the login history keeps it: button, label, URL.
type Answer = (Option<i64>, Option<String>, Option<String>);

/// The login method and answer of every login in the history, oldest first.
fn recorded_answers(h: &Harness) -> Vec<(String, Answer)> {
    h.rows(
        "SELECT method, ask_button, ask_label, ask_url FROM login_history ORDER BY id",
        |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
    )
}

fn button(digit: &str) -> Button {
    Button::parse(digit).unwrap()
}

#[tokio::test]
async fn ask_buttons_steer_the_browser_and_are_kept_in_the_history() {
    let h = Harness::start_with(ask_config).await;
    let id = Identity::new();
    let mut c = h.conversation().await;
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x04);
    assert!(reply.ask().is_none(), "ask only with TIF 0x01 (SPEC 3)");
    assert_tif(&c.ident(&id, NONE, true).await, 0x05);

    // Known identity, through the login page: the question and its buttons.
    let WaitingPage {
        mut browser,
        page,
        mut events,
    } = h.waiting_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url);
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x05);
    let ask: &Ask = reply.ask().expect("ask for a known identity");
    assert_eq!(ask.message(), "Sign in to the example site?");
    assert_eq!(ask.buttons().len(), 2);
    assert_eq!(ask.buttons()[0].label(), "Yes");
    assert_eq!(ask.buttons()[0].url(), Some("/welcome"));
    assert_eq!(ask.buttons()[1].url(), None);
    events.expect("scanned").await;
    // The first button carries a URL: the browser goes there once logged in.
    assert_tif(&c.run(Request::ident(&id).button(button("1"))).await, 0x05);
    let link = events.expect("confirmed").await.url.unwrap();
    let (status, location) = browser.collect(&link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/welcome"));
    assert!(browser.has_cookie("sqrl_session"));

    // The second button has no URL: the account page, as without an ask.
    let mut second = h.browser();
    let page = second.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    c.run(Request::ident(&id).button(button("2"))).await;
    let link = second.pag_url(&page.nut).await;
    assert_eq!(second.collect(&link).await.1.as_deref(), Some("/account"));

    // Same device (CPS): the single-use link leads to the chosen URL too.
    let mut third = h.browser();
    let mut c = SqrlConversation::new(&h.http, &third.mint_url().await);
    assert_tif(&c.query(&id, O::CPS).await, 0x05);
    let reply = c
        .run(Request::ident(&id).options(O::CPS).button(button("1")))
        .await;
    let url = reply.url().expect("url= with cps").to_owned();
    assert_eq!(third.collect(&url).await.1.as_deref(), Some("/welcome"));

    // Each login's answer is in the history, and on the account page.
    let yes = (Some(1), Some("Yes".to_owned()), Some("/welcome".to_owned()));
    let not_now = (Some(2), Some("Not now".to_owned()), None);
    assert_eq!(
        recorded_answers(&h),
        vec![
            ("cross-device".to_owned(), yes.clone()),
            ("cross-device".to_owned(), not_now),
            ("same-device".to_owned(), yes),
        ]
    );
    let html = browser.get("/account").await.text().await.unwrap();
    assert!(
        html.contains("button 1 \u{201c}Yes\u{201d} \u{2192} <code>/welcome</code>"),
        "{html}"
    );
    assert!(html.contains("button 2 \u{201c}Not now\u{201d}"), "{html}");
}

fn sin_config(config: &mut Config) {
    config.sin = Some("7".into());
    config.operator_token = Some(sqrl_server::config::OperatorToken::new(OPERATOR_TOKEN));
}

/// The digest the service keeps of `id`'s `ins` for sin 7.
fn ins_digest(id: &Identity, c: &SqrlConversation) -> Vec<u8> {
    let ins = id.site_key(&c.url).indexed_secret("7");
    SecretDigest::of(&ins).as_bytes().to_vec()
}

/// The stored indexed secrets: `(idk, sin, digest)`.
fn stored_secrets(h: &Harness) -> Vec<(Vec<u8>, String, Vec<u8>)> {
    h.rows(
        "SELECT idk, sin, ins_hash FROM indexed_secrets ORDER BY idk",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

#[tokio::test]
async fn sin_stores_the_first_ins_and_refuses_a_different_one() {
    let h = Harness::start_with(sin_config).await;
    let id = Identity::new();
    let stranger = Identity::new();

    // Without ins after a sin: client failure, nothing stored.
    let mut c = h.conversation().await;
    let reply = c.query(&id, NONE).await;
    assert_tif(&reply, 0x04);
    assert_eq!(reply.sin(), Some("7"));
    let before = h.snapshot();
    let reply = c
        .run(Request::ident(&id).new_lock().secrets(Secrets::Omit))
        .await;
    assert_tif(&reply, 0xC4);
    assert_eq!(reply.sin(), Some("7"), "every reply carries the sin");
    assert_eq!(h.snapshot(), before);
    // Skipping the query (so that no sin was ever sent) does not help.
    let mut c = h.conversation().await;
    assert_tif(&c.ident(&id, NONE, true).await, 0xC4);
    assert_eq!(h.snapshot(), before);

    // The first ins is stored with the new association, as a digest.
    let c = h.associate(&id).await;
    let idk = id.idk(&c.url);
    assert_eq!(
        stored_secrets(&h),
        vec![(idk.to_bytes().to_vec(), "7".to_owned(), ins_digest(&id, &c))]
    );
    // The operator sees that it is stored, never its value.
    let view = h
        .operator_get(&format!("/identities/{}", idk.to_base64url()))
        .await;
    assert_eq!(view["identity"]["ins_stored"], true);
    assert_eq!(view["identity"]["ins_sins"], serde_json::json!(["7"]));
    let text = view.to_string();
    let ins = id.site_key(&c.url).indexed_secret("7");
    assert!(!text.contains(&ins.to_base64url()));
    assert!(!text.contains(&base64url::encode(ins_digest(&id, &c))));

    // A login through the page with someone else's ins: refused, the page is
    // not logged in, nothing changes.
    let WaitingPage {
        page, mut events, ..
    } = h.waiting_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    events.expect("scanned").await;
    let before = h.snapshot();
    let secrets = stored_secrets(&h);
    let wrong = Secrets::Of(&stranger);
    assert_tif(&c.run(Request::ident(&id).secrets(wrong)).await, 0xC5);
    assert_eq!(h.snapshot(), before);
    assert!(
        events.next(Duration::from_millis(300)).await.is_none(),
        "the page hears nothing"
    );
    // A query with a wrong ins is refused the same way.
    assert_tif(&c.run(Request::query(&id).secrets(wrong)).await, 0xC5);
    // The conversation goes on under the fresh nut: the right ins logs in.
    assert_tif(&c.ident(&id, NONE, false).await, 0x05);
    events.expect("confirmed").await;
    assert_eq!(
        stored_secrets(&h),
        secrets,
        "the stored secret is unchanged"
    );

    // The secret goes with the association.
    let path = format!("/identities/{}", idk.to_base64url());
    let status = h.operator_status(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(stored_secrets(&h).is_empty());
}

#[tokio::test]
async fn sin_secret_of_a_known_identity_is_stored_on_its_first_answer() {
    // An identity associated before the site asked for a secret.
    let h = Harness::start_with(sin_config).await;
    let id = Identity::new();
    let url = h.minted_url().await;
    let sqrl_url = sqrl_core::url::SqrlUrl::parse(&url).unwrap();
    let (suk, vuk) = id.lock();
    let body = serde_json::json!({
        "idk": id.idk(&sqrl_url).to_base64url(), "suk": suk.to_base64url(), "vuk": vuk.to_base64url(),
    });
    let status = h
        .operator_status(Method::POST, "/associations", Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(stored_secrets(&h).is_empty());

    // A query never stores (PITFALLS 28) ...
    let mut c = SqrlConversation::new(&h.http, &url);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    assert_tif(&c.query(&id, NONE).await, 0x05);
    assert!(stored_secrets(&h).is_empty());
    // ... the first ident does, and from then on only that secret works.
    assert_tif(&c.ident(&id, NONE, false).await, 0x05);
    assert_eq!(stored_secrets(&h).len(), 1);
    assert_eq!(stored_secrets(&h)[0].2, ins_digest(&id, &c));
    let mut c = h.conversation().await;
    c.query(&id, NONE).await;
    let stranger = Identity::new();
    let wrong = Request::ident(&id).secrets(Secrets::Of(&stranger));
    assert_tif(&c.run(wrong).await, 0xC5);
}

#[tokio::test]
async fn rekey_carries_the_indexed_secret_forward_with_pins() {
    let h = Harness::start_with(sin_config).await;
    let old = Identity::new();
    let new = Identity::new();
    let stranger = Identity::new();
    let c = h.associate(&old).await;
    assert_eq!(stored_secrets(&h)[0].2, ins_digest(&old, &c));

    // The replacement must present the retired identity's secret as pins.
    let mut c = h.conversation().await;
    let reply = c.run(Request::query(&new).previous(&old)).await;
    assert_tif(&reply, 0x06);
    let old_suk = *reply.suk().unwrap();
    let replace = Request::ident(&new)
        .previous(&old)
        .new_lock()
        .urs(&old, old_suk);
    let before = h.snapshot();
    let reply = c.run(replace.clone().secrets(Secrets::Of(&stranger))).await;
    assert_tif(&reply, 0xC6); // 0x02: the previous identity is known
    assert_eq!(h.snapshot(), before);
    // With the right pins (and the fresh nut of the refusal) it goes through,
    // and the account now holds the new identity's secret.
    assert_tif(&c.run(replace).await, 0x05);
    let new_idk = new.idk(&c.url).to_bytes().to_vec();
    assert_eq!(
        stored_secrets(&h),
        vec![(new_idk, "7".to_owned(), ins_digest(&new, &c))]
    );

    // The new identity logs in with its own secret, not the old one's.
    let mut c = h.conversation().await;
    assert_tif(&c.query(&new, NONE).await, 0x05);
    let reply = c.run(Request::ident(&new).secrets(Secrets::Of(&old))).await;
    assert_tif(&reply, 0xC5);
    assert_tif(&c.ident(&new, NONE, false).await, 0x05);
}

#[tokio::test]
async fn ip_mismatch_without_noiptest_is_exactly_0x40() {
    let h = Harness::start_with(behind_local_proxy).await;
    let mut browser = h.browser().posing_as("198.51.100.7");
    let id = Identity::new();
    // A client on the page `browser` opens next, posing as `client_ip`.
    let mut client_of_next_page = async |client_ip: &str| {
        let page = browser.open_login_page().await;
        SqrlConversation::new(&h.http, &page.url).posing_as(client_ip)
    };

    let before = h.snapshot();
    let mut c = client_of_next_page("203.0.113.9").await;
    assert_tif(&c.query(&id, NONE).await, 0x40);
    assert_eq!(h.snapshot(), before);

    // The port is not part of the comparison, and a spoofed left-most
    // X-Forwarded-For entry is not believed.
    let mut c = client_of_next_page("198.51.100.7").await;
    assert_tif(&c.query(&id, NONE).await, 0x04);
    let mut c = client_of_next_page("198.51.100.7, 203.0.113.9").await;
    assert_tif(&c.query(&id, NONE).await, 0x40);

    // Cross-device with noiptest: allowed, no IP bit.
    let mut c = client_of_next_page("203.0.113.9").await;
    assert_tif(&c.query(&id, O::NOIPTEST).await, 0x00);
    assert_tif(&c.ident(&id, O::NOIPTEST, true).await, 0x01);
}

#[tokio::test]
async fn a_replayed_nut_is_a_transient_error_with_a_fresh_nut() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut c = h.conversation().await;
    let body = c.form(&Request::query(&id));
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
    let before = h.snapshot();

    // Re-signed over a server= value this server never sent: transient.
    let url = h.minted_url().await;
    let mut c = SqrlConversation::new(&h.http, &url);
    c.server = base64url::encode(url.replace("qrl://", "qrl://evil."));
    assert_tif(&c.query(&id, NONE).await, 0x64);
    assert_eq!(h.snapshot(), before);

    // Changed after signing: the signature fails, client failure.
    let url = h.minted_url().await;
    let mut c = SqrlConversation::new(&h.http, &url);
    let body = c.form(&Request::query(&id));
    let tampered = body.replace(&c.server, &base64url::encode(format!("{url}&x=1")));
    assert_tif(&c.send_form(tampered).await, 0xC4);

    // A later step whose server= is not the last reply: transient.
    let mut c = h.conversation().await;
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
    let other = Identity::new();
    let before = h.snapshot();

    // One bit of ids flipped.
    let mut c = h.conversation().await;
    c.query(&id, NONE).await;
    let form = c.form(&Request::ident(&id).new_lock());
    let ids = form_field(&form, "ids");
    let mut bad = base64url::decode(&ids).unwrap();
    bad[10] ^= 0x01;
    let forged = form.replace(&ids, &base64url::encode(&bad));
    assert_tif(&c.send_form(forged).await, 0xC4);
    assert_eq!(h.snapshot(), before);

    // Signed by another key than idk.
    let mut c = h.conversation().await;
    c.query(&id, NONE).await;
    let form = c.form(&Request::ident(&id).new_lock());
    let by_other = form.replace(
        &form_field(&form, "ids"),
        &other
            .site_key(&c.url)
            .sign(b"something else")
            .to_base64url(),
    );
    assert_tif(&c.send_form(by_other).await, 0xC4);

    // pidk without pids.
    let mut c = h.conversation().await;
    let form = c.form(&Request::query(&id).previous(&other));
    let without_pids = form.split("&pids=").next().unwrap().to_owned();
    assert_tif(&c.send_form(without_pids).await, 0xC4);
    assert_eq!(h.snapshot(), before);
    assert_eq!(h.identity_count(), 0);
}

#[tokio::test]
async fn a_nut_bound_to_another_identity_is_0x1c0() {
    let h = Harness::start_with(behind_local_proxy).await;
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
    assert_eq!(browser.pag(&page.nut).await.status(), StatusCode::GONE);
    let mut events = browser.events(&page.nut).await;
    events.expect("expired").await;
}

#[tokio::test]
async fn the_open_page_rotates_its_nut() {
    let h = Harness::start().await;
    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let rotate = format!("/login/rotate?nut={}", page.nut);
    let response = browser.post(&rotate).await;
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
    assert_eq!(browser.post(&rotate).await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn malformed_requests_never_get_a_500() {
    let h = Harness::start().await;
    let id = Identity::new();
    let c = h.conversation().await;
    let good = c.form(&Request::query(&id));
    let long = "A".repeat(20_000);
    // A client value signed with a made-up signature.
    let unsigned = |client: &str| {
        format!(
            "client={}&server={}&ids={}",
            base64url::encode(client),
            c.server,
            "A".repeat(86)
        )
        .into_bytes()
    };
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
        unsigned("ver=1\r\ncmd=query\r\n"),
        unsigned("ver=1\r\ncmd=fly\r\nidk=AAAA\r\n"),
        unsigned("cmd=query\r\nver=1\r\n"),
        format!("client={long}&server={long}&ids={long}").into_bytes(),
    ];
    let before = h.snapshot();
    for (index, body) in bodies.into_iter().enumerate() {
        for target in [
            c.post_url.clone(),
            h.url("/cli.sqrl"),
            h.url("/cli.sqrl?nut=%00&nut=x"),
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
        (Method::GET, "/cli.sqrl"),
        (Method::PUT, "/cli.sqrl"),
        (Method::GET, "/pag.sqrl"),
        (Method::GET, "/pag.sqrl?nut=%ff%fe&pag=x"),
        (Method::GET, "/png.sqrl?nut=../../etc"),
        (Method::GET, "/login/events?nut="),
        (Method::GET, "/login/complete"),
        (Method::GET, "/login/complete?token=%00"),
        (Method::POST, "/account/sessions/abc/revoke"),
        (Method::GET, "/api/identities/zzz"),
        (Method::GET, "/nope"),
    ] {
        let response = h
            .http
            .request(method.clone(), h.url(path))
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
    let c = h.conversation().await;
    let request = (c.post_url.clone(), c.form(&Request::query(&id)));
    let tifs = post_concurrently(&h.http, vec![request; 8]).await;
    assert_eq!(tifs.iter().filter(|t| **t == 0x04).count(), 1, "{tifs:x?}");
    assert_eq!(tifs.iter().filter(|t| **t == 0x60).count(), 7, "{tifs:x?}");
}

#[tokio::test]
async fn ssp_api_nut_png_pag() {
    let h = Harness::start().await;
    let get_json = async |path: &str| -> serde_json::Value {
        h.http
            .get(h.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    // Form and JSON.
    let form = h.get("/nut.sqrl").await;
    assert_eq!(
        form.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    let text = form.text().await.unwrap();
    assert!(
        text.starts_with("nut=") && text.contains("&pag=") && text.ends_with("&exp=120"),
        "{text}"
    );
    let json = get_json("/nut.sqrl").await;
    let nut = json["nut"].as_str().unwrap().to_owned();
    let pag = json["pag"].as_str().unwrap().to_owned();
    assert_eq!(nut.len(), 22, "128-bit nut");
    assert_eq!(json["exp"], 120);

    // PNG of a given nut; minting PNG returns headers.
    let png = h.get(&format!("/png.sqrl?nut={nut}")).await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.headers().get("sqrl-nut").is_none());
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    let minted = h.get("/png.sqrl").await;
    for name in ["sqrl-nut", "sqrl-pag", "sqrl-exp"] {
        assert!(minted.headers().get(name).is_some(), "{name}");
    }

    // pag.sqrl: pending, then the URL once confirmed.
    let pag_path = format!("/pag.sqrl?nut={nut}&pag={pag}");
    let pending = h.get(&pag_path).await;
    assert_eq!(pending.status(), StatusCode::OK);
    assert_eq!(pending.text().await.unwrap(), "");
    assert_eq!(get_json(&pag_path).await["url"], "");
    let id = Identity::new();
    let sqrl_url = format!(
        "{}/cli.sqrl?nut={nut}",
        h.base().replace("http://", "qrl://")
    );
    let mut c = SqrlConversation::new(&h.http, &sqrl_url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let done = h.get(&pag_path).await;
    assert_eq!(done.status(), StatusCode::OK);
    let url = done.text().await.unwrap();
    assert_eq!(
        url,
        h.url(&format!("/login/collect?nut={nut}&pag={pag}")),
        "the SSP caller holds no cookie: the URL carries the secret"
    );
    assert_eq!(h.browser().collect(&url).await.0, StatusCode::SEE_OTHER);
    assert_eq!(h.get(&pag_path).await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn operator_api() {
    let h = Harness::start_with(|config| {
        config.operator_token = Some(sqrl_server::config::OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let id = Identity::new();
    let url = h.minted_url().await;
    let sqrl_url = sqrl_core::url::SqrlUrl::parse(&url).unwrap();
    let idk = id.idk(&sqrl_url).to_base64url();
    let identity = format!("/identities/{idk}");

    let without_token = h.http.get(h.api(&identity)).send().await.unwrap();
    assert_eq!(without_token.status(), StatusCode::UNAUTHORIZED);
    let wrong_token = h
        .http
        .get(h.api(&identity))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), StatusCode::UNAUTHORIZED);
    let status = h.operator_status(Method::GET, &identity, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Associate with a new account, then the same identity again: conflict.
    let (suk, vuk) = id.lock();
    let body =
        serde_json::json!({ "idk": idk, "suk": suk.to_base64url(), "vuk": vuk.to_base64url() });
    let created = h
        .operator(Method::POST, "/associations")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let account = created.json::<serde_json::Value>().await.unwrap()["account_id"]
        .as_i64()
        .unwrap();
    let associate = async |body: &serde_json::Value| {
        h.operator_status(Method::POST, "/associations", Some(body))
            .await
    };
    assert_eq!(associate(&body).await, StatusCode::CONFLICT);

    // The identity now logs in to that account.
    let mut c = SqrlConversation::new(&h.http, &url);
    assert_tif(&c.query(&id, NONE).await, 0x05);

    let found = h.operator_get(&identity).await;
    assert_eq!(found["account_id"], account);
    assert_eq!(found["identity"]["idk"], idk.as_str());
    let by_id = h.operator_get(&format!("/accounts/{account}")).await;
    assert_eq!(by_id["identity"]["idk"], idk.as_str());

    // Another identity onto the same account: refused (one per account).
    let other = Identity::new();
    let (suk2, vuk2) = other.lock();
    let body2 = serde_json::json!({ "idk": other.idk(&sqrl_url).to_base64url(), "suk": suk2.to_base64url(), "vuk": vuk2.to_base64url(), "account_id": account });
    assert_eq!(associate(&body2).await, StatusCode::CONFLICT);

    // Remove, then it can be associated with the existing account.
    let remove = async || h.operator_status(Method::DELETE, &identity, None).await;
    assert_eq!(remove().await, StatusCode::NO_CONTENT);
    assert_eq!(remove().await, StatusCode::NOT_FOUND);
    assert_eq!(associate(&body2).await, StatusCode::CREATED);
    let owner: i64 = h.value("SELECT account_id FROM sqrl_identities");
    assert_eq!(owner, account);
    // Malformed input: 4xx.
    let bad = serde_json::json!({ "idk": "short", "suk": "x", "vuk": "y" });
    assert_eq!(associate(&bad).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn operator_api_is_off_without_a_token() {
    let h = Harness::start().await;
    let status = h.operator_status(Method::GET, "/accounts/1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn account_page_sessions_revoke_and_logout() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut laptop = h.logged_in_browser(&id, "Laptop/1.0").await;
    let mut desktop = h.logged_in_browser(&id, "Desktop/2.0").await;
    let html = laptop.get("/account").await.text().await.unwrap();
    assert!(html.contains("Laptop/1.0") && html.contains("Desktop/2.0"));
    assert!(html.contains("this browser"));

    // The login page sends a logged-in browser to its account.
    assert_eq!(laptop.get("/").await.status(), StatusCode::SEE_OTHER);

    let desktop_session: i64 = h.value("SELECT id FROM sessions WHERE user_agent = 'Desktop/2.0'");
    let revoke_desktop = format!("/account/sessions/{desktop_session}/revoke");
    // A cross-site form post is refused.
    let refused = laptop
        .request(Method::POST, &revoke_desktop)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The browser's own word decides when it gives it: a same-origin post
    // from a page sent with `Referrer-Policy: no-referrer` carries
    // `Origin: null` (the real browser test clicks the buttons too) ...
    for (site, origin, expected) in [
        ("cross-site", h.base(), StatusCode::FORBIDDEN),
        ("same-site", h.base(), StatusCode::FORBIDDEN),
        ("same-origin", "null".to_owned(), StatusCode::SEE_OTHER),
    ] {
        let missing = format!("/account/sessions/{}/revoke", desktop_session + 1000);
        let status = laptop
            .request(Method::POST, &missing)
            .header("sec-fetch-site", site)
            .header("origin", origin)
            .send()
            .await
            .unwrap()
            .status();
        // Allowed posts reach the handler: 404 for a session that is not there.
        let reached = status == StatusCode::NOT_FOUND;
        assert_eq!(
            reached,
            expected == StatusCode::SEE_OTHER,
            "{site}: {status}"
        );
    }
    let revoked = laptop.post(&revoke_desktop).await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        desktop.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "revoked: back to login"
    );

    // Someone else's session id: 404.
    let other = Identity::new();
    let _stranger = h.logged_in_browser(&other, "Stranger/1.0").await;
    let stranger_session: i64 =
        h.value("SELECT id FROM sessions WHERE user_agent = 'Stranger/1.0'");
    let revoke_stranger = format!("/account/sessions/{stranger_session}/revoke");
    assert_eq!(
        laptop.post(&revoke_stranger).await.status(),
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

// --- cookies and pages -----------------------------------------------------------

/// The one cookie of `response` named `name`.
fn set_cookie_named(response: &reqwest::Response, name: &str) -> cookie::Cookie<'static> {
    let all = set_cookies(response);
    let mut named = all.iter().filter(|cookie| cookie.name() == name);
    let found = named
        .next()
        .unwrap_or_else(|| panic!("no Set-Cookie {name} in {all:?}"))
        .clone();
    assert!(named.next().is_none(), "one Set-Cookie {name}: {all:?}");
    found
}

/// A cookie holding a secret over plain HTTP: a 128-bit token, for the whole
/// site, out of scripts' reach, sent on top-level navigations only, for
/// `max_age` seconds.
fn assert_secret_cookie(cookie: &cookie::Cookie<'_>, max_age: i64) {
    assert_eq!(
        base64url::decode(cookie.value()).map(|token| token.len()),
        Ok(16),
        "{cookie}"
    );
    assert_removal_attributes(cookie);
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::seconds(max_age)),
        "{cookie}"
    );
}

/// The attributes a browser matches a removal against: the ones it was set with.
fn assert_removal_attributes(cookie: &cookie::Cookie<'_>) {
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{cookie}");
    assert_eq!(cookie.path(), Some("/"), "{cookie}");
    assert_eq!(cookie.domain(), None, "{cookie}");
    assert_ne!(cookie.secure(), Some(true), "plain HTTP: {cookie}");
}

fn assert_removal(cookie: &cookie::Cookie<'_>) {
    assert_eq!(cookie.value(), "", "{cookie}");
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::ZERO),
        "{cookie}"
    );
    assert_removal_attributes(cookie);
}

#[tokio::test]
async fn every_cookie_the_server_sets_has_its_attributes() {
    const ATTEMPT_SECS: u64 = 90;
    const SESSION_SECS: u64 = 3_600;
    let h = Harness::start_with(|config| {
        config.attempt_lifetime = Duration::from_secs(ATTEMPT_SECS);
        config.nut_lifetime = Duration::from_secs(60);
        config.session_lifetime = Duration::from_secs(SESSION_SECS);
    })
    .await;
    let attempt_secs = i64::try_from(ATTEMPT_SECS).unwrap();

    // Each way of starting an attempt hands the browser its secret.
    let form = h.get("/nut.sqrl").await;
    let cookies = set_cookies(&form);
    let nut = form_field(&form.text().await.unwrap(), "nut");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0].name(), format!("sqrl_pag_{nut}"));
    assert_secret_cookie(&cookies[0], attempt_secs);

    let png = h.get("/png.sqrl").await;
    let nut = png.headers()["sqrl-nut"].to_str().unwrap().to_owned();
    assert_secret_cookie(
        &set_cookie_named(&png, &format!("sqrl_pag_{nut}")),
        attempt_secs,
    );

    let mut browser = h.browser();
    let page = browser.open_login_page().await;
    let another_page = h.get("/").await;
    let cookies = set_cookies(&another_page);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].name().starts_with("sqrl_pag_"), "{cookies:?}");
    assert_secret_cookie(&cookies[0], attempt_secs);

    // Collecting the login: a session, and the attempt's secret dropped.
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &page.url);
    c.query(&id, NONE).await;
    assert_tif(&c.ident(&id, NONE, true).await, 0x05);
    let link = browser.pag_url(&page.nut).await;
    let collected = browser.get(&link).await;
    assert_eq!(collected.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookies(&collected).len(), 2);
    assert_secret_cookie(
        &set_cookie_named(&collected, "sqrl_session"),
        i64::try_from(SESSION_SECS).unwrap(),
    );
    assert_removal(&set_cookie_named(
        &collected,
        &format!("sqrl_pag_{}", page.nut),
    ));

    // Logging out drops the session cookie.
    let out = browser.post("/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_removal(&set_cookie_named(&out, "sqrl_session"));
    assert!(!browser.has_cookie("sqrl_session"));
}

/// A `Cookie` header that is not a session: no cookie, a value that is no
/// token, a pair without `=`, bytes that are not text, another scheme's
/// name. Each is "not logged in", never an error of the server's.
#[tokio::test]
async fn a_malformed_cookie_is_no_session() {
    let h = Harness::start().await;
    let id = Identity::new();
    let browser = h.logged_in_browser(&id, "Cookies/1.0").await;
    let session = browser.cookie("sqrl_session");
    let send = async |method: Method, path: &str, cookie: &[u8]| {
        h.http
            .request(method, h.url(path))
            .header(
                reqwest::header::COOKIE,
                reqwest::header::HeaderValue::from_bytes(cookie).unwrap(),
            )
            .send()
            .await
            .unwrap()
    };
    let location = |response: &reqwest::Response| {
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned())
    };

    let with_extra_char = format!("sqrl_session={session}A");
    let truncated = format!("sqrl_session={}", &session[..21]);
    let other_scheme = format!("__Host-sqrl_session={session}");
    let malformed: [&[u8]; 7] = [
        b"sqrl_session=",
        b"sqrl_session=%%%not-a-token",
        b"sqrl_session",
        b"sqrl_session=\xff\xfe\xfd",
        with_extra_char.as_bytes(),
        truncated.as_bytes(),
        other_scheme.as_bytes(),
    ];
    for cookie in malformed {
        let account = send(Method::GET, "/account", cookie).await;
        assert_eq!(
            account.status(),
            StatusCode::SEE_OTHER,
            "{}",
            String::from_utf8_lossy(cookie)
        );
        assert_eq!(
            location(&account).as_deref(),
            Some("/"),
            "{}",
            String::from_utf8_lossy(cookie)
        );
        let page = send(Method::GET, "/", cookie).await;
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "login page for {}",
            String::from_utf8_lossy(cookie)
        );
        let revoke = send(Method::POST, "/account/sessions/1/revoke", cookie).await;
        assert_eq!(
            revoke.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            String::from_utf8_lossy(cookie)
        );
        let logout = send(Method::POST, "/logout", cookie).await;
        assert_eq!(
            logout.status(),
            StatusCode::SEE_OTHER,
            "{}",
            String::from_utf8_lossy(cookie)
        );
    }
    assert_eq!(
        h.count("SELECT count(*) FROM sessions"),
        1,
        "no malformed cookie ended the real session"
    );

    // Garbage next to the real cookie does not hide it.
    let mixed = format!("junk; =x; ;sqrl_session={session}; other=%%");
    let account = send(Method::GET, "/account", mixed.as_bytes()).await;
    assert_eq!(account.status(), StatusCode::OK);

    // A malformed attempt cookie is no secret: the waiting page's requests
    // answer as for a stranger.
    let mut waiting = h.browser();
    let page = waiting.open_login_page().await;
    let bad_secret = format!("sqrl_pag_{}=%%%", page.nut);
    for path in [
        format!("/login/events?nut={}", page.nut),
        format!("/pag.sqrl?nut={}", page.nut),
        format!("/login/collect?nut={}", page.nut),
    ] {
        let answer = send(Method::GET, &path, bad_secret.as_bytes()).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

/// Whatever a browser says about itself is shown as text: a `User-Agent`
/// carrying markup and quotes reaches the account page escaped.
#[tokio::test]
async fn hostile_values_reach_the_page_escaped() {
    let h = Harness::start().await;
    let hostile = r#"<script>alert("x")</script><img src='y' onerror="z">&amp;"#;
    let mut browser = h.logged_in_browser(&Identity::new(), hostile).await;
    let html = browser.get("/account").await.text().await.unwrap();
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\
                   &lt;img src='y' onerror=&quot;z&quot;&gt;&amp;amp;";
    assert_eq!(
        html.matches(escaped).count(),
        2,
        "in the sessions and in the history: {html}"
    );
    // The one script is the page's own (local times), the hostile one only text.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(
        html.contains(r#"<script src="/static/local-time.js"></script>"#),
        "{html}"
    );
    assert!(!html.contains("<img"), "{html}");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let h = Harness::start().await;
    let id = Identity::new();
    h.associate(&id).await;
    let before = h.snapshot();
    let h = h.restart().await;
    assert_eq!(h.snapshot(), before);
    assert_tif(&h.conversation().await.query(&id, NONE).await, 0x05);
    let migrations = h.count("SELECT count(*) FROM schema_migrations");
    assert_eq!(
        migrations,
        sqrl_server::store::migrations::sqlite::MIGRATIONS.len() as i64,
        "migrations run once"
    );
}

#[tokio::test]
async fn health_metrics_and_headers() {
    let h = Harness::start_with(|config| {
        config.operator_token = Some(sqrl_server::config::OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    assert_eq!(h.get("/healthz").await.status(), StatusCode::OK);
    let id = Identity::new();
    h.associate(&id).await;
    let mut c = h.conversation().await;
    c.server = "tampered".into();
    c.query(&id, NONE).await;
    let _ = h.logged_in_browser(&id, "Metrics/1.0").await;
    // Metrics are the operator's: they tell which defence an attacker hits.
    assert_eq!(h.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    let metrics = text(h.http.get(h.url("/metrics")).bearer_auth(OPERATOR_TOKEN)).await;
    for expected in [
        "sqrl_client_requests_total{command=\"query\",tif=\"4\",result=\"ok\"} 1",
        "sqrl_client_failures_total{tif=\"65\",result=\"server-value-mismatch\"} 1",
        "sqrl_logins_total{method=\"cross-device\"} 1",
        "sqrl_client_request_seconds_bucket{command=\"ident\",le=\"+Inf\"}",
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }

    let page = h.get("/").await;
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
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure")
    );
    let script = h.get("/static/login.js").await.text().await.unwrap();
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
        statuses.push(h.get("/nut.sqrl").await.status());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Health checks are never limited.
    assert_eq!(h.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn racing_idents_of_one_new_identity_create_one_account() {
    let h = Harness::start().await;
    let id = Identity::new();
    let mut requests = Vec::new();
    for _ in 0..4 {
        let mut c = h.conversation().await;
        assert_tif(&c.query(&id, NONE).await, 0x04);
        requests.push((c.post_url.clone(), c.form(&Request::ident(&id).new_lock())));
    }
    let tifs = post_concurrently(&h.http, requests).await;
    // One created the association; the others were decided after it
    // committed, so they found the identity known and logged their pages
    // in too. Never a second account, never a retry.
    assert_eq!(tifs, vec![0x05; 4], "{tifs:x?}");
    assert_eq!(h.count("SELECT count(*) FROM accounts"), 1);
    assert_eq!(h.identity_count(), 1);
}
