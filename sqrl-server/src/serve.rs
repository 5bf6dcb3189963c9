//! The accept loop: TCP (and TLS) connections in, HTTP/1.1 served by hyper,
//! under limits that keep one client from holding the service down with
//! sockets that never finish a request.
//!
//! * **Header-read timeout.** A client has `header_read_timeout` to send a
//!   whole request header. hyper's timer starts whenever the connection waits
//!   for a request head: when it opens, and again as soon as it goes idle
//!   after a response (`proto/h1/conn.rs`: `State::idle` sets `notify_read`
//!   so that `poll_read_head` arms the timer), and it is not reset by bytes
//!   that arrive. So a silent socket, a slowloris trickling header lines and
//!   an idle keep-alive connection are all closed after it. A response in
//!   progress (a login page's event stream) is not a header read and is not
//!   cut short.
//! * **TLS handshake timeout.** The handshake must complete within
//!   `tls_handshake_timeout`.
//! * **Connection caps.** Open connections are capped per client address
//!   (IPv4 address, IPv6 /64, as the rate limit counts) and in all. Trusted
//!   proxies are exempt from the per-address cap (they carry many users) but
//!   count toward the total. Over a cap a plain-HTTP connection is sent a
//!   short `503` (`Connection: close`) if it can be written without waiting,
//!   and closed; a TLS connection is closed (a plain-text answer means nothing
//!   to a TLS client, and a handshake is the work the cap avoids).
//! * **HTTP/1.1 only**, on the plain port (an HTTP/2 prior-knowledge preface
//!   is refused) and over TLS (ALPN offers `http/1.1` only). hyper's HTTP/2
//!   server has no header-read timeout, and one HTTP/2 connection carries
//!   many concurrent requests, so the limits above would not bound what one
//!   client holds.
//! * **Accept errors** (out of file descriptors) back off briefly, are
//!   counted, and are logged at most once per [`ACCEPT_LOG_EVERY`].
//!
//! Handlers see the peer as `ConnectInfo<SocketAddr>`, as with axum's
//! `into_make_service_with_connect_info`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::app::AppState;
use crate::config::TlsFiles;
use crate::net;

/// Most often an accept failure is logged; the others in between are counted
/// into the next line.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// First pause after an accept failure; doubled on each further failure.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Longest pause after accept failures.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// How long shutdown waits for connections to close once forced.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Seconds a refused client is asked to wait (`Retry-After`).
const RETRY_AFTER_SECS: u32 = 5;

/// Connections the kernel may hold established but not yet accepted (it
/// caps this at `net.core.somaxconn`). A flood's bursts of connects would
/// overflow a short queue, and then everyone's connects wait for a SYN
/// retransmission (a second or more).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` with a long accept queue.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As the standard library's listeners do on Unix: a restarted server can
    // bind while its old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Reads the PEM certificate chain and private key of `files` into a TLS
/// acceptor that speaks HTTP/1.1 only.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, (String, std::io::Error)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let invalid = |error: String| std::io::Error::new(std::io::ErrorKind::InvalidData, error);
    let cert_context = format!("reading TLS certificate {}", files.cert.display());
    let key_context = format!("reading TLS key {}", files.key.display());
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| (cert_context.clone(), invalid(e.to_string())))?;
    if certs.is_empty() {
        return Err((cert_context, invalid("no certificate in the file".into())));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| (key_context.clone(), invalid(e.to_string())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            (
                format!(
                    "using TLS certificate {} with key {}",
                    files.cert.display(),
                    files.key.display()
                ),
                invalid(e.to_string()),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerAddress,
    Total,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Self::PerAddress => "per-address",
            Self::Total => "total",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::PerAddress => "too many open connections from this address\n",
            Self::Total => "too many open connections, try again shortly\n",
        }
    }
}

/// Open connections, in all and per address key.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// What every connection task shares.
struct Shared {
    state: AppState,
    router: Router,
    tls: Option<TlsAcceptor>,
    http: http1::Builder,
    max_total: usize,
    max_per_address: usize,
    /// The counts (a watch channel, so that shutdown can wait for zero).
    counts: watch::Sender<Counts>,
    /// Flips to `true` when the server stops: connections finish the request
    /// in flight and close.
    stop: watch::Receiver<bool>,
    /// Flips to `true` when the grace period is over: connections close now.
    force: watch::Receiver<bool>,
}

/// An open connection's place in [`Counts`], given back on drop.
struct ConnectionSlot {
    shared: Arc<Shared>,
    /// `None` for a trusted proxy (not counted per address).
    key: Option<IpAddr>,
}

impl Shared {
    fn acquire(self: &Arc<Self>, key: Option<IpAddr>) -> Result<ConnectionSlot, Refusal> {
        let mut outcome = Ok(());
        self.counts.send_if_modified(|counts| {
            let from_address = key.and_then(|key| counts.per_address.get(&key).copied());
            outcome = if from_address.unwrap_or(0) >= self.max_per_address {
                Err(Refusal::PerAddress)
            } else if counts.total >= self.max_total {
                Err(Refusal::Total)
            } else {
                Ok(())
            };
            if outcome.is_err() {
                return false;
            }
            counts.total += 1;
            if let Some(key) = key {
                *counts.per_address.entry(key).or_default() += 1;
            }
            true
        });
        match outcome {
            Ok(()) => {
                self.state.metrics.connection_opened();
                Ok(ConnectionSlot {
                    shared: Arc::clone(self),
                    key,
                })
            }
            Err(refusal) => {
                self.state.metrics.connection_refused(refusal.reason());
                Err(refusal)
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.counts.send_modify(|counts| {
            counts.total = counts.total.saturating_sub(1);
            if let Some(key) = self.key
                && let Some(count) = counts.per_address.get_mut(&key)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.per_address.remove(&key);
                }
            }
        });
        self.shared.state.metrics.connection_closed();
    }
}

/// Pauses and rate-limited logging after accept failures.
#[derive(Debug)]
struct AcceptBackoff {
    delay: Duration,
    last_logged: Option<Instant>,
    /// Failures not logged since the last line.
    unlogged: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: ACCEPT_BACKOFF_MIN,
            last_logged: None,
            unlogged: 0,
        }
    }
}

impl AcceptBackoff {
    /// Notes a failure at `now`; returns how long to pause and whether to log
    /// it (with the number of failures not logged since the last line).
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(ACCEPT_BACKOFF_MAX);
        let due = self
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= ACCEPT_LOG_EVERY);
        if due {
            self.last_logged = Some(now);
            let unlogged = std::mem::take(&mut self.unlogged);
            (delay, Some(unlogged))
        } else {
            self.unlogged += 1;
            (delay, None)
        }
    }

    /// Notes an accepted connection: the next failure pauses briefly again.
    /// (The log stays rate-limited across successes.)
    fn succeeded(&mut self) {
        self.delay = ACCEPT_BACKOFF_MIN;
    }
}

/// Failures that concern one connection only (the client gave up before it
/// was accepted): nothing to wait for.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// Completes when `signal` flips to `true`, or its sender is gone (the
/// server was dropped without a shutdown: it stops too).
async fn raised(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|raised| *raised).await;
}

/// Serves `router` on `listener` until `stop` flips to `true`; then stops
/// accepting, lets connections finish the request in flight (live event
/// streams end on the same signal) for up to `grace`, and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    let limits = state.config.limits.clone();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let (force_tx, force) = watch::channel(false);
    let shared = Arc::new(Shared {
        router,
        tls,
        http,
        max_total: limits.max_connections,
        max_per_address: limits.max_connections_per_address,
        counts: watch::Sender::new(Counts::default()),
        stop: stop.clone(),
        force,
        state,
    });
    // The rate limit forgets refilled addresses on a timer, for as long as
    // the server accepts requests.
    if shared.state.limiter.is_some() {
        let state = shared.state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Some(limiter) = &state.limiter {
                limiter.run_sweeper(stop).await;
            }
        });
    }
    let mut backoff = AcceptBackoff::default();

    loop {
        let accepted = tokio::select! {
            biased;
            () = raised(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                shared.state.metrics.accept_error();
                let (delay, log) = backoff.failed(Instant::now());
                if let Some(unlogged) = log {
                    tracing::error!(
                        %error,
                        pause_ms = delay.as_millis() as u64,
                        failures_since_last_log = unlogged,
                        "cannot accept connections (out of file descriptors?)"
                    );
                }
                tokio::select! {
                    () = raised(&mut stop) => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let ip = peer.ip().to_canonical();
        let trusted = shared
            .state
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip));
        let key = (!trusted).then(|| net::rate_limit_key(ip));
        match shared.acquire(key) {
            Ok(slot) => {
                tokio::spawn(connection(stream, peer, slot));
            }
            Err(refusal) => {
                tracing::debug!(%peer, reason = refusal.reason(), "connection refused");
                refuse(stream, refusal, shared.tls.is_none());
            }
        }
    }
    drop(listener);

    let mut counts = shared.counts.subscribe();
    // (The `Ref` the wait returns holds the channel's lock: drop it at once.)
    let drained = tokio::time::timeout(grace, counts.wait_for(|counts| counts.total == 0))
        .await
        .is_ok();
    if !drained {
        let open = counts.borrow().total;
        tracing::warn!(open, "grace period over, closing connections");
        let _ = force_tx.send(true);
        let _ = tokio::time::timeout(
            FORCE_CLOSE_WAIT,
            counts.wait_for(|counts| counts.total == 0),
        )
        .await;
    }
    Ok(())
}

/// Answers a refused plain-HTTP connection with a short 503, if the socket
/// takes it at once, and closes it.
fn refuse(stream: TcpStream, refusal: Refusal, plain: bool) {
    if plain {
        let body = refusal.message();
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Retry-After: {RETRY_AFTER_SECS}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(response.as_bytes());
        // Unread request bytes would make the close a reset, which can
        // discard the answer at the client: take what has already arrived.
        let mut sink = [0u8; 2048];
        let _ = stream.try_read(&mut sink);
    }
    drop(stream);
}

/// Serves one accepted connection; `slot` is given back when it ends.
async fn connection(stream: TcpStream, peer: SocketAddr, slot: ConnectionSlot) {
    let shared = Arc::clone(&slot.shared);
    // An event-stream frame is a few bytes written after earlier ones; with
    // Nagle's algorithm it would wait for the browser's delayed ACK (tens of
    // milliseconds).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    match &shared.tls {
        None => http(TokioIo::new(stream), peer, &shared).await,
        Some(acceptor) => {
            let mut stop = shared.stop.clone();
            let handshake = tokio::time::timeout(
                shared.state.config.limits.tls_handshake_timeout,
                acceptor.accept(stream),
            );
            let outcome = tokio::select! {
                outcome = handshake => outcome,
                () = raised(&mut stop) => return,
            };
            match outcome {
                Ok(Ok(tls)) => http(TokioIo::new(tls), peer, &shared).await,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    shared.state.metrics.connection_refused("tls-handshake");
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    shared.state.metrics.connection_refused("tls-handshake");
                }
            }
        }
    }
    drop(slot);
}

/// Serves HTTP/1.1 on `io` until the client or the server ends it.
async fn http<I>(io: TokioIo<I>, peer: SocketAddr, shared: &Shared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let connection = shared.http.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stop = shared.stop.clone();
    let mut force = shared.force.clone();
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = raised(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = raised(&mut force) => Ok(()),
            }
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and garbage from clients: theirs, not ours.
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_and_log_rarely() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        let mut logged = 0;
        let mut delays = Vec::new();
        // A tight loop of failures, 1 ms apart, for 25 s.
        for ms in 0..25_000u64 {
            let (delay, log) = backoff.failed(start + Duration::from_millis(ms));
            delays.push(delay);
            if let Some(unlogged) = log {
                logged += 1;
                if logged > 1 {
                    assert_eq!(unlogged, 9_999, "the line says how many were not logged");
                }
            }
        }
        assert_eq!(logged, 3, "once per {ACCEPT_LOG_EVERY:?}");
        assert_eq!(delays[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(delays[1], ACCEPT_BACKOFF_MIN * 2);
        assert_eq!(*delays.last().unwrap(), ACCEPT_BACKOFF_MAX);
        // A success makes the next pause short again, not the next log line.
        backoff.succeeded();
        let (delay, log) = backoff.failed(start + Duration::from_millis(25_001));
        assert_eq!(delay, ACCEPT_BACKOFF_MIN);
        assert!(log.is_none());
    }

    #[test]
    fn connection_errors_are_not_accept_failures() {
        use std::io::{Error, ErrorKind};
        assert!(is_connection_error(&Error::from(
            ErrorKind::ConnectionAborted
        )));
        assert!(!is_connection_error(&Error::other("Too many open files")));
    }
}
