//! HTTP as the two devices of a login use it: a browser that keeps its
//! cookies and reads an event stream, and a phone that POSTs SQRL requests.
//! Each virtual browser and phone has its own keep-alive client, so every
//! login loop holds its own connections, as separate devices would.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

use crate::outcome::ErrorKind;

/// The User-Agent of the bench's requests, so server logs can tell its
/// traffic apart.
const USER_AGENT: &str = concat!("sqrl-bench/", env!("CARGO_PKG_VERSION"));

/// A keep-alive HTTP/1.1 client holding at most `connections` idle
/// connections. Redirects are not followed: a login's redirect is a result
/// to check, not a detour.
pub fn client(connections: usize) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text (lossy: a bad byte is an error to report, not a panic).
    pub body: String,
    /// The `Location` header, if any.
    pub location: Option<String>,
}

async fn read(response: reqwest::Response) -> Result<(Reply, Vec<(String, String)>), ErrorKind> {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let cookies = set_cookies(response.headers());
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ErrorKind::from_http(&e))?;
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Ok((
        Reply {
            status,
            body,
            location,
        },
        cookies,
    ))
}

/// The `name=value` pairs of every `Set-Cookie` header; an empty value or
/// `Max-Age=0` deletes (value `None` is not needed: deletion is an empty
/// value here).
fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|text| {
            let pair = text.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            let deleted = text
                .split(';')
                .any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
            let value = if deleted { "" } else { value.trim() };
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The browser of one login loop: its own connections and a cookie jar that
/// is emptied before each login (each login is a new visitor; a browser
/// holding a session would be sent past the login page).
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
    timeout: Duration,
}

impl Browser {
    /// A browser whose requests give up after `timeout`. It keeps two
    /// connections: the page flow's event stream holds one while the page
    /// collects its login on the other.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: client(2)?,
            cookies: Vec::new(),
            timeout,
        })
    }

    /// Forgets every cookie: the next login is a new visitor.
    pub fn forget(&mut self) {
        self.cookies.clear();
    }

    fn cookie_header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(
            self.cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn remember(&mut self, cookies: Vec<(String, String)>) {
        for (name, value) in cookies {
            self.cookies.retain(|(kept, _)| *kept != name);
            if !value.is_empty() {
                self.cookies.push((name, value));
            }
        }
    }

    fn request(&self, url: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self.http.get(url);
        if let Some(cookies) = self.cookie_header() {
            request = request.header(COOKIE, cookies);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    }

    /// GETs `url` with this browser's cookies and `headers`, keeps the
    /// cookies the answer sets, and returns it with how long it took.
    pub async fn get(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Reply, Duration), ErrorKind> {
        let started = Instant::now();
        let response = self
            .request(url, headers)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ErrorKind::from_http(&e))?;
        let (reply, cookies) = read(response).await?;
        let took = started.elapsed();
        self.remember(cookies);
        Ok((reply, took))
    }

    /// Opens a Server-Sent Events stream at `url`. The stream has no overall
    /// timeout (it stays open for the whole login); each wait for an event
    /// has its own deadline.
    pub async fn events(&self, url: &str) -> Result<EventStream, (ErrorKind, Option<String>)> {
        let request = self.request(url, &[("accept", "text/event-stream")]);
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| (ErrorKind::Timeout, None))?
            .map_err(|e| (ErrorKind::from_http(&e), None))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = tokio::time::timeout(self.timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok);
            return Err((ErrorKind::HttpStatus(status), body));
        }
        Ok(EventStream {
            response,
            buffer: Vec::new(),
        })
    }
}

/// POSTs a SQRL request body as the phone does and returns the answer with
/// how long it took (from sending to holding the whole body).
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    body: String,
    timeout: Duration,
) -> Result<(Reply, Duration), ErrorKind> {
    let started = Instant::now();
    let response = http
        .post(url)
        .header(
            CONTENT_TYPE,
            sqrl_core::client::OutgoingRequest::CONTENT_TYPE,
        )
        .header(ACCEPT, "*/*")
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ErrorKind::from_http(&e))?;
    let (reply, _) = read(response).await?;
    Ok((reply, started.elapsed()))
}

/// One Server-Sent Event of our login page: `{"state", "url", ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEvent {
    /// `pending`, `scanned`, `confirmed`, `logged-in`, `expired`, ...
    pub state: String,
    /// The URL to collect the login at (with `confirmed`).
    pub url: Option<String>,
    /// When the event was read.
    pub at: Instant,
}

/// A Server-Sent Events reader over a response body.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    /// Bytes read and not yet split into events (carriage returns dropped,
    /// so `\r\n` and `\n` line ends read alike).
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next data event, waiting until `deadline` at most.
    pub async fn next(&mut self, deadline: Instant) -> Result<PageEvent, ErrorKind> {
        loop {
            if let Some(event) = self.take_event()? {
                return Ok(event);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(wait, self.response.chunk())
                .await
                .map_err(|_| ErrorKind::Timeout)?
                .map_err(|e| ErrorKind::from_http(&e))?;
            match chunk {
                Some(bytes) => self
                    .buffer
                    .extend(bytes.iter().copied().filter(|byte| *byte != b'\r')),
                None => return Err(ErrorKind::protocol("event stream ended")),
            }
        }
    }

    /// Splits the first complete event off the buffer; comments and
    /// keep-alives are skipped.
    fn take_event(&mut self) -> Result<Option<PageEvent>, ErrorKind> {
        while let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
            let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let data: String = frame
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            return parse_event(&data).map(Some);
        }
        Ok(None)
    }
}

fn parse_event(data: &str) -> Result<PageEvent, ErrorKind> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|_| ErrorKind::protocol("event data is not JSON"))?;
    let state = value
        .get("state")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ErrorKind::protocol("event without a state"))?;
    Ok(PageEvent {
        state: state.to_owned(),
        url: value
            .get("url")
            .and_then(serde_json::Value::as_str)
            .filter(|url| !url.is_empty())
            .map(str::to_owned),
        at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_their_deletion() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(SET_COOKIE, "a=1; Path=/; HttpOnly".parse().unwrap());
        headers.append(SET_COOKIE, "b=; Path=/; Max-Age=0".parse().unwrap());
        headers.append(SET_COOKIE, "c=3; max-age=0".parse().unwrap());
        assert_eq!(
            set_cookies(&headers),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn parses_page_events() {
        let event = parse_event(r#"{"state":"confirmed","url":"/login/collect?nut=x"}"#).unwrap();
        assert_eq!(event.state, "confirmed");
        assert_eq!(event.url.as_deref(), Some("/login/collect?nut=x"));
        let pending = parse_event(r#"{"state":"pending","url":null}"#).unwrap();
        assert_eq!(pending.url, None);
        assert!(parse_event("nope").is_err());
        assert!(parse_event("{}").is_err());
    }
}
