//! The pieces of the browser test: finding the tools, the real `sqrl-server`
//! in-process, the real `sqrl` binary, and the Chromium driver process
//! (`driver.mjs`, run by node with `playwright-core`).

use std::fmt::Display;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqrl_server::config::Config;

use crate::in_process_server::InProcessServer;
use tempfile::TempDir;

/// The password of the test identity.
const PASSWORD: &str = "correct horse battery staple";

/// Set to `1` (CI does) to turn a missing browser, node or npm package into a
/// failure instead of a skip.
const REQUIRE_ENV: &str = "SQRL_REQUIRE_BROWSER";

/// This directory: the driver script and its `node_modules`.
fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where a run keeps its screenshots, page text and request log:
/// `target/tmp/browser/NAME-PID`, so that two runs at once do not mix. Those
/// of earlier runs go once they are ten minutes old.
pub fn artifact_dir(name: &str) -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > Duration::from_secs(600)));
            if old
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-"))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Unix time in milliseconds (the browser's `Date.now()` clock).
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// The programs the test drives.
#[derive(Debug, Clone)]
pub struct Tools {
    node: PathBuf,
    chromium: PathBuf,
}

impl Tools {
    /// The tools. The tests that call this are ignored where they are
    /// missing (`build.rs`), unless `SQRL_REQUIRE_BROWSER=1`: then a missing
    /// tool fails the test here, saying what to install.
    pub fn find() -> Self {
        Self::locate().unwrap_or_else(|missing| {
            panic!(
                "{missing}: run .ci/install-browser ({REQUIRE_ENV}=1 requires the browser tools)"
            )
        })
    }

    fn locate() -> Result<Self, String> {
        let chromium = match std::env::var_os("SQRL_CHROMIUM") {
            Some(path) => PathBuf::from(path),
            None => ["chromium", "chromium-browser"]
                .iter()
                .find_map(|name| on_path(name))
                .ok_or("Chromium is not installed (no `chromium` on PATH)")?,
        };
        if !chromium.is_file() {
            return Err(format!("Chromium is not at {}", chromium.display()));
        }
        let node = std::env::var_os("SQRL_NODE")
            .map(PathBuf::from)
            .or_else(|| on_path("node"))
            .ok_or("node is not installed")?;
        let version = Command::new(&node)
            .arg("--version")
            .output()
            .map_err(|e| format!("node ({}) does not run: {e}", node.display()))?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 20 {
            return Err(format!(
                "node {version} is too old (playwright-core needs 20+)"
            ));
        }
        let package = driver_dir().join("node_modules/playwright-core/package.json");
        if !package.is_file() {
            return Err(format!(
                "the npm package playwright-core is not installed in {}",
                driver_dir().display()
            ));
        }
        Ok(Self { node, chromium })
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The real login service on `127.0.0.1:0` with a temporary SQLite database.
pub struct Site {
    server: InProcessServer,
}

impl Site {
    pub fn start(configure: impl FnOnce(&mut Config)) -> Self {
        Self {
            server: InProcessServer::start(|config, _| configure(config)),
        }
    }

    /// Moves the site's clock forward (to expire codes without waiting).
    pub fn advance_clock(&self, seconds: u64) {
        self.server.server().clock().advance(seconds);
    }

    /// `http://127.0.0.1:PORT`, or the public origin it was given.
    pub fn base(&self) -> String {
        self.server.base_url()
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.server().addr()
    }

    /// A login page opened by another browser, made of plain HTTP requests
    /// (`/nut.sqrl`): its SQRL URL and the `Cookie` header holding its secret.
    pub fn page_elsewhere(&self) -> (String, String) {
        let base = self.base();
        let reply = http_get(
            &format!("{base}/nut.sqrl"),
            &[("Accept", "application/json")],
        );
        assert_eq!(reply.status, 200);
        let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let nut = value["nut"].as_str().unwrap();
        let pag = value["pag"].as_str().unwrap();
        let url = format!("{}/cli.sqrl?nut={nut}", base.replace("http://", "qrl://"));
        (url, format!("sqrl_pag_{nut}={pag}"))
    }

    /// Signs another browser (plain HTTP requests) in with `cli`'s identity
    /// and returns its session cookie (`name=value`).
    pub fn session_elsewhere(&self, cli: &Cli) -> String {
        let base = self.base();
        let (url, cookie) = self.page_elsewhere();
        cli.run(&["login", &url, "--yes"]);
        let nut = url.rsplit("nut=").next().unwrap();
        let polled = http_get(
            &format!("{base}/pag.sqrl?nut={nut}"),
            &[("Accept", "application/json"), ("Cookie", &cookie)],
        );
        let value: serde_json::Value = serde_json::from_str(&polled.body).unwrap();
        let collect = value["url"].as_str().unwrap();
        let collected = http_get(&format!("{base}{collect}"), &[("Cookie", &cookie)]);
        assert_eq!(collected.status, 303, "{}", collected.body);
        collected
            .set_cookies
            .into_iter()
            .find(|pair| pair.starts_with("sqrl_session="))
            .expect("a session cookie")
    }
}

/// Someone on another network (the site, trusting 127.0.0.1 as its proxy,
/// sees them at `ip`) who answers a page's same-device `link` first, with a
/// new identity of their own and CPS, as a client built on `sqrl-core`
/// would: `query`, then `ident`. Returns the session link the site hands
/// out and the identity's fingerprint.
pub fn answer_with_cps_from(link: &str, ip: &str) -> (String, String) {
    use sqrl_core::keys::{IdentityUnlockKey, RandomLockKey};
    use sqrl_core::msg::{ClientOptions, ClientRequest, Command, RequestBody, ServerReply};
    use sqrl_core::rand_core::OsRng;

    let url = sqrl_core::url::SqrlUrl::parse(link).unwrap();
    let iuk = IdentityUnlockKey::generate(&mut OsRng);
    let key = iuk.master_key().site_key(url.site_key_string());
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut server = sqrl_core::base64url::encode(link);
    let mut post_url = url.post_url();
    let mut session_link = None;
    for command in [Command::Query, Command::Ident] {
        let mut request = ClientRequest::builder(command, key.public_key())
            .options(ClientOptions::CPS | ClientOptions::NOIPTEST);
        if command == Command::Ident {
            let (suk, vuk) = RandomLockKey::generate(&mut OsRng)
                .lock(&iuk.lock_key())
                .unwrap();
            request = request.lock(suk, vuk);
        }
        let body = RequestBody::sign(&request.build().unwrap(), &server, &key, None, None)
            .unwrap()
            .to_form();
        let text = agent
            .post(&post_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Forwarded-For", ip)
            .send(body.as_bytes())
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let reply = ServerReply::parse(&text).unwrap();
        post_url = url.post_url_for_query(reply.qry()).unwrap();
        session_link = reply.url().map(str::to_owned);
        server = text;
    }
    (
        session_link.expect("a session link for the CPS ident"),
        key.public_key().fingerprint(),
    )
}

/// A plain HTTP response: status, `name=value` of each `Set-Cookie`, body.
pub struct HttpReply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// `GET url` without following redirects.
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> HttpReply {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(str::to_owned)
        .collect();
    HttpReply {
        status: response.status().as_u16(),
        set_cookies,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// The `sqrl` binary with its own configuration directory holding one
/// identity, created with a one-millisecond EnScrypt budget.
pub struct Cli {
    dir: TempDir,
}

impl Cli {
    pub fn with_identity() -> Self {
        let cli = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(cli.dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        let rescue = cli.dir.path().join("rescue");
        let rescue = rescue.to_str().unwrap();
        cli.run(&["identity", "create", "me", "--rescue-code-out", rescue]);
        cli
    }

    /// Runs `sqrl ARGS --json` and returns its JSON output; panics on failure.
    pub fn run(&self, args: &[&str]) -> serde_json::Value {
        let output = self.output(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "sqrl {args:?} failed ({:?})\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
    }

    /// Starts `sqrl agent` on the port pages look for (25519) for one login
    /// and waits until it listens.
    pub fn agent(&self) -> Child {
        let mut child = self
            .command(&["agent", "--max-logins", "1", "--yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("127.0.0.1:25519"), "agent: {line:?}");
        child
    }

    /// Runs `sqrl ARGS --json` and returns how it ended.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `sqrl ARGS --json` with this identity's files, ready to run.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sqrl"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SQRL_") {
                command.env_remove(&key);
            }
        }
        let home = self.dir.path().join("home");
        let password = self.dir.path().join("password");
        command
            .env("SQRL_ENSCRYPT_MS", "1")
            // The agent's socket in this home, not in a shared runtime directory.
            .env_remove("XDG_RUNTIME_DIR")
            .arg("--config-dir")
            .arg(&home)
            .arg("--json")
            .args(args)
            // Every command these tests run reads a password (after its name:
            // the option belongs to the commands that use it).
            .arg("--password-file")
            .arg(&password);
        command
    }
}

/// How the page's live channel is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As served: Server-Sent Events.
    Sse,
    /// The event stream refused at the network layer: `/pag.sqrl` polling.
    Poll,
    /// The event stream accepted but silent, as behind a proxy that buffers
    /// whole responses: only polling can sign the page in.
    Held,
    /// As served, but the screenshot is taken only after the open page has
    /// replaced its first code with a fresh one.
    Rotate,
    /// As served, to a browser the site sees on another network than the
    /// device (`X-Forwarded-For: 198.51.100.7` through a site that trusts
    /// 127.0.0.1 as its proxy).
    Elsewhere,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::Poll => "poll",
            Self::Held => "held",
            Self::Rotate => "rotate",
            Self::Elsewhere => "elsewhere",
        }
    }
}

/// `driver.mjs` running a headless Chromium: one JSON event per line out,
/// one command per line in.
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Screenshots, page text and request logs.
    pub artifacts: PathBuf,
}

impl Browser {
    pub fn open(tools: &Tools, base: &str, mode: Mode, artifacts: PathBuf) -> Self {
        let mut child = Command::new(&tools.node)
            .arg(driver_dir().join("driver.mjs"))
            .arg(base)
            .arg(&artifacts)
            .arg(mode.as_str())
            .env("SQRL_CHROMIUM", &tools.chromium)
            .current_dir(driver_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
            artifacts,
        }
    }

    /// The next event, which must be `expected`.
    pub fn expect(&self, expected: &str, timeout: Duration) -> serde_json::Value {
        let line = match self.events.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => self.fail(format!(
                "no `{expected}` event from the browser in {timeout:?}"
            )),
            Err(RecvTimeoutError::Disconnected) => {
                self.fail(format!("the browser driver ended before `{expected}`"))
            }
        };
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| self.fail(format!("driver printed {line:?}: {e}")));
        std::fs::write(
            self.artifacts.join(format!(
                "event-{}.json",
                event["event"].as_str().unwrap_or("unknown")
            )),
            serde_json::to_string_pretty(&event).unwrap(),
        )
        .unwrap();
        if event["event"] != expected {
            // The request log stays in the file; the rest says what went wrong.
            self.fail(format!(
                "expected `{expected}` from the browser, got `{}`: {}\n\
                 page at {}; script errors: {}; console: {}",
                event["event"].as_str().unwrap_or("?"),
                event["message"].as_str().unwrap_or(""),
                event["pageUrl"],
                event["pageErrors"],
                event["console"],
            ));
        }
        event
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Panics with `message`, the driver's error output and where the
    /// screenshots and page text are.
    pub fn fail(&self, message: impl Display) -> ! {
        panic!(
            "{message}\n-- driver stderr:\n{}\n-- screenshots, page text and request log in {}",
            self.stderr.lock().unwrap(),
            self.artifacts.display()
        )
    }

    /// Asserts `condition`, failing like [`Browser::fail`].
    pub fn check(&self, condition: bool, message: impl Display) {
        if !condition {
            self.fail(message);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End of input tells the driver to close Chromium and exit; kill it
        // only if it does not.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGTERM lets Playwright close Chromium on its way out; SIGKILL
        // would leave the browser running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The operator's nginx configuration for protecting an app
/// (`deploy/nginx/sqrl-forward-auth.conf`), run by a real nginx (Debian's,
/// from `.ci/install-server-tools`) as it ships, with only the listen
/// address, the two upstreams and the server name replaced.
pub struct Nginx {
    child: Child,
    dir: TempDir,
}

impl Nginx {
    pub fn start(port: u16, sqrl: std::net::SocketAddr, app: std::net::SocketAddr) -> Self {
        let shipped = include_str!("../../../deploy/nginx/sqrl-forward-auth.conf");
        let mut site = shipped.to_owned();
        for (from, to) in [
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            (
                "server_name example.com;",
                "server_name 127.0.0.1;".to_owned(),
            ),
            ("server 127.0.0.1:8080;", format!("server {sqrl};")),
            ("server 127.0.0.1:3000;", format!("server {app};")),
        ] {
            assert_eq!(
                site.matches(from).count(),
                1,
                "{from:?} in the nginx config"
            );
            site = site.replace(from, &to);
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        // As root, nginx's workers would drop to `nobody`, who cannot use
        // the test's private directory.
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let user = if root_user { "user root;" } else { "" };
        let main = format!(
            "{user}\nworker_processes 1;\ndaemon off;\npid {root}/nginx.pid;\n\
             error_log {root}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy;\n    fastcgi_temp_path {root}/fastcgi;\n\
             uwsgi_temp_path {root}/uwsgi;\n    scgi_temp_path {root}/scgi;\n\
             include {root}/site.conf;\n}}\n"
        );
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, main).unwrap();
        let binary = on_path("nginx")
            .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
            .expect("nginx is not installed: run .ci/install-server-tools");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, dir }
    }

    /// nginx's error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app nginx protects: answers every request with a page naming the
/// path and every `Remote-User` header it was sent (one HTTP/1.1 response
/// per connection).
pub fn start_protected_app() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("?").to_owned();
            let users: Vec<&str> = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .filter(|(name, _)| name.trim().eq_ignore_ascii_case("remote-user"))
                .map(|(_, value)| value.trim())
                .collect();
            let body = format!(
                "<!DOCTYPE html><title>App</title><p id=\"app\">app page {path}; users {users:?}</p>"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// A relying party of the site's OpenID Connect provider: `oidc-rp.mjs`, a
/// small web app on the `openid-client` library, on `127.0.0.1:port`.
pub struct RelyingParty {
    child: Child,
    pub base: String,
}

impl RelyingParty {
    /// Starts it on `port` for `issuer` as client `client_id`; returns once
    /// it listens (after discovery).
    pub fn start(tools: &Tools, port: u16, issuer: &str, client_id: &str, secret: &str) -> Self {
        let mut child = Command::new(&tools.node)
            .arg(driver_dir().join("oidc-rp.mjs"))
            .args([issuer, &port.to_string(), client_id, secret])
            .current_dir(driver_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(
            first.trim(),
            r#"{"event":"listening"}"#,
            "the relying party did not start (discovery failed?)"
        );
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
