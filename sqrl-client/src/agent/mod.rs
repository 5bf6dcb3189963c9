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

#[cfg(unix)]
pub mod hardening;
pub mod http;
#[cfg(unix)]
pub mod remote;
pub mod route;
mod service;
#[cfg(unix)]
pub mod signing;
#[cfg(unix)]
pub mod socket;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use sqrl_core::url::SqrlUrl;

pub use service::{AgentService, AgentSettings, log};

use crate::cli::{AgentArgs, AgentCommand};
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
/// How often, in milliseconds, the accept loops wake to run housekeeping
/// (idle expiry, stop).
const TICK_MS: u16 = 25;
/// [`TICK_MS`] as a duration.
const TICK: Duration = Duration::from_millis(TICK_MS as u64);

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
    /// `None`), or until `stop` is set.
    pub fn serve(
        self,
        service: Arc<dyn LoginService>,
        max_logins: Option<u32>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let logins = Arc::new(AtomicU32::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            service.housekeeping();
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
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

/// `sqrl agent`: unlocks the identity, listens, and serves until stopped;
/// `sqrl agent lock|status`: talks to the running one.
pub fn run(context: &Context, args: &AgentArgs) -> Result<()> {
    match args.command {
        #[cfg(unix)]
        Some(command) => control(context, command),
        #[cfg(not(unix))]
        Some(_) => Err(Error::Agent(
            "the agent's socket needs a Unix system".to_owned(),
        )),
        None => start(context, args),
    }
}

/// `sqrl agent lock` and `sqrl agent status`.
#[cfg(unix)]
fn control(context: &Context, command: AgentCommand) -> Result<()> {
    let path = socket::socket_path(&context.store);
    let op = match command {
        AgentCommand::Lock => "lock",
        AgentCommand::Status => "status",
    };
    let Some(line) = socket::request(&path, &serde_json::json!({ "op": op }))? else {
        return Err(Error::Agent(format!(
            "no agent is running (nothing listens on {}); start one with `sqrl agent`",
            path.display()
        )));
    };
    let answer: serde_json::Value = serde_json::from_str(&line)
        .map_err(|e| Error::Agent(format!("the agent's answer is not JSON: {e}")))?;
    if let Some(error) = answer["error"].as_str() {
        return Err(Error::Agent(format!(
            "the agent refused: {}",
            answer["message"].as_str().unwrap_or(error)
        )));
    }
    let human = match command {
        AgentCommand::Lock if answer["was_unlocked"] == true => {
            "Locked: the agent wiped the identity from memory; the next login asks for the password."
                .to_owned()
        }
        AgentCommand::Lock => "The agent was already locked.".to_owned(),
        AgentCommand::Status => {
            let identity = answer["identity"].as_str().unwrap_or_default();
            match answer["idle_seconds_left"].as_u64() {
                Some(left) if answer["unlocked"] == true => format!(
                    "An agent (pid {}) holds identity {identity:?} unlocked; it locks after {left} more idle seconds.",
                    answer["pid"]
                ),
                _ => format!(
                    "An agent (pid {}) runs for identity {identity:?}, locked.",
                    answer["pid"]
                ),
            }
        }
    };
    context.out.result(&answer, &human)
}

/// Starts the agent.
fn start(context: &Context, args: &AgentArgs) -> Result<()> {
    // First, before any key exists in this process: no core dumps, no
    // debugger of the same user, memory kept out of swap where allowed.
    #[cfg(unix)]
    let hardened = hardening::harden();
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
    // Bind first: a port or socket in use is reported before any password is asked.
    let agent = Agent::bind(args.port)?;
    let port = agent.port()?;
    #[cfg(unix)]
    let socket_path = socket::socket_path(&context.store);
    #[cfg(unix)]
    let listener = socket::bind(&socket_path)?;
    let service = Arc::new(
        AgentService::new(stored, settings).with_store_root(context.store.root().to_owned()),
    );
    if idle_seconds > 0 {
        service.unlock_now()?;
    }
    // From now on Ctrl-C and SIGTERM stop the loops, which then wipe the keys
    // (not before: Ctrl-C at the password prompt simply ends the process).
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Internal(format!("installing the signal handler: {e}")))?;
    }
    #[cfg(unix)]
    {
        let service = Arc::clone(&service);
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("sqrl-agent-socket".into())
            .spawn(move || serve_socket(&listener, service.as_ref(), &stop))
            .map_err(|e| Error::Internal(format!("starting the socket thread: {e}")))?;
    }
    let mut value = serde_json::json!({"listening": format!("127.0.0.1:{port}"), "identity": name});
    let mut human = format!(
        "sqrl agent: identity {name:?}, listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)"
    );
    #[cfg(unix)]
    {
        value["socket"] = serde_json::json!(socket_path);
        value["memory_locked"] = serde_json::json!(hardened.memory_locked);
        human.push_str(&format!("\nsqrl agent: socket {}", socket_path.display()));
        if !hardened.memory_locked {
            human.push_str(
                "\nsqrl agent: note: memory could not be locked (RLIMIT_MEMLOCK); the keys may reach swap",
            );
        }
    }
    context.out.result(&value, &human)?;
    let served = agent.serve(
        Arc::clone(&service) as Arc<dyn LoginService>,
        args.max_logins,
        &stop,
    );
    // However it ends: wipe the keys, and take the socket away.
    #[cfg(unix)]
    {
        use socket::KeyHolder as _;
        stop.store(true, Ordering::SeqCst);
        service.lock();
        let _ = std::fs::remove_file(&socket_path);
    }
    log("stopped; the identity was wiped from memory");
    served
}

/// The socket's accept loop, until `stop`.
#[cfg(unix)]
fn serve_socket(
    listener: &std::os::unix::net::UnixListener,
    service: &AgentService,
    stop: &AtomicBool,
) {
    use std::os::fd::AsFd as _;

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    if listener.set_nonblocking(true).is_err() {
        return;
    }
    // A transaction asks several times (public keys, then each signature):
    // waiting on the socket, not sleeping between looks, answers each at once.
    while !stop.load(Ordering::SeqCst) {
        let mut ready = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut ready, PollTimeout::from(TICK_MS)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => {
                thread::sleep(TICK);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                // One short request per connection, answered in turn.
                if stream.set_nonblocking(false).is_ok() {
                    socket::serve_connection(&stream, service);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => thread::sleep(TICK),
        }
    }
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
        let server =
            thread::spawn(move || agent.serve(Arc::new(Fixed), Some(1), &AtomicBool::new(false)));
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
