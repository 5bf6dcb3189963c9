//! Connection and event-stream limits, over real sockets on loopback with
//! short (1 s) timeouts: sockets that never finish a request are closed,
//! one address cannot take every connection or event stream, and another
//! address still logs in while one floods.
//!
//! Client sockets bound to 127.0.0.2, 127.0.0.3... act as other client
//! addresses (Linux routes all of 127.0.0.0/8 to the loopback interface).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, StatusCode};
use sqrl_server::config::{Config, OperatorToken};
use sqrl_server::net::IpNet;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The short timeout the servers here use.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How long a test waits for something that should happen at once (or
/// after [`TIMEOUT`]) before it fails.
const PATIENCE: Duration = Duration::from_secs(4);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn short_timeouts(config: &mut Config) {
    config.limits.header_read_timeout = TIMEOUT;
    config.limits.tls_handshake_timeout = TIMEOUT;
}

/// A GET request for `path` as a raw HTTP/1.1 request.
fn get(server: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {server}\r\n\r\n")
}

/// Reads one response with a `Content-Length` body from `stream`.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed mid-response: {text:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

/// Asserts the server closes `stream` after about [`TIMEOUT`], not at once
/// and not never.
async fn assert_closed_by_timeout(stream: &mut TcpStream, since: Instant, what: &str) {
    let (_, at) = read_until_closed(stream, PATIENCE)
        .await
        .unwrap_or_else(|| panic!("{what}: still open after {PATIENCE:?}"));
    let after = at - since;
    assert!(
        after >= TIMEOUT.mul_f64(0.8),
        "{what}: closed after {after:?}, before the timeout"
    );
}

/// Asserts a connection just opened from `from` is answered with a 503
/// naming `reason`, and closed.
async fn assert_refused(server: SocketAddr, from: &str, reason: &str) {
    let mut stream = connect_from(ip(from), server).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("a refused connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
    assert!(answer.contains("\r\nRetry-After: "), "{answer:?}");
    assert!(answer.ends_with(reason), "{answer:?}");
}

/// Opens `n` connections from `from` and checks that each one is held
/// (a request on the last one is answered).
async fn hold(server: SocketAddr, from: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(connect_from(ip(from), server).await.unwrap());
    }
    let last = held.last_mut().unwrap();
    last.write_all(get(server, "/healthz").as_bytes())
        .await
        .unwrap();
    let response = read_response(last).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    held
}

/// The value of an unlabelled metric (or a labelled one, name and labels as
/// exposed).
fn metric(h: &Harness, name: &str) -> f64 {
    let text = h.server.state().metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
        .unwrap_or(0.0)
}

// --- sockets that never finish a request --------------------------------

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let h = Harness::start_with(short_timeouts).await;
    let since = Instant::now();
    let mut stream = connect_from(ip("127.0.0.1"), h.server.addr())
        .await
        .unwrap();
    assert_closed_by_timeout(&mut stream, since, "silent connection").await;
    eventually("the slot is given back", PATIENCE, || {
        metric(&h, "sqrl_open_connections") == 0.0
    })
    .await;
}

#[tokio::test]
async fn a_slowloris_trickling_header_lines_is_closed() {
    let h = Harness::start_with(short_timeouts).await;
    let server = h.server.addr();
    let since = Instant::now();
    let mut stream = connect_from(ip("127.0.0.1"), server).await.unwrap();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {server}\r\n").as_bytes())
        .await
        .unwrap();
    // A header line every 200 ms: bytes keep coming, the header never ends.
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for line in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let header = format!("X-Slow-{line}: {line}\r\n");
            if writer.write_all(header.as_bytes()).await.is_err() {
                return line;
            }
        }
        unreachable!()
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the slowloris connection is closed");
    trickle.abort();
    let after = closed - since;
    assert!(after >= TIMEOUT.mul_f64(0.8), "closed after {after:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let h = Harness::start_with(short_timeouts).await;
    let server = h.server.addr();
    let mut stream = connect_from(ip("127.0.0.1"), server).await.unwrap();
    // Kept alive between requests...
    for _ in 0..2 {
        stream
            .write_all(get(server, "/healthz").as_bytes())
            .await
            .unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
        tokio::time::sleep(TIMEOUT / 2).await;
    }
    stream
        .write_all(get(server, "/healthz").as_bytes())
        .await
        .unwrap();
    read_response(&mut stream).await;
    // ... but not idle for longer than the timeout.
    let since = Instant::now();
    assert_closed_by_timeout(&mut stream, since, "idle keep-alive connection").await;
}

/// Slow-body exhaustion: a client sends a request's head and then withholds
/// its body, holding a handler (and a connection slot) for as long as it
/// likes. Past the request timeout it gets a 408. The live event stream,
/// whose reply is meant to last, is not cut by that deadline.
#[tokio::test]
async fn a_body_that_never_comes_times_out_but_the_event_stream_lives_on() {
    let h = Harness::start_with(|config| {
        config.request_timeout = TIMEOUT;
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let WaitingPage {
        page, mut events, ..
    } = h.waiting_page().await;

    let server = h.server.addr();
    let mut stalled = connect_from(ip("127.0.0.1"), server).await.unwrap();
    let head = format!(
        "POST /cli.sqrl?nut={} HTTP/1.1\r\nHost: {server}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 400\r\n\r\nclient=",
        page.nut
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let since = Instant::now();
    // Fails with "a response in time" when nothing bounds the wait.
    let response = read_response(&mut stalled).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    let after = since.elapsed();
    assert!(after >= TIMEOUT.mul_f64(0.8), "answered after {after:?}");

    // The page's stream, opened before the stalled request and now older
    // than the deadline, still carries the next state.
    tokio::time::sleep(TIMEOUT).await;
    let mut conversation = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&conversation.query(&Identity::new(), NONE).await, 0x04);
    events.expect("scanned").await;
    let metrics = text(h.http.get(h.url("/metrics")).bearer_auth(OPERATOR_TOKEN)).await;
    assert!(
        metrics.contains("sqrl_requests_refused_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_prior_knowledge_is_refused_on_the_plain_port() {
    let h = Harness::start_with(short_timeouts).await;
    let mut stream = connect_from(ip("127.0.0.1"), h.server.addr())
        .await
        .unwrap();
    // The client preface and an empty SETTINGS frame.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
    stream.write_all(&preface).await.unwrap();
    let (answer, at) = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("the connection is closed");
    // An HTTP/2 server would answer with its own SETTINGS frame (type 4).
    assert!(
        answer.len() < 9 || answer[3] != 0x04,
        "answered as HTTP/2: {answer:?}"
    );
    assert!(
        at.elapsed() < PATIENCE,
        "closed at once, not after a timeout"
    );
}

#[tokio::test]
async fn shutdown_ends_streams_closes_idle_connections_and_stops_accepting() {
    // The default (10 s) header timeout: only the shutdown closes these soon.
    let h = Harness::start().await;
    let server = h.server.addr();
    let WaitingPage { mut events, .. } = h.waiting_page().await;
    let mut kept_alive = hold(server, "127.0.0.2", 1).await;
    let mut silent = connect_from(ip("127.0.0.3"), server).await.unwrap();
    let Harness {
        server: running,
        dir: _dir,
        ..
    } = h;
    let started = Instant::now();
    running.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for nothing",
        started.elapsed()
    );
    assert!(events.next(PATIENCE).await.is_none(), "the stream ended");
    for (stream, what) in [(&mut kept_alive[0], "kept-alive"), (&mut silent, "silent")] {
        read_until_closed(stream, Duration::from_millis(500))
            .await
            .unwrap_or_else(|| panic!("the {what} connection is closed"));
    }
    assert!(
        connect_from(ip("127.0.0.1"), server).await.is_err(),
        "no longer accepting"
    );
}

// --- connection caps ------------------------------------------------------

#[tokio::test]
async fn one_address_over_its_cap_gets_503_while_another_is_served() {
    let h = Harness::start_with(|config| {
        config.limits.max_connections_per_address = 5;
    })
    .await;
    let server = h.server.addr();
    let _held = hold(server, "127.0.0.2", 5).await;
    assert_refused(
        server,
        "127.0.0.2",
        "too many open connections from this address\n",
    )
    .await;
    // An IPv4 address is its own key: 127.0.0.1 is not 127.0.0.2.
    let response = h.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        metric(&h, "sqrl_refused_connections_total{reason=\"per-address\"}"),
        1.0
    );
    assert!(metric(&h, "sqrl_open_connections") >= 5.0);
}

#[tokio::test]
async fn the_total_cap_refuses_every_address_until_a_connection_closes() {
    let h = Harness::start_with(|config| {
        config.limits.max_connections = 4;
        config.limits.max_connections_per_address = 4;
    })
    .await;
    let server = h.server.addr();
    let mut held = hold(server, "127.0.0.2", 2).await;
    let _more = hold(server, "127.0.0.3", 2).await;
    assert_refused(
        server,
        "127.0.0.1",
        "too many open connections, try again shortly\n",
    )
    .await;
    assert_eq!(
        metric(&h, "sqrl_refused_connections_total{reason=\"total\"}"),
        1.0
    );
    // One closes: room again.
    held.pop();
    eventually("a closed connection gives its slot back", PATIENCE, || {
        metric(&h, "sqrl_open_connections") == 3.0
    })
    .await;
    let _again = hold(server, "127.0.0.1", 1).await;
}

#[tokio::test]
async fn trusted_proxies_are_exempt_from_the_per_address_cap_only() {
    let h = Harness::start_with(|config| {
        config.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
        config.limits.max_connections = 8;
        config.limits.max_connections_per_address = 2;
    })
    .await;
    let server = h.server.addr();
    // The proxy carries many users: more than the per-address cap...
    let _proxy = hold(server, "127.0.0.1", 6).await;
    // ... while anyone else keeps to it...
    let _other = hold(server, "127.0.0.2", 2).await;
    assert_refused(
        server,
        "127.0.0.2",
        "too many open connections from this address\n",
    )
    .await;
    // ... and the proxy's connections count toward the total.
    assert_refused(
        server,
        "127.0.0.1",
        "too many open connections, try again shortly\n",
    )
    .await;
}

// --- TLS ------------------------------------------------------------------

/// A server with built-in TLS (a self-signed certificate for 127.0.0.1) and
/// a client connector that trusts it and offers h2 as well as HTTP/1.1.
async fn tls_server() -> (Harness, tempfile::TempDir, tokio_rustls::TlsConnector) {
    let dir = tempfile::tempdir().unwrap();
    let (tls, certified) = self_signed_tls(dir.path());
    let h = Harness::start_with(|config| {
        short_timeouts(config);
        config.tls = Some(tls);
    })
    .await;
    assert!(h.base().starts_with("https://"), "{}", h.base());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (h, dir, tokio_rustls::TlsConnector::from(Arc::new(client)))
}

#[tokio::test]
async fn tls_serves_http1_only_and_closes_silent_connections() {
    let (h, _dir, connector) = tls_server().await;
    let server = h.server.addr();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = connect_from(ip("127.0.0.1"), server).await.unwrap();
    let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "h2 is not offered"
    );
    tls.write_all(get(server, "/healthz").as_bytes())
        .await
        .unwrap();
    let response = read_response(&mut tls).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");

    // A handshake that never starts is cut off.
    let since = Instant::now();
    let mut silent = connect_from(ip("127.0.0.1"), server).await.unwrap();
    assert_closed_by_timeout(&mut silent, since, "silent TLS connection").await;
    // So is a finished handshake followed by silence (the header timeout).
    let tcp = connect_from(ip("127.0.0.1"), server).await.unwrap();
    let since = Instant::now();
    let mut quiet = connector.connect(name, tcp).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(PATIENCE, quiet.read(&mut buf))
        .await
        .expect("closed after the handshake");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(since.elapsed() >= TIMEOUT.mul_f64(0.8));
    assert_eq!(
        metric(
            &h,
            "sqrl_refused_connections_total{reason=\"tls-handshake\"}"
        ),
        1.0
    );
}

// --- event streams --------------------------------------------------------

/// A reqwest client whose connections come from `from`.
fn http_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip(from))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A browser (on `http`) showing a login page.
async fn page_on(h: &Harness, http: &reqwest::Client) -> (Browser, LoginPage) {
    let mut browser = Browser::new(http, &h.base());
    let page = browser.open_login_page().await;
    (browser, page)
}

/// The status and `Retry-After` of a refused event stream, and its text.
async fn refused_stream(browser: &Browser, nut: &str) -> (StatusCode, String) {
    let response = browser
        .request(Method::GET, &format!("/login/events?nut={nut}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        response.headers().contains_key("retry-after"),
        "{status}: no Retry-After"
    );
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_fourth_stream_of_an_attempt_closes_the_oldest() {
    let h = Harness::start().await;
    let (browser, page) = page_on(&h, &h.http).await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut events = browser.events(&page.nut).await;
        events.expect("pending").await;
        streams.push(events);
    }
    // The oldest ends (soon, not by the reader's timeout).
    let started = Instant::now();
    assert!(streams[0].next(PATIENCE).await.is_none());
    assert!(started.elapsed() < PATIENCE / 2, "the oldest stream ended");
    assert_eq!(h.server.state().event_streams.open_count(), 3);
    assert_eq!(metric(&h, "sqrl_replaced_event_streams_total"), 1.0);
    // The other three still follow the login.
    let phone = Identity::new();
    let mut conversation = SqrlConversation::new(&h.http, &page.url);
    assert_tif(&conversation.query(&phone, NONE).await, 0x04);
    for events in &mut streams[1..] {
        events.expect("scanned").await;
    }
}

#[tokio::test]
async fn one_address_over_its_stream_cap_gets_429_while_another_is_served() {
    let h = Harness::start_with(|config| {
        config.limits.max_event_streams_per_address = 2;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let (browser, page) = page_on(&h, &h.http).await;
        open.push(browser.events(&page.nut).await);
    }
    let (browser, page) = page_on(&h, &h.http).await;
    let (status, text) = refused_stream(&browser, &page.nut).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(text.contains("from this address"), "{text}");
    // Another address is served.
    let (other, page) = page_on(&h, &http_from("127.0.0.2")).await;
    other.events(&page.nut).await.expect("pending").await;
    assert_eq!(
        metric(
            &h,
            "sqrl_refused_event_streams_total{reason=\"per-address\"}"
        ),
        1.0
    );
    assert_eq!(metric(&h, "sqrl_open_event_streams"), 3.0);
}

#[tokio::test]
async fn the_global_stream_cap_answers_503() {
    let h = Harness::start_with(|config| {
        config.limits.max_event_streams = 2;
        config.limits.max_event_streams_per_address = 2;
    })
    .await;
    let mut open = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2"] {
        let (browser, page) = page_on(&h, &http_from(from)).await;
        open.push(browser.events(&page.nut).await);
    }
    let (browser, page) = page_on(&h, &http_from("127.0.0.3")).await;
    let (status, text) = refused_stream(&browser, &page.nut).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("too many open event streams"), "{text}");
    assert_eq!(
        metric(&h, "sqrl_refused_event_streams_total{reason=\"total\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_stream_whose_client_goes_away_gives_its_slot_back() {
    let h = Harness::start_with(|config| {
        config.limits.max_event_streams_per_address = 1;
    })
    .await;
    let (browser, page) = page_on(&h, &h.http).await;
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    let (_, text) = refused_stream(&browser, &page.nut).await;
    assert!(text.contains("from this address"), "{text}");
    // The client hangs up without the stream having ended.
    drop(events);
    eventually("the slot is given back", PATIENCE, || {
        h.server.state().event_streams.open_count() == 0
    })
    .await;
    assert_eq!(metric(&h, "sqrl_open_event_streams"), 0.0);
    browser.events(&page.nut).await.expect("pending").await;
}

// --- a flood from one address ---------------------------------------------

#[tokio::test]
async fn another_address_logs_in_while_one_floods_with_idle_and_slow_connections() {
    const CAP: usize = 50;
    let h = Harness::start_with(|config| {
        short_timeouts(config);
        config.limits.max_connections_per_address = CAP;
    })
    .await;
    let server = h.server.addr();
    let flood = Flood::start(
        server,
        &FloodPlan {
            from: ip("127.0.0.2"),
            idle: 150,
            slow: 150,
            trickle: Duration::from_millis(200),
            reconnect_after: Duration::from_millis(200),
        },
    );
    eventually("the flood is up", PATIENCE, || {
        flood.snapshot().opened >= 300
    })
    .await;

    // Meanwhile, from 127.0.0.1: health checks and a whole login, each in time.
    let timed = Instant::now();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(h.get("/healthz").await.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1), "/healthz slow");
    }
    let phone = Identity::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        login_through_the_page(&h.http, &h.base(), &phone),
    )
    .await
    .expect("a login in time");
    // Long enough for the slow connections' header timeout to have struck.
    tokio::time::sleep((TIMEOUT + Duration::from_millis(500)).saturating_sub(timed.elapsed()))
        .await;

    let seen = flood.snapshot();
    let refused = metric(&h, "sqrl_refused_connections_total{reason=\"per-address\"}");
    let open = metric(&h, "sqrl_open_connections");
    flood.stop().await;
    assert!(
        seen.refused > 0 && refused >= seen.refused as f64,
        "{seen:?}, server refused {refused}"
    );
    assert!(
        seen.closed > 0,
        "slow and idle connections timed out: {seen:?}"
    );
    // The flood never held more than its share (the rest is 127.0.0.1's).
    assert!(open <= (CAP + 5) as f64, "{open} open");
}
