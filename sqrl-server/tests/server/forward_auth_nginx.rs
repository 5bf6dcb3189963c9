//! The operator's nginx configuration, `deploy/nginx/sqrl-forward-auth.conf`,
//! run as it ships (only the listen address, the upstreams and the server
//! name replaced) by a real nginx, in front of sqrl-server mounted under
//! `/auth/` and a small app it protects: an anonymous visitor is sent to the
//! login page and, once signed in, back to the page; the app hears the user
//! from sqrl-server alone; logging out ends access.
//!
//! Needs nginx (`.ci/install-server-tools`); without it the test is reported
//! as ignored (see `build.rs`), unless `SQRL_REQUIRE_NGINX=1` (CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::HeaderMap;
use common::nginx::{Nginx, free_port};
use common::{Browser, Harness, Identity, NONE, SqrlConversation, assert_tif, http_client};
use reqwest::{Method, StatusCode};
use sqrl_server::config::PublicOrigin;
use sqrl_server::net::IpNet;

/// The configuration operators install.
const SITE: &str = include_str!("../../../deploy/nginx/sqrl-forward-auth.conf");

/// `text` with `from` (which must occur exactly once) replaced.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in the config");
    text.replace(from, to)
}

/// The protected app: answers every request with the user nginx passed on
/// and the path, and counts the requests that reached it.
async fn start_app(hits: Arc<AtomicUsize>) -> SocketAddr {
    let app = axum::Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri| {
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let users: Vec<&str> = headers
                .get_all("remote-user")
                .iter()
                .map(|value| value.to_str().unwrap_or("?"))
                .collect();
            format!("app page {uri}; users {users:?}\n")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_nginx, ignore = "needs nginx: run .ci/install-server-tools")]
async fn nginx_protects_an_app_with_sqrl_logins_under_a_path_prefix() {
    let port = free_port();
    let site_url = format!("http://127.0.0.1:{port}");
    let h = Harness::start_with(|config| {
        config.public_origin = Some(PublicOrigin::parse(&site_url).unwrap());
        config.path_prefix = "/auth".to_owned();
        config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    let hits = Arc::new(AtomicUsize::new(0));
    let app = start_app(Arc::clone(&hits)).await;
    let site = replace_once(SITE, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let site = replace_once(&site, "server_name example.com;", "server_name 127.0.0.1;");
    let site = replace_once(
        &site,
        "server 127.0.0.1:8080;",
        &format!("server {};", h.server.addr()),
    );
    let site = replace_once(&site, "server 127.0.0.1:3000;", &format!("server {app};"));
    let nginx = Nginx::start(&site, port);

    let http = http_client();
    let page = format!("{site_url}/app/page?x=1&y=%2F");

    // A script (no text/html) is refused with 401 and a challenge; the app
    // never hears of it, whatever user header it claims.
    let script = http
        .get(&page)
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        nginx.errors()
    );
    assert!(
        script
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("SQRL ")),
        "{:?}",
        script.headers()
    );
    // A browser is sent to the login page, which is to bring it back.
    let mut browser = Browser::new(&http, &format!("{site_url}/auth"));
    let turned = browser
        .request(Method::GET, &page)
        .header("accept", "text/html")
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(turned.status(), StatusCode::FOUND, "{}", nginx.errors());
    let login = location(&turned);
    let rd: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
    assert_eq!(login, format!("{site_url}/auth/?rd={rd}"));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the app saw nothing yet");
    // The question nginx asks is not for visitors to ask.
    let direct = http
        .get(format!("{site_url}/auth/forward-auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::NOT_FOUND);

    // The login page, through nginx, with its event stream unbuffered.
    let shown = browser.get(&login).await;
    assert_eq!(shown.status(), StatusCode::OK);
    let html = shown.text().await.unwrap();
    let nut = html
        .split("data-nut=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let code = html
        .split("<code id=\"url\">")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(code.starts_with(&format!("qrl://127.0.0.1:{port}/auth/cli.sqrl?nut=")));
    let mut events = browser.events(&nut).await;
    events.expect("pending").await;

    // The phone: through nginx too (its address, like the browser's, comes
    // from nginx's X-Forwarded-For).
    let id = Identity::new();
    let mut phone = SqrlConversation::new(&http, &code);
    assert_tif(&phone.query(&id, NONE).await, 0x04);
    events.expect("scanned").await;
    assert_tif(&phone.ident(&id, NONE, true).await, 0x05);
    let confirmed = events.expect("confirmed").await;
    let collect = confirmed.url.unwrap();
    let (status, back) = browser.collect(&format!("{site_url}{collect}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(back.as_deref(), Some(page.as_str()), "back to the page");

    // Signed in: the app sees the user sqrl-server named, and only that,
    // though the browser claims to be someone else.
    let response = browser
        .request(Method::GET, &page)
        .header("accept", "text/html")
        .header("remote-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.errors());
    let body = response.text().await.unwrap();
    let handle: String = h.value("SELECT handle FROM accounts");
    assert_eq!(handle.len(), 22);
    assert_eq!(
        body,
        format!("app page /app/page?x=1&y=%2F; users [\"{handle}\"]\n")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Logging out ends access: the next page load goes to the login page.
    let out = browser.post("/logout").await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(!browser.has_cookie("sqrl_session"));
    let again = browser
        .request(Method::GET, &page)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::FOUND);
    assert_eq!(location(&again), login);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the app saw nothing more");
}
