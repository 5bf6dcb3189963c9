//! Load on the service from outside: raw sockets from a chosen loopback
//! address, a flood of connections that never finish a request, and one
//! whole login to measure beside it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::{Browser, Identity, NONE, SqrlConversation, assert_tif};

/// A TCP connection to `server` from the local address `from` (any of
/// 127.0.0.0/8 on Linux: each acts as another client address).
pub async fn connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// Everything the server sends until it closes the connection, and when it
/// closed; `None` if it is still open after `within`. A reset counts as closed.
pub async fn read_until_closed(
    stream: &mut TcpStream,
    within: Duration,
) -> Option<(Vec<u8>, Instant)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((received, Instant::now())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// One whole login as a visitor and a phone do it: the browser loads the
/// login page and opens its event stream, the phone sends `query` then
/// `ident` (a new identity: suk/vuk), the stream reports `confirmed` with the
/// single-use link, and the browser follows it to its session. Returns the
/// browser holding the session.
pub async fn login_through_the_page(
    http: &reqwest::Client,
    base: &str,
    phone: &Identity,
) -> Browser {
    let mut browser = Browser::new(http, base);
    let page = browser.open_login_page().await;
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    let mut conversation = SqrlConversation::new(http, &page.url);
    assert_tif(&conversation.query(phone, NONE).await, 0x04);
    events.expect("scanned").await;
    assert_tif(&conversation.ident(phone, NONE, true).await, 0x05);
    let link = events
        .expect("confirmed")
        .await
        .url
        .expect("a collect link");
    let (status, _) = browser.collect(&link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(browser.has_cookie("sqrl_session"));
    browser
}

/// What a flood's connections went through so far.
#[derive(Debug, Default)]
pub struct FloodCounts {
    /// Connections established.
    pub opened: AtomicU64,
    /// Connect attempts that failed (no port, refused...).
    pub connect_failed: AtomicU64,
    /// Connections the server answered `503` and closed.
    pub refused: AtomicU64,
    /// Connections the server closed without an answer (timeouts).
    pub closed: AtomicU64,
    /// Connections open now, as the flood sees them.
    pub open: AtomicI64,
}

/// A snapshot of [`FloodCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodSnapshot {
    pub opened: u64,
    pub connect_failed: u64,
    pub refused: u64,
    pub closed: u64,
    pub open: i64,
}

impl FloodCounts {
    pub fn snapshot(&self) -> FloodSnapshot {
        FloodSnapshot {
            opened: self.opened.load(Ordering::Relaxed),
            connect_failed: self.connect_failed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
        }
    }
}

/// How a flood behaves.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    /// Where from (a loopback address other than the measuring client's).
    pub from: IpAddr,
    /// Connections that send nothing.
    pub idle: usize,
    /// Connections that send a request line, then one more header line
    /// every `trickle` without ever ending the header (slowloris).
    pub slow: usize,
    pub trickle: Duration,
    /// Pause before a connection the server closed is opened again.
    pub reconnect_after: Duration,
}

/// Connections that hold sockets open without finishing a request, opened
/// again as soon as the server closes them (after a pause), until stopped.
pub struct Flood {
    pub counts: Arc<FloodCounts>,
    tasks: JoinSet<()>,
}

impl Flood {
    /// Starts every connection of `plan` against `server` (the Host header
    /// of the slow ones names `server`).
    pub fn start(server: SocketAddr, plan: &FloodPlan) -> Self {
        let counts = Arc::new(FloodCounts::default());
        let mut tasks = JoinSet::new();
        for n in 0..plan.idle + plan.slow {
            let slow = n >= plan.idle;
            let counts = Arc::clone(&counts);
            let plan = plan.clone();
            tasks.spawn(async move {
                loop {
                    flood_connection(server, &plan, slow, &counts).await;
                    tokio::time::sleep(plan.reconnect_after).await;
                }
            });
        }
        Self { counts, tasks }
    }

    pub fn snapshot(&self) -> FloodSnapshot {
        self.counts.snapshot()
    }

    /// Closes every connection.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Decrements the open count however the connection ends (also on abort).
struct OpenGuard(Arc<FloodCounts>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn flood_connection(
    server: SocketAddr,
    plan: &FloodPlan,
    slow: bool,
    counts: &Arc<FloodCounts>,
) {
    let mut stream = match connect_from(plan.from, server).await {
        Ok(stream) => stream,
        Err(_) => {
            counts.connect_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    counts.opened.fetch_add(1, Ordering::Relaxed);
    counts.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(Arc::clone(counts));
    let (mut reader, mut writer) = stream.split();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let mut line = 0u64;
    if slow {
        let head = format!("GET / HTTP/1.1\r\nHost: {server}\r\n");
        if writer.write_all(head.as_bytes()).await.is_err() {
            counts.closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let mut trickle = tokio::time::interval(plan.trickle);
    trickle.tick().await;
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            },
            _ = trickle.tick(), if slow => {
                line += 1;
                let header = format!("X-Flood-{line}: {line}\r\n");
                if writer.write_all(header.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    if received.starts_with(b"HTTP/1.1 503") {
        counts.refused.fetch_add(1, Ordering::Relaxed);
    } else {
        counts.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The value at percentile `p` (nearest rank) of `values`, sorted in place.
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
