//! Protecting other apps: `/forward-auth` (what a reverse proxy asks before
//! it passes a request on), the return URL a login page takes (`rd=`) and
//! follows once signed in, the session cookie for a parent domain, and the
//! whole service under a path prefix. Real HTTP against an in-process
//! server; `forward_auth_nginx.rs` runs the same behind nginx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;

use common::{
    Browser, Harness, Identity, NONE, OPERATOR_TOKEN, Request, SqrlConversation, WaitingPage,
    assert_tif, scan_in, set_cookies,
};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Method, StatusCode};
use sqrl_core::msg::ClientOptions as O;
use sqrl_server::config::{Config, OperatorToken};
use sqrl_server::net::IpNet;
use sqrl_server::return_to::ReturnDomains;

fn behind_local_proxy(config: &mut Config) {
    config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
}

/// `text` as a query parameter value.
fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `/forward-auth` as the proxy asks it for `browser`, with `headers`.
async fn ask(browser: &Browser, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = browser.request(Method::GET, "/forward-auth");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn forward_auth_names_the_signed_in_user_and_turns_others_to_the_login_page() {
    let h = Harness::start_with(behind_local_proxy).await;
    let page = h.url("/app/page?x=1&y=%2F");
    let login = h.url(&format!("/?rd={}", encoded(&page)));

    // Not signed in: a script gets 401 with a challenge, and the login URL.
    let anonymous = h.browser();
    let refused = ask(&anonymous, &[("x-original-url", &page)]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&refused, "www-authenticate")
            .unwrap()
            .starts_with("SQRL ")
    );
    assert_eq!(
        header(&refused, "location").as_deref(),
        Some(login.as_str())
    );
    // A browser navigation is sent to the login page, which returns it.
    let html = ask(
        &anonymous,
        &[("x-original-url", &page), ("accept", "text/html,*/*;q=0.8")],
    )
    .await;
    assert_eq!(html.status(), StatusCode::FOUND);
    assert_eq!(header(&html, "location").as_deref(), Some(login.as_str()));
    // The Caddy/Traefik headers say the same.
    let host = h.server.addr().to_string();
    let forwarded = ask(
        &anonymous,
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", &host),
            ("x-forwarded-uri", "/app/page?x=1&y=%2F"),
        ],
    )
    .await;
    assert_eq!(
        header(&forwarded, "location").as_deref(),
        Some(login.as_str())
    );
    // A page the service may not return to, or a header that says two
    // things, leaves the login page without rd=.
    for headers in [
        &[("x-original-url", "https://evil.example/")][..],
        &[("x-original-url", "//evil.example/")],
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example, 127.0.0.1"),
            ("x-forwarded-uri", "/"),
        ],
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", &host),
            ("x-forwarded-uri", "//evil.example/"),
        ],
    ] {
        let response = ask(&anonymous, headers).await;
        assert_eq!(
            header(&response, "location").as_deref(),
            Some(h.url("/").as_str()),
            "{headers:?}"
        );
    }

    // A forged user header is no session, and never echoed.
    let forged = ask(&anonymous, &[("remote-user", "admin")]).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&forged, "remote-user"), None);

    // Signed in: 200 and an opaque handle, whatever the request claimed.
    let id = Identity::new();
    let browser = h.logged_in_browser(&id, "Browser/1").await;
    let allowed = ask(
        &browser,
        &[("remote-user", "admin"), ("accept", "text/html")],
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let handle = header(&allowed, "remote-user").unwrap();
    assert_ne!(handle, "admin");
    assert_eq!(handle.len(), 22, "128 random bits, base64url: {handle}");
    let account: i64 = h.value("SELECT account_id FROM sessions");
    assert_ne!(handle, account.to_string());
    let stored: String = h.value("SELECT handle FROM accounts");
    assert_eq!(handle, stored);
    // The same for every request and every session of the account.
    assert_eq!(
        header(&ask(&browser, &[]).await, "remote-user"),
        Some(handle.clone())
    );
    let second = h.logged_in_browser(&id, "Browser/2").await;
    assert_eq!(
        header(&ask(&second, &[]).await, "remote-user"),
        Some(handle.clone())
    );
    // Another account has another.
    let other = h.logged_in_browser(&Identity::new(), "Browser/3").await;
    let other_handle = header(&ask(&other, &[]).await, "remote-user").unwrap();
    assert_ne!(other_handle, handle);

    // Logging out ends it.
    let mut browser = browser;
    let out = browser
        .request(Method::POST, "/logout")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookies(&out);
    assert!(
        cleared
            .iter()
            .any(|c| c.name() == "sqrl_session" && c.value().is_empty())
    );
    browser.cookies.clear();
    let after = ask(&browser, &[]).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // The second browser's session is its own, and lives on.
    assert_eq!(ask(&second, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_headers_count_only_from_a_trusted_proxy() {
    let h = Harness::start().await;
    let page = h.url("/app/");
    let response = ask(&h.browser(), &[("x-original-url", &page)]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "location").as_deref(),
        Some(h.url("/").as_str()),
        "no rd= from an untrusted peer"
    );
}

#[tokio::test]
async fn the_user_header_is_a_setting_and_survives_an_identity_replacement() {
    let h = Harness::start_with(|config| {
        config.forward_auth_user_header = "x-sqrl-user".parse().unwrap();
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let id = Identity::new();
    let browser = h.logged_in_browser(&id, "Browser/1").await;
    let response = ask(&browser, &[]).await;
    assert_eq!(header(&response, "remote-user"), None);
    let handle = header(&response, "x-sqrl-user").unwrap();

    // The identity replaced (SPEC 4.4: the new one, presenting the old one's
    // unlock request signature): same account, same handle.
    let replacement = Identity::new();
    let mut c = h.conversation().await;
    let reply = c.run(Request::query(&replacement).previous(&id)).await;
    assert_tif(&reply, 0x06);
    let suk = *reply.suk().expect("the old identity's SUK");
    let replace = Request::ident(&replacement)
        .previous(&id)
        .new_lock()
        .urs(&id, suk);
    assert_tif(&c.run(replace).await, 0x05);
    let after = h.logged_in_browser(&replacement, "Browser/2").await;
    assert_eq!(header(&ask(&after, &[]).await, "x-sqrl-user"), Some(handle));
}

#[tokio::test]
async fn the_login_page_refuses_return_urls_that_lead_elsewhere() {
    let h = Harness::start_with(|config| {
        config.return_domains = ReturnDomains::parse(["example.com", ".example.com"]).unwrap();
    })
    .await;
    let own = h.url("/x");
    let own_host = h.server.addr().ip().to_string();
    for bad in [
        "//evil.com".to_owned(),
        "/relative".to_owned(),
        "https://evil.com".to_owned(),
        "https://example.com.evil.com/".to_owned(),
        "https://evilexample.com/".to_owned(),
        "javascript:alert(document.cookie)".to_owned(),
        "data:text/html,hi".to_owned(),
        "https:\\\\evil.com".to_owned(),
        "https://example.com\\@evil.com/".to_owned(),
        "https://example.com@evil.com/".to_owned(),
        format!("http://{own_host}@evil.com/"),
        "https://user:pass@app.example.com/".to_owned(),
        "https://app.example.com/\r\nSet-Cookie: x=1".to_owned(),
        "https://app.exa\nmple.com/".to_owned(),
        format!("{own}\r\n"),
        format!("https://app.example.com/{}", "a".repeat(3000)),
    ] {
        let response = h.browser().get(&format!("/?rd={}", encoded(&bad))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(set_cookies(&response).is_empty(), "no attempt for {bad:?}");
        let message = response.text().await.unwrap();
        assert!(message.starts_with("rd= "), "{message}");
    }
    assert_eq!(h.in_flight().await.attempts, 0);
    for good in [
        own.clone(),
        "https://example.com/".to_owned(),
        "https://app.example.com/a?b=c#d".to_owned(),
        "http://a.b.example.com:8080/".to_owned(),
    ] {
        let response = h.browser().get(&format!("/?rd={}", encoded(&good))).await;
        assert_eq!(response.status(), StatusCode::OK, "{good}");
        let names: Vec<String> = set_cookies(&response)
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("sqrl_rd_")), "{names:?}");
    }
    // No allow-list: only the service's own host.
    let plain = Harness::start().await;
    let refused = plain
        .browser()
        .get(&format!("/?rd={}", encoded("https://example.com/")))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_login_returns_where_its_page_was_asked_to() {
    let h = Harness::start_with(behind_local_proxy).await;
    let rd = h.url("/app/page?x=1");

    // Cross-device: the page's collect goes to rd, and its cookie goes.
    let mut browser = h.browser();
    let login = format!("/?rd={}", encoded(&rd));
    let location = scan_in(&h, &mut browser, &login, &Identity::new()).await;
    assert_eq!(location, rd);
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(name, _)| name.starts_with("sqrl_rd_"))
    );
    // Signed in already, the login page sends the browser on at once.
    let again = browser.get(&format!("/?rd={}", encoded(&rd))).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&again, "location").as_deref(), Some(rd.as_str()));
    // Without rd=, to the account page as before.
    let mut plain = h.browser();
    let page = plain.open_login_page().await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &page.url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let collect = plain.pag_url(&page.nut).await;
    assert_eq!(plain.collect(&collect).await.1.as_deref(), Some("/account"));

    // Same device (CPS): the link the client hands the browser goes there too.
    let mut browser = h.browser();
    let shown = browser.get(&format!("/?rd={}", encoded(&rd))).await;
    let html = shown.text().await.unwrap();
    let link = html
        .split("id=\"link\" class=\"button\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &link);
    c.query(&id, O::CPS).await;
    let url = c.ident(&id, O::CPS, true).await.url().unwrap().to_owned();
    let (status, location) = browser.collect(&url).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(rd.as_str()));

    // After the "is this you?" step of a link confirmed from another
    // network, too.
    let mut victim = h.browser().posing_as("198.51.100.7");
    let shown = victim.get(&format!("/?rd={}", encoded(&rd))).await;
    let html = shown.text().await.unwrap();
    let link = html
        .split("id=\"link\" class=\"button\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &link).posing_as("203.0.113.9");
    c.query(&id, O::CPS | O::NOIPTEST).await;
    let url = c
        .ident(&id, O::CPS | O::NOIPTEST, true)
        .await
        .url()
        .unwrap()
        .to_owned();
    assert_eq!(
        victim.get(&url).await.status(),
        StatusCode::OK,
        "asks first"
    );
    let token = url.rsplit("token=").next().unwrap().to_owned();
    let clicked = victim
        .request(Method::POST, "/login/complete")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&clicked, "location").as_deref(), Some(rd.as_str()));
}

#[tokio::test]
async fn the_return_url_is_the_pages_own_not_the_last_requests() {
    let h = Harness::start().await;
    let rd = h.url("/app/");
    let WaitingPage {
        mut browser, page, ..
    } = h.waiting_page().await;
    // Someone who can set cookies but does not hold the page's secret
    // plants a return URL of their choosing, signed with a secret of theirs.
    let mut other = h.browser();
    let _ = other.get(&format!("/?rd={}", encoded(&rd))).await;
    let (_, signed_by_other) = other
        .cookies
        .iter()
        .find(|(name, _)| name.starts_with("sqrl_rd_"))
        .unwrap()
        .clone();
    browser
        .cookies
        .push((format!("sqrl_rd_{}", page.nut), signed_by_other));
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &page.url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    // rd= on the final request is not believed either.
    let collect = format!(
        "{}&rd={}",
        browser.pag_url(&page.nut).await,
        encoded("https://evil.example/")
    );
    let (status, location) = browser.collect(&collect).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/account"));
}

#[tokio::test]
async fn the_session_cookie_can_cover_a_parent_domain() {
    // A name under the domain, resolved to the server's address.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let origin = format!("http://login.example.test:{port}");
    let h = Harness::start_with(|config| {
        config.bind = ([127, 0, 0, 1], port).into();
        config.public_origin = Some(sqrl_server::config::PublicOrigin::parse(&origin).unwrap());
        config.cookie_domain = Some("example.test".to_owned());
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("login.example.test", h.server.addr())
        .build()
        .unwrap();
    let mut browser = Browser::new(&http, &origin);
    let shown = browser.get("/").await;
    // The page's own cookie stays with the host.
    for cookie in set_cookies(&shown) {
        assert_eq!(cookie.domain(), None, "{cookie}");
    }
    let page = browser.open_login_page().await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&http, &page.url);
    c.query(&id, NONE).await;
    c.ident(&id, NONE, true).await;
    let collect = browser.pag_url(&page.nut).await;
    let response = browser.get(&collect).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(&response);
    let session = cookies.iter().find(|c| c.name() == "sqrl_session").unwrap();
    assert_eq!(session.domain(), Some("example.test"));
    assert_eq!(session.path(), Some("/"));
    assert_eq!(session.http_only(), Some(true));
    // What another app of the domain's proxy asks with it is answered.
    assert_eq!(ask(&browser, &[]).await.status(), StatusCode::OK);
    // Logging out removes the same cookie (same Domain and Path).
    let out = browser
        .request(Method::POST, "/logout")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    let removal = set_cookies(&out)
        .into_iter()
        .find(|c| c.name() == "sqrl_session")
        .unwrap();
    assert_eq!(removal.domain(), Some("example.test"));
    assert_eq!(removal.path(), Some("/"));
    assert_eq!(removal.value(), "");
}

/// Every URL a page links to: `href`, `src` and `action` attributes, and
/// the script's `data-` URLs.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in [
        "href=\"",
        "src=\"",
        "action=\"",
        "data-link=\"",
        "data-prefix=\"",
    ] {
        for piece in html.split(attribute).skip(1) {
            found.push(piece.split('"').next().unwrap().replace("&amp;", "&"));
        }
    }
    found
}

#[tokio::test]
async fn under_a_path_prefix_nothing_escapes_it() {
    let h = Harness::start_with(|config| {
        config.path_prefix = "/auth".to_owned();
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let base = h.url("/auth");
    let qrl = base.replace("http://", "qrl://");
    let inside = |url: &str| {
        url.starts_with("/auth/")
            || url == "/auth"
            || url.starts_with(&format!("{base}/"))
            || url.starts_with(&format!("{qrl}/"))
    };

    // The login page, and everything it links to.
    let mut browser = Browser::new(&h.http, &base);
    let response = browser.get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    for cookie in set_cookies(&response) {
        assert_eq!(cookie.path(), Some("/auth/"), "{cookie}");
    }
    let html = response.text().await.unwrap();
    let mut seen = BTreeSet::new();
    let help = h.server.state().config.help_url.clone();
    for link in links(&html) {
        if link == "/auth" || link == help {
            continue; // data-prefix, and the help link off the site
        }
        assert!(inside(&link), "login page links to {link}");
        seen.insert(link);
    }
    assert!(
        seen.iter().any(|l| l.ends_with("/static/style.css")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.ends_with("/static/login.js")),
        "{seen:?}"
    );
    assert!(html.contains("data-prefix=\"/auth\""));
    // The same-device link's `can=` comes back under the prefix.
    let link = links(&html)
        .into_iter()
        .find(|l| l.contains("&can="))
        .unwrap();
    let conversation = SqrlConversation::new(&h.http, &link);
    assert_eq!(
        conversation.url.cancel_url().unwrap().as_deref(),
        Some(format!("{base}/").as_str())
    );
    // Each link the page's own files need answers, there.
    for path in ["/static/style.css", "/static/login.js"] {
        assert_eq!(browser.get(path).await.status(), StatusCode::OK, "{path}");
    }
    let script = browser.get("/static/login.js").await.text().await.unwrap();
    for call in ["fetch(\"/", "EventSource(\"/"] {
        assert!(
            !script.contains(call),
            "login.js has a root-anchored {call}"
        );
    }

    // A whole login through the prefix: the client posts to /auth/cli.sqrl,
    // the page's stream and collect are under it, the account page too.
    let page = browser.open_login_page().await;
    assert!(
        page.url.starts_with(&format!("{qrl}/cli.sqrl?nut=")),
        "{}",
        page.url
    );
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    let id = Identity::new();
    let mut c = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&c.query(&id, NONE).await, 0x04);
    assert!(
        c.post_url.starts_with(&format!("{base}/cli.sqrl?")),
        "{}",
        c.post_url
    );
    assert_tif(&c.ident(&id, NONE, true).await, 0x05);
    events.expect("scanned").await;
    let confirmed = events.expect("confirmed").await;
    let collect = confirmed.url.unwrap();
    assert!(collect.starts_with("/auth/login/collect?"), "{collect}");
    let response = browser.get(&format!("{}{collect}", h.base())).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(&response, "location").as_deref(),
        Some("/auth/account")
    );
    for cookie in set_cookies(&response) {
        let expected = if cookie.name() == "sqrl_session" {
            "/"
        } else {
            "/auth/"
        };
        assert_eq!(cookie.path(), Some(expected), "{cookie}");
    }
    let account = browser.get("/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let html = account.text().await.unwrap();
    let account_links = links(&html);
    assert!(
        account_links.iter().any(|l| l == "/auth/logout"),
        "{account_links:?}"
    );
    for link in account_links.into_iter().filter(|link| *link != help) {
        assert!(inside(&link), "account page links to {link}");
    }
    assert_eq!(ask(&browser, &[]).await.status(), StatusCode::OK);

    // Same device: the CPS url= is under the prefix.
    let mut other = Browser::new(&h.http, &base);
    let page = other.open_login_page().await;
    let mut c = SqrlConversation::new(&h.http, &page.link);
    c.query(&id, O::CPS).await;
    let url = c.ident(&id, O::CPS, false).await.url().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{base}/login/complete?token=")),
        "{url}"
    );
    assert_eq!(
        other.collect(&url).await.1.as_deref(),
        Some("/auth/account")
    );

    // Health and metrics are under it too; nothing answers outside it.
    assert_eq!(h.get("/auth/healthz").await.status(), StatusCode::OK);
    let metrics = h
        .http
        .get(h.url("/auth/metrics"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(h.get("/auth").await.status(), StatusCode::OK);
    for outside in [
        "/",
        "/healthz",
        "/metrics",
        "/static/login.js",
        "/account",
        "/forward-auth",
        "/nut.sqrl",
        "/authx/",
    ] {
        assert_eq!(
            h.get(outside).await.status(),
            StatusCode::NOT_FOUND,
            "{outside}"
        );
    }
    let stray_post = h
        .http
        .post(h.url("/cli.sqrl"))
        .header(ACCEPT, "*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(stray_post.status(), StatusCode::NOT_FOUND);
    // The forward-auth redirect leads to the prefixed login page.
    let refused = ask(&Browser::new(&h.http, &base), &[("accept", "text/html")]).await;
    assert_eq!(refused.status(), StatusCode::FOUND);
    assert_eq!(
        refused.headers().get(LOCATION).unwrap().to_str().unwrap(),
        format!("{base}/")
    );
}
