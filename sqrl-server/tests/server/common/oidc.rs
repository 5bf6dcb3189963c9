//! A person going through the OpenID Connect provider's pages: sent to the
//! login page, signed in there by a SQRL scan, shown the consent screen and
//! allowing it, until the browser leaves the provider for the relying party.
//! Relying parties of any kind (hand-written requests, the `openidconnect`
//! crate, the example app) share these steps.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use super::{Browser, Harness, Identity, scan_in};

/// `text` as one form-urlencoded value.
pub fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The query parameters of a URL.
pub fn params(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The query parameter `name` of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    params(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// What an authorization request ends in once the person did what the
/// provider asked of them.
#[derive(Debug)]
pub enum Outcome {
    /// Back at the client: the URL the provider sent the browser to.
    Client(String),
    /// The provider refused on a page of its own.
    Page(StatusCode, String),
}

/// Whether a redirect to `to` leaves the provider (for the relying party).
fn leaves_provider(h: &Harness, to: &str) -> bool {
    to.starts_with("http") && !to.starts_with(&format!("{}/", h.base()))
}

/// Follows an authorization request (a path or an absolute URL) as a person
/// would: signs `id` in when sent to the login page, allows when shown the
/// consent screen, until the provider sends the browser elsewhere.
pub async fn run(h: &Harness, browser: &mut Browser, path: &str, id: &Identity) -> Outcome {
    let mut next = path.to_owned();
    for _ in 0..6 {
        let response = browser.get(&next).await;
        match response.status() {
            StatusCode::SEE_OTHER | StatusCode::FOUND | StatusCode::TEMPORARY_REDIRECT => {
                let to = location(&response);
                if leaves_provider(h, &to) {
                    return Outcome::Client(to);
                }
                next = if to.starts_with('/') && to.contains("rd=") {
                    scan_in(h, browser, &to, id).await
                } else {
                    to
                };
            }
            StatusCode::OK => {
                let html = response.text().await.unwrap();
                assert!(html.contains("id=\"allow\""), "not a consent page: {html}");
                next = allow(browser, &html).await;
                if leaves_provider(h, &next) {
                    return Outcome::Client(next);
                }
            }
            status => return Outcome::Page(status, response.text().await.unwrap()),
        }
    }
    panic!("the authorization request went round in circles");
}

/// The hidden request of a consent page.
pub fn consent_request(html: &str) -> String {
    let start = "name=\"request\" value=\"";
    let from = html.find(start).unwrap() + start.len();
    html[from..from + html[from..].find('"').unwrap()].replace("&amp;", "&")
}

/// Answers a consent page with `decision`; returns where it sends the browser.
pub async fn answer(browser: &mut Browser, html: &str, decision: &str) -> String {
    let form = format!(
        "request={}&decision={decision}",
        encoded(&consent_request(html))
    );
    let response = browser
        .request(reqwest::Method::POST, "/oidc/authorize")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "consent answer");
    location(&response)
}

/// Allows what a consent page asks.
pub async fn allow(browser: &mut Browser, html: &str) -> String {
    answer(browser, html, "allow").await
}
