//! The CPS agent: a tiny HTTP server on `127.0.0.1:25519` (SPEC 7).
//!
//! A login page probes `http://localhost:25519/<anything>.gif`; once the probe
//! loads, it navigates the browser to `http://localhost:25519/<b64u(sqrl URL)>`.
//! The agent runs the login with `opt=cps`, holding that navigation open, and
//! answers it with a `302` to the session URL the site returned, or to the
//! cancel URL, or with a page asking the user to press Back.
//!
//! Requests carrying an `Origin` header come from page script and are dropped
//! unanswered, so no script can ever read a session URL (PITFALLS 29). The
//! listener binds the loopback address only (PITFALLS 31).

pub mod http;
pub mod route;
mod service;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use sqrl_core::url::SqrlUrl;

pub use service::{AgentService, AgentSettings};

use crate::cli::AgentArgs;
use crate::commands::Context;
use crate::commands::site::http_settings;
use crate::error::{Error, Result};
use crate::identity::StoredIdentity;
use http::Response;
use route::Route;

/// Most connections served at once; further ones are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request head, and to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accept loop wakes to run housekeeping (idle expiry, stop).
const TICK: Duration = Duration::from_millis(25);

/// Runs one same-device login and says where to send the browser.
pub trait LoginService: Send + Sync {
    /// Logs in with `opt=cps` and returns the browser's response: a redirect to
    /// the session URL, or to the cancel URL, or the "press Back" page.
    fn cps_login(&self, url: &SqrlUrl) -> Response;

    /// Called every tick of the accept loop (e.g. to forget an idle identity).
    fn housekeeping(&self) {}
}

/// The listening agent.
#[derive(Debug)]
pub struct Agent {
    listener: TcpListener,
}

impl Agent {
    /// Binds `127.0.0.1:port` (port 0 picks a free one). Never any other address.
    pub fn bind(port: u16) -> Result<Self> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener =
            TcpListener::bind(address).map_err(|source| Error::Listen { port, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Listen { port, source })?;
        Ok(Self { listener })
    }

    /// The port actually bound.
    pub fn port(&self) -> Result<u16> {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::Internal(format!("listener address: {e}")))
    }

    /// Serves until `max_logins` login requests have been answered (forever if
    /// `None`).
    pub fn serve(self, service: Arc<dyn LoginService>, max_logins: Option<u32>) -> Result<()> {
        let logins = Arc::new(AtomicU32::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            service.housekeeping();
            if max_logins.is_some_and(|max| logins.load(Ordering::SeqCst) >= max)
                && active.load(Ordering::SeqCst) == 0
            {
                return Ok(());
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    thread::sleep(TICK);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Internal(format!("accepting a connection: {e}"))),
            };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                drop(stream);
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let service = Arc::clone(&service);
            let logins = Arc::clone(&logins);
            let active_for_thread = Arc::clone(&active);
            let spawned = thread::Builder::new()
                .name("sqrl-agent-conn".into())
                .spawn(move || {
                    if handle(stream, service.as_ref()) {
                        logins.fetch_add(1, Ordering::SeqCst);
                    }
                    active_for_thread.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// `sqrl agent`: unlocks the identity, listens, and serves until stopped.
pub fn run(context: &Context, args: &AgentArgs) -> Result<()> {
    let name = context.identity_name()?;
    let stored = StoredIdentity::load(&context.store, &name)?;
    // The identity's own setting (S4 block 1, SPEC 5.1) unless overridden.
    let idle_seconds = args.idle_timeout.unwrap_or_else(|| {
        stored.s4.password_block().map_or(15 * 60, |b| {
            u64::from(b.settings().idle_timeout_minutes) * 60
        })
    });
    let settings = AgentSettings {
        idle_timeout: Duration::from_secs(idle_seconds),
        alt_id: args.alt_id.clone(),
        http: http_settings(&args.http),
        yes: context.yes,
        secrets: context.secrets.clone(),
        progress: context.out.show_progress(),
    };
    // Bind first: a port in use is reported before any password is asked.
    let agent = Agent::bind(args.port)?;
    let port = agent.port()?;
    let service = AgentService::new(stored, settings);
    if idle_seconds > 0 {
        service.unlock_now()?;
    }
    context.out.result(
        &serde_json::json!({"listening": format!("127.0.0.1:{port}"), "identity": name}),
        &format!(
            "sqrl agent: identity {name:?}, listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)"
        ),
    )?;
    agent.serve(Arc::new(service), args.max_logins)
}

/// Serves one connection; returns whether it was a login request.
fn handle(mut stream: TcpStream, service: &dyn LoginService) -> bool {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return false;
    }
    let request = match http::read_request(&mut stream) {
        Ok(request) => request,
        Err(error) => {
            if let Some(response) = error.response() {
                let _ = http::write_response(&mut stream, &response, false);
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            return false;
        }
    };
    let head_only = request.method == "HEAD";
    let (response, was_login) = match route::route(&request) {
        // Close without a byte of response (PITFALLS 29).
        Route::Drop => return false,
        Route::Probe => (Response::Gif, false),
        Route::NotFound => (Response::NotFound, false),
        Route::MethodNotAllowed => (Response::MethodNotAllowed, false),
        Route::Login(url) => (service.cps_login(&url), true),
    };
    let _ = http::write_response(&mut stream, &response, head_only);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    was_login
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    struct Fixed;
    impl LoginService for Fixed {
        fn cps_login(&self, url: &SqrlUrl) -> Response {
            Response::Redirect(format!("https://{}/session", url.host()))
        }
    }

    fn exchange(port: u16, request: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    /// An agent on a free port that stops after one login, and that login's request.
    fn agent_for_one_login() -> (u16, thread::JoinHandle<Result<()>>, String) {
        let agent = Agent::bind(0).unwrap();
        let port = agent.port().unwrap();
        let server = thread::spawn(move || agent.serve(Arc::new(Fixed), Some(1)));
        let encoded = sqrl_core::base64url::encode("sqrl://example.com/cli.sqrl?nut=abc");
        (port, server, format!("GET /{encoded} HTTP/1.1\r\n\r\n"))
    }

    #[test]
    fn serves_probe_login_and_drops_origin() {
        let (port, server, login_request) = agent_for_one_login();

        let probe = exchange(port, "GET /123.gif HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(probe.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(probe.ends_with(http::PROBE_GIF));

        let from_script =
            login_request.replace("\r\n\r\n", "\r\nOrigin: https://evil.example\r\n\r\n");
        let dropped = exchange(port, &from_script);
        assert!(
            dropped.is_empty(),
            "a request with Origin must get no answer"
        );

        let login = String::from_utf8(exchange(port, &login_request)).unwrap();
        assert!(login.starts_with("HTTP/1.1 302 Found\r\n"), "{login}");
        assert!(login.contains("\r\nLocation: https://example.com/session\r\n"));
        server.join().unwrap().unwrap();
    }

    #[test]
    fn a_malformed_request_gets_a_bad_request() {
        let (port, server, login_request) = agent_for_one_login();
        let answer = exchange(port, "not http at all\r\n\r\n");
        assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        // Only a login counts towards the agent's limit: this one lets it stop.
        exchange(port, &login_request);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn binds_loopback_only() {
        let agent = Agent::bind(0).unwrap();
        let address = agent.listener.local_addr().unwrap();
        assert!(address.ip().is_loopback());
    }
}
