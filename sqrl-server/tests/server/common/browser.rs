//! The browser side: a client that keeps its cookies by hand and may pose as
//! another address, the login page as it shows, and its event stream.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// A browser: keeps cookies by hand, may pose as another address.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
    pub forwarded_for: Option<String>,
    pub user_agent: String,
}

/// What the login page shows.
#[derive(Debug, Clone)]
pub struct LoginPage {
    pub nut: String,
    pub url: String,
    pub link: String,
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Every cookie a response sets, as a browser parses `Set-Cookie`; one the
/// parser refuses fails the test.
pub fn set_cookies(response: &reqwest::Response) -> Vec<cookie::Cookie<'static>> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| {
            let text = value.to_str().unwrap().to_owned();
            cookie::Cookie::parse(text.clone())
                .unwrap_or_else(|error| panic!("Set-Cookie {text:?}: {error}"))
        })
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

impl Browser {
    pub fn new(http: &reqwest::Client, base: &str) -> Self {
        Self {
            http: http.clone(),
            base: base.to_owned(),
            cookies: Vec::new(),
            forwarded_for: None,
            user_agent: "TestBrowser/1.0".to_owned(),
        }
    }

    pub fn posing_as(mut self, ip: &str) -> Self {
        self.forwarded_for = Some(ip.to_owned());
        self
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for cookie in set_cookies(response) {
            self.cookies.retain(|(k, _)| k != cookie.name());
            let removed =
                cookie.value().is_empty() || cookie.max_age() == Some(cookie::time::Duration::ZERO);
            if !removed {
                self.cookies
                    .push((cookie.name().to_owned(), cookie.value().to_owned()));
            }
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .http
            .request(method, url)
            .header("user-agent", &self.user_agent);
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookie_header());
        }
        if let Some(ip) = &self.forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        request
    }

    /// Sends a request as this browser and keeps the cookies it sets.
    pub async fn fetch(&mut self, method: reqwest::Method, path: &str) -> reqwest::Response {
        let response = self.request(method, path).send().await.unwrap();
        self.remember(&response);
        response
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        self.fetch(reqwest::Method::GET, path).await
    }

    pub async fn post(&mut self, path: &str) -> reqwest::Response {
        self.fetch(reqwest::Method::POST, path).await
    }

    /// Starts an attempt through the SSP API (`/nut.sqrl`), keeping its
    /// cookie as a page that fetched its own nut would; returns the SQRL URL.
    pub async fn mint_url(&mut self) -> String {
        let response = self.get("/nut.sqrl").await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        let nut = crate::common::form_field(&text, "nut");
        format!(
            "{}/cli.sqrl?nut={nut}",
            self.base.replace("http://", "qrl://")
        )
    }

    pub async fn open_login_page(&mut self) -> LoginPage {
        let response = self.get("/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        LoginPage {
            nut: between(&html, "data-nut=\"", "\"").to_owned(),
            url: unescape(between(&html, "<code id=\"url\">", "</code>")),
            link: unescape(between(&html, "id=\"link\" class=\"button\" href=\"", "\"")),
        }
    }

    /// Opens the page's event stream.
    pub async fn events(&self, nut: &str) -> EventStream {
        let response = self
            .request(reqwest::Method::GET, &format!("/login/events?nut={nut}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "event stream refused");
        EventStream {
            upstream: super::upstream(response.headers()),
            response,
            buffer: String::new(),
        }
    }

    /// Polls `/pag.sqrl` for `nut` with this browser's cookie (SSP API).
    pub async fn pag(&self, nut: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, &format!("/pag.sqrl?nut={nut}"))
            .send()
            .await
            .unwrap()
    }

    /// What `/pag.sqrl` tells this browser about `nut`: the URL to collect
    /// the login at once confirmed, empty before.
    pub async fn pag_url(&self, nut: &str) -> String {
        self.pag(nut).await.text().await.unwrap()
    }

    /// `/pag.sqrl` as JSON: `{"url", "state"}`, with the HTTP status.
    pub async fn pag_json(&self, nut: &str) -> (StatusCode, serde_json::Value) {
        let response = self
            .request(reqwest::Method::GET, &format!("/pag.sqrl?nut={nut}"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Follows a single-use login link; returns the status and Location.
    pub async fn collect(&mut self, url: &str) -> (StatusCode, Option<String>) {
        let response = self.get(url).await;
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> String {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no cookie {name}"))
            .1
            .clone()
    }
}

/// A browser showing the login page, with its event stream open and past
/// `pending`.
pub struct WaitingPage {
    pub browser: Browser,
    pub page: LoginPage,
    pub events: EventStream,
}

/// A Server-Sent Events reader.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
    /// Which instance serves the stream, behind a proxy that says so
    /// (`X-Upstream`).
    pub upstream: Option<String>,
}

/// One `{"state", "url", "check"}` event.
#[derive(Debug, Clone)]
pub struct PageEvent {
    pub state: String,
    pub url: Option<String>,
    /// The fingerprint the page shows before it signs in, when the
    /// confirming device was on another network.
    pub check: Option<String>,
    pub at: Instant,
}

impl EventStream {
    /// The next data event, or `None` at the end of the stream or after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<PageEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                let data: String = frame
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let value: serde_json::Value = serde_json::from_str(&data).unwrap();
                return Some(PageEvent {
                    state: value["state"].as_str().unwrap().to_owned(),
                    url: value["url"].as_str().map(str::to_owned),
                    check: value["check"].as_str().map(str::to_owned),
                    at: Instant::now(),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                // Ended, or cut off (its server died): a browser's
                // EventSource sees both as the end of this stream.
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn expect(&mut self, state: &str) -> PageEvent {
        let event = self
            .next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no event, expected {state}"));
        assert_eq!(event.state, state, "event {event:?}");
        event
    }
}
