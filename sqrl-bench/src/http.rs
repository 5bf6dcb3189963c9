//! HTTP as the two devices of a login use it: a browser that keeps its
//! cookies and reads an event stream, and a phone that POSTs SQRL requests.
//!
//! Each virtual browser and phone holds its own keep-alive HTTP/1.1
//! connection, as separate devices would. They are hyper's connection-level
//! clients: no pool, no redirect logic, no URL parsing beyond the request
//! target. The bench shares the machine with the server it measures, so
//! every microsecond it spends per request is one the server's numbers do
//! not get to keep, and it must outrun the fastest server it is pointed at.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{
    ACCEPT, CONTENT_TYPE, COOKIE, HOST, HeaderMap, HeaderValue, LOCATION, SET_COOKIE, USER_AGENT,
};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::outcome::ErrorKind;

/// The User-Agent of the bench's requests, so server logs can tell its
/// traffic apart.
const AGENT: &str = concat!("sqrl-bench/", env!("CARGO_PKG_VERSION"));

/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a request goes: the authority to connect to (and name in `Host`)
/// and the origin-form target (path and query).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

impl Target {
    /// Reads an absolute `http://` URL. `https://` and others are refused:
    /// the bench speaks plain HTTP only.
    fn parse(url: &str) -> Result<Self, ErrorKind> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ErrorKind::protocol(format!("not a URL: {url:?}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(ErrorKind::protocol(format!(
                "not a plain-HTTP URL (the bench speaks plain HTTP only): {url:?}"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ErrorKind::protocol(format!("URL without a host: {url:?}")))?;
        Ok(Self {
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned()),
        })
    }

    /// `host:port` for the socket: the authority, with port 80 when it names none.
    fn address(&self) -> String {
        let has_port =
            self.authority.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }) && !self.authority.ends_with(']');
        if has_port {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        }
    }
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

/// A transport failure as the report counts it.
fn transport(error: &hyper::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::transport(error)
    }
}

/// Opens a keep-alive HTTP/1.1 connection to `target`'s authority; its
/// driver runs as a task of its own until either side closes it.
async fn open(target: &Target) -> Result<SendRequest<Full<Bytes>>, ErrorKind> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.address()))
        .await
        .map_err(|_| ErrorKind::Connect)?
        .map_err(|_| ErrorKind::Connect)?;
    // Requests are small and each waits for its answer: no Nagle delay.
    stream.set_nodelay(true).map_err(|_| ErrorKind::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| transport(&error))?;
    tokio::spawn(async move {
        // A broken connection shows as the next request's error.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request to `target` with the bench's fixed headers and `headers`.
fn request(
    method: Method,
    target: &Target,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ErrorKind> {
    let mut builder = Request::builder()
        .method(method)
        .uri(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(USER_AGENT, AGENT);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| ErrorKind::protocol(format!("cannot build the request: {e}")))
}

/// One device's connection: opened on first use, kept alive between
/// requests, and opened again when the server closed it, a request failed
/// half-way, or a request names another authority.
#[derive(Debug, Default)]
pub struct Connection {
    open: Option<(String, SendRequest<Full<Bytes>>)>,
}

impl Connection {
    /// A connection that opens on its first request.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sender ready for a request to `target`: the open connection when
    /// it goes there and is still usable, else a new one.
    async fn ready(&mut self, target: &Target) -> Result<&mut SendRequest<Full<Bytes>>, ErrorKind> {
        let kept = match self.open.take() {
            Some((authority, mut sender)) if authority == target.authority => {
                sender.ready().await.ok().map(|()| (authority, sender))
            }
            _ => None,
        };
        let usable = match kept {
            Some(kept) => kept,
            None => (target.authority.clone(), open(target).await?),
        };
        Ok(&mut self.open.insert(usable).1)
    }

    /// Sends `request` and reads its whole answer within `timeout`. After a
    /// failure the connection is dropped: its state is unknown.
    async fn exchange(
        &mut self,
        target: &Target,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(Reply, HeaderMap), ErrorKind> {
        let exchange = async {
            let sender = self.ready(target).await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| transport(&error))?;
            read(response).await
        };
        let outcome = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        if outcome.is_err() {
            self.open = None;
        }
        outcome
    }
}

async fn read(response: Response<Incoming>) -> Result<(Reply, HeaderMap), ErrorKind> {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|error| transport(&error))?
        .to_bytes();
    let location = parts
        .headers
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let reply = Reply {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        location,
    };
    Ok((reply, parts.headers))
}

/// The `name=value` pairs of every `Set-Cookie` header; an empty value or
/// `Max-Age=0` deletes (value `None` is not needed: deletion is an empty
/// value here).
fn set_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
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

/// The browser of one login loop: its own connection and a cookie jar that
/// is emptied before each login (each login is a new visitor; a browser
/// holding a session would be sent past the login page). The page flow's
/// event stream holds a second connection of its own while the page
/// collects its login on this one.
#[derive(Debug)]
pub struct Browser {
    connection: Connection,
    cookies: Vec<(String, String)>,
    timeout: Duration,
}

impl Browser {
    /// A browser whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            connection: Connection::new(),
            cookies: Vec::new(),
            timeout,
        }
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

    fn get_request(
        &self,
        target: &Target,
        headers: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ErrorKind> {
        let mut request = request(Method::GET, target, headers, Bytes::new())?;
        if let Some(cookies) = self.cookie_header() {
            let value = HeaderValue::from_str(&cookies)
                .map_err(|_| ErrorKind::protocol("a cookie the site set cannot be sent back"))?;
            request.headers_mut().insert(COOKIE, value);
        }
        Ok(request)
    }

    /// GETs `url` with this browser's cookies and `headers`, keeps the
    /// cookies the answer sets, and returns it with how long it took.
    pub async fn get(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Reply, Duration), ErrorKind> {
        let target = Target::parse(url)?;
        let request = self.get_request(&target, headers)?;
        let started = Instant::now();
        let (reply, headers) = self
            .connection
            .exchange(&target, request, self.timeout)
            .await?;
        let took = started.elapsed();
        self.remember(set_cookies(&headers));
        Ok((reply, took))
    }

    /// Opens a Server-Sent Events stream at `url` on a connection of its
    /// own. The stream has no overall timeout (it stays open for the whole
    /// login); each wait for an event has its own deadline.
    pub async fn events(&self, url: &str) -> Result<EventStream, (ErrorKind, Option<String>)> {
        let target = Target::parse(url).map_err(|kind| (kind, None))?;
        let request = self
            .get_request(&target, &[("accept", "text/event-stream")])
            .map_err(|kind| (kind, None))?;
        let opening = async {
            let mut sender = open(&target).await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| transport(&error))?;
            Ok::<_, ErrorKind>((sender, response))
        };
        let (sender, response) = tokio::time::timeout(self.timeout, opening)
            .await
            .map_err(|_| (ErrorKind::Timeout, None))?
            .map_err(|kind| (kind, None))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = tokio::time::timeout(self.timeout, read(response))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|(reply, _)| reply.body);
            return Err((ErrorKind::HttpStatus(status), body));
        }
        Ok(EventStream {
            _connection: sender,
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }
}

/// A phone's HTTP side: its connection and request timeout.
#[derive(Debug)]
pub struct PhoneLink {
    connection: Connection,
    /// How long one request may take.
    timeout: Duration,
}

impl PhoneLink {
    /// A phone whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            connection: Connection::new(),
            timeout,
        }
    }

    /// POSTs a SQRL request body as the phone does and returns the answer
    /// with how long it took (from sending to holding the whole body).
    pub async fn post_form(
        &mut self,
        url: &str,
        body: String,
    ) -> Result<(Reply, Duration), ErrorKind> {
        let target = Target::parse(url)?;
        let mut request = request(Method::POST, &target, &[], Bytes::from(body))?;
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(sqrl_core::client::OutgoingRequest::CONTENT_TYPE),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let started = Instant::now();
        let (reply, _) = self
            .connection
            .exchange(&target, request, self.timeout)
            .await?;
        Ok((reply, started.elapsed()))
    }
}

/// Whether anything answers HTTP at `url` within `timeout`: `Err` only
/// when the connection is refused or nothing answers in time. Any answer,
/// even broken HTTP, is a server to measure.
pub async fn reachable(url: &str, timeout: Duration) -> Result<(), ErrorKind> {
    let target = Target::parse(url)?;
    let request = request(Method::GET, &target, &[], Bytes::new())?;
    match Connection::new().exchange(&target, request, timeout).await {
        Err(kind @ (ErrorKind::Connect | ErrorKind::Timeout)) => Err(kind),
        _ => Ok(()),
    }
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
    /// Keeps the stream's connection open for as long as it is read.
    _connection: SendRequest<Full<Bytes>>,
    body: Incoming,
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
            let frame = tokio::time::timeout(wait, self.body.frame())
                .await
                .map_err(|_| ErrorKind::Timeout)?;
            match frame {
                Some(Ok(frame)) => {
                    // Trailers carry no events.
                    if let Some(bytes) = frame.data_ref() {
                        self.buffer
                            .extend(bytes.iter().copied().filter(|byte| *byte != b'\r'));
                    }
                }
                Some(Err(error)) => return Err(transport(&error)),
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
        let mut headers = HeaderMap::new();
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
    fn reads_request_targets() {
        let target = Target::parse("http://127.0.0.1:8080/auth/cli.sqrl?nut=x&can=y").unwrap();
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.path, "/auth/cli.sqrl?nut=x&can=y");
        assert_eq!(target.address(), "127.0.0.1:8080");
        let bare = Target::parse("http://example.com").unwrap();
        assert_eq!(bare.path, "/");
        assert_eq!(bare.address(), "example.com:80");
        assert_eq!(
            Target::parse("http://[::1]:9/").unwrap().address(),
            "[::1]:9"
        );
        assert_eq!(
            Target::parse("http://[::1]/").unwrap().address(),
            "[::1]:80"
        );
        assert!(Target::parse("https://example.com/").is_err());
        assert!(Target::parse("/relative").is_err());
        assert!(Target::parse("not a url").is_err());
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
