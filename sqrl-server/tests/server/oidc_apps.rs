//! "Connected apps" on the account page over real HTTP: the relying parties
//! a person allowed, and the Disconnect button that withdraws the consent
//! and revokes every token the app holds for the account, from every
//! session. Only the account's own apps, and only from the site's own pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{Browser, Harness, Identity};
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqrl_server::config::Config;
use sqrl_server::oidc::clients::{ClientSecretText, ClientSettings, OidcConfig, OidcSettings};

/// A relying party: id, secret, redirect URI.
type App = (&'static str, &'static str, &'static str);

const WIKI: App = (
    "wiki",
    "wiki-secret-0123456789-0123456789-abc",
    "http://127.0.0.1:9/wiki/callback",
);
const CHAT: App = (
    "chat",
    "chat-secret-0123456789-0123456789-xyz",
    "http://127.0.0.1:9/chat/callback",
);

async fn start() -> Harness {
    Harness::start_with(|config: &mut Config| {
        let settings = OidcSettings {
            clients: [WIKI, CHAT]
                .into_iter()
                .map(|(id, secret, cb)| ClientSettings {
                    client_id: id.into(),
                    name: Some(format!("The {id}")),
                    client_secret: Some(ClientSecretText::new(secret)),
                    redirect_uris: vec![cb.into()],
                    ..ClientSettings::default()
                })
                .collect(),
            ..OidcSettings::default()
        };
        config.oidc = OidcConfig::from_settings(&settings).unwrap();
    })
    .await
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Authorizes `app` for the person signed in on `browser`, allowing it on
/// the consent screen, which must be shown exactly when `consent_expected`;
/// the tokens the code is exchanged for.
async fn sign_in(h: &Harness, browser: &mut Browser, app: App, consent_expected: bool) -> Value {
    let (id, _, cb) = app;
    let query = form(&[
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", cb),
        ("scope", "openid sqrl"),
        ("state", "s"),
    ]);
    let response = browser.get(&format!("/oidc/authorize?{query}")).await;
    let back = if response.status() == StatusCode::OK {
        assert!(consent_expected, "{id}: consent asked again");
        let html = response.text().await.unwrap();
        let start = "name=\"request\" value=\"";
        let from = html.find(start).expect("a consent page") + start.len();
        let request = html[from..from + html[from..].find('"').unwrap()].replace("&amp;", "&");
        let answer = browser
            .request(Method::POST, "/oidc/authorize")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("request", &request), ("decision", "allow")]))
            .send()
            .await
            .unwrap();
        location(&answer)
    } else {
        assert!(!consent_expected, "{id}: no consent asked");
        location(&response)
    };
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "code")
        .unwrap_or_else(|| panic!("no code in {back}"))
        .1
        .into_owned();
    let (status, tokens) = token_request(
        h,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", cb),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn token_request(h: &Harness, app: App, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = h
        .http
        .post(h.url("/oidc/token"))
        .basic_auth(app.0, Some(app.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn userinfo(h: &Harness, tokens: &Value) -> StatusCode {
    h.http
        .get(h.url("/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
}

/// Whether `tokens` still work: userinfo takes the access token, and
/// introspection says the refresh token is active (without spending it).
async fn assert_live(h: &Harness, app: App, tokens: &Value) {
    assert_eq!(userinfo(h, tokens).await, StatusCode::OK, "access token");
    let response = h
        .http
        .post(h.url("/oidc/introspect"))
        .basic_auth(app.0, Some(app.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[(
            "token",
            tokens["refresh_token"].as_str().unwrap(),
        )]))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true, "refresh token: {body}");
}

/// Whether `tokens` are dead: userinfo refuses the access token, the token
/// endpoint the refresh token.
async fn assert_revoked(h: &Harness, app: App, tokens: &Value) {
    assert_eq!(
        userinfo(h, tokens).await,
        StatusCode::UNAUTHORIZED,
        "access token"
    );
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = token_request(
        h,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "refresh token: {body}"
    );
}

/// The Disconnect button of `client_id`, pressed on `browser`, with
/// `headers` as the browser sends them.
async fn disconnect(
    browser: &Browser,
    client_id: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = browser
        .request(Method::POST, "/account/apps/disconnect")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("client_id", client_id)]));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn account_page(browser: &mut Browser) -> String {
    let response = browser.get("/account").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The row of `client_id` in the Connected apps table, if listed.
fn app_row(page: &str, client_id: &str) -> Option<String> {
    let from = page.find(&format!("<tr data-client=\"{client_id}\">"))?;
    let len = page[from..].find("</tr>")?;
    Some(page[from..from + len].to_owned())
}

#[tokio::test]
async fn disconnecting_an_app_revokes_its_tokens_in_every_session_and_asks_again() {
    let h = start().await;
    let id = Identity::new();
    let mut laptop = h.logged_in_browser(&id, "Laptop/1.0").await;
    let mut phone = h.logged_in_browser(&id, "Phone/1.0").await;
    let wiki_on_laptop = sign_in(&h, &mut laptop, WIKI, true).await;
    // Allowed once for the account: the phone is not asked.
    let wiki_on_phone = sign_in(&h, &mut phone, WIKI, false).await;
    let chat = sign_in(&h, &mut laptop, CHAT, true).await;

    let page = account_page(&mut laptop).await;
    assert!(page.contains("<h2>Connected apps</h2>"), "{page}");
    let wiki_row = app_row(&page, "wiki").expect("the wiki is listed");
    assert!(wiki_row.contains("The wiki"), "{wiki_row}");
    assert!(wiki_row.contains("data-scope=\"sqrl\""), "{wiki_row}");
    assert!(wiki_row.contains("holds live tokens"), "{wiki_row}");
    assert!(wiki_row.contains("<time datetime="), "{wiki_row}");
    assert!(app_row(&page, "chat").is_some());

    let response = disconnect(&laptop, "wiki", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
    assert_revoked(&h, WIKI, &wiki_on_laptop).await;
    // Every session's.
    assert_revoked(&h, WIKI, &wiki_on_phone).await;
    // The other app keeps its.
    assert_live(&h, CHAT, &chat).await;

    let page = account_page(&mut laptop).await;
    assert!(app_row(&page, "wiki").is_none(), "{page}");
    assert!(app_row(&page, "chat").is_some());
    // The next authorization asks again, on either browser.
    let again = sign_in(&h, &mut phone, WIKI, true).await;
    assert_live(&h, WIKI, &again).await;
    // Once disconnected, there is nothing left to disconnect.
    assert_eq!(
        disconnect(&laptop, "wiki", &[]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        disconnect(&laptop, "wiki", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_accounts_app_cannot_be_disconnected() {
    let h = start().await;
    let alice = Identity::new();
    let mut alices = h.logged_in_browser(&alice, "Alice/1.0").await;
    let tokens = sign_in(&h, &mut alices, WIKI, true).await;

    let bobs = h.logged_in_browser(&Identity::new(), "Bob/1.0").await;
    assert_eq!(
        disconnect(&bobs, "wiki", &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let nobodys = h.browser();
    assert_eq!(
        disconnect(&nobodys, "wiki", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_live(&h, WIKI, &tokens).await;
    assert!(app_row(&account_page(&mut alices).await, "wiki").is_some());
}

#[tokio::test]
async fn a_cross_site_disconnect_is_refused() {
    let h = start().await;
    let mut browser = h.logged_in_browser(&Identity::new(), "Laptop/1.0").await;
    let tokens = sign_in(&h, &mut browser, WIKI, true).await;
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site"), ("origin", &h.base())],
    ] {
        let response = disconnect(&browser, "wiki", headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    // Refused before the body is read: a malformed one changes nothing.
    let malformed = browser
        .request(Method::POST, "/account/apps/disconnect")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::FORBIDDEN);
    assert_live(&h, WIKI, &tokens).await;
    assert!(app_row(&account_page(&mut browser).await, "wiki").is_some());
    // From the site itself, a form that names no app is refused as such.
    let unnamed = browser
        .request(Method::POST, "/account/apps/disconnect")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(unnamed.status(), StatusCode::BAD_REQUEST);
    assert_live(&h, WIKI, &tokens).await;
    // The site's own page posts it.
    let own = disconnect(&browser, "wiki", &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    assert_revoked(&h, WIKI, &tokens).await;
}

#[tokio::test]
async fn an_app_no_longer_configured_shows_by_id_and_can_be_disconnected() {
    let h = start().await;
    let mut browser = h.logged_in_browser(&Identity::new(), "Laptop/1.0").await;
    let account: i64 = h.value("SELECT id FROM accounts");
    // Allowed while it was registered; the operator has since removed it.
    h.db()
        .execute(
            "INSERT INTO oidc_consents (account_id, client_id, scope, granted_at)
             VALUES (?1, 'retired-app', 'openid', 1800000000)",
            [account],
        )
        .unwrap();
    let page = account_page(&mut browser).await;
    let row = app_row(&page, "retired-app").expect("listed");
    assert!(row.contains("<code>retired-app</code>"), "{row}");
    assert!(row.contains("no longer registered"), "{row}");
    assert!(row.contains("no live tokens"), "{row}");
    assert!(app_row(&page, "wiki").is_none(), "never allowed: {page}");
    let response = disconnect(&browser, "retired-app", &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(app_row(&account_page(&mut browser).await, "retired-app").is_none());
}

#[tokio::test]
async fn without_the_provider_the_section_is_not_shown() {
    let h = Harness::start().await;
    let mut browser = h.logged_in_browser(&Identity::new(), "Laptop/1.0").await;
    let page = account_page(&mut browser).await;
    assert!(!page.contains("Connected apps"), "{page}");
}
