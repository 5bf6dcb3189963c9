//! The service side: an in-process server on 127.0.0.1:0 with a temporary
//! SQLite file, the steps tests repeat against it, and the database rows they
//! check.

use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rusqlite::Connection;
use rusqlite::types::FromSql;
use sqrl_server::RunningServer;
use sqrl_server::config::{Config, TlsFiles};
use sqrl_server::store::InFlight;
use tempfile::TempDir;

use super::{Browser, Identity, NONE, SqrlConversation, WaitingPage, assert_tif, form_field, text};

/// The operator API token of servers started with one.
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789";

/// A running server with its own database directory.
pub struct Harness {
    pub server: RunningServer,
    pub dir: TempDir,
    pub http: reqwest::Client,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The test configuration for a database file: an ephemeral port, and no
/// rate limit (tests send many requests from one address).
fn config(db: &Path) -> Config {
    let mut config = Config::for_tests(db);
    config.rate_limit = None;
    config
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir.path().join("sqrl.db"));
        configure(&mut config);
        let server = sqrl_server::start(config).await.unwrap();
        Self {
            server,
            dir,
            http: http_client(),
        }
    }

    /// Shuts the server down and starts a new one on the same database.
    pub async fn restart(self) -> Self {
        let Harness { server, dir, http } = self;
        server.shutdown().await;
        let server = sqrl_server::start(config(&dir.path().join("sqrl.db")))
            .await
            .unwrap();
        Self { server, dir, http }
    }

    pub fn base(&self) -> String {
        self.server.base_url()
    }

    /// The absolute URL of a path on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// GETs a path without cookies.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("sqrl.db")
    }

    /// A direct connection to the database, to check rows.
    pub fn db(&self) -> Connection {
        Connection::open(self.db_path()).unwrap()
    }

    /// The logins in flight, which live in the server's memory (not in the
    /// database file).
    pub async fn in_flight(&self) -> InFlight {
        self.server.state().store.in_flight().await.unwrap()
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.http, &self.base())
    }

    /// The account tables, to check that nothing changed.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.db())
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.value(sql)
    }

    /// The single value `sql` selects.
    pub fn value<T: FromSql>(&self, sql: &str) -> T {
        self.db()
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every row `sql` selects, as the value `row` makes of it.
    pub fn rows<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        rows(&self.db(), sql, row)
    }

    pub fn identity_count(&self) -> i64 {
        self.count("SELECT count(*) FROM sqrl_identities")
    }

    /// Mints a nut through the SSP API (`/nut.sqrl`, as this test's address)
    /// and returns its SQRL URL.
    pub async fn minted_url(&self) -> String {
        mint_url(&self.http, &self.base()).await
    }

    /// A client conversation on a freshly minted nut.
    pub async fn conversation(&self) -> SqrlConversation {
        SqrlConversation::new(&self.http, &self.minted_url().await)
    }

    /// Associates `id` with a new account (query, then ident with suk/vuk);
    /// returns the conversation.
    pub async fn associate(&self, id: &Identity) -> SqrlConversation {
        let mut conversation = self.conversation().await;
        assert_tif(&conversation.query(id, NONE).await, 0x04);
        assert_tif(&conversation.ident(id, NONE, true).await, 0x05);
        conversation
    }

    /// A browser showing the login page, its event stream past `pending`.
    pub async fn waiting_page(&self) -> WaitingPage {
        let mut browser = self.browser();
        let page = browser.open_login_page().await;
        let mut events = browser.events(&page.nut).await;
        events.expect("pending").await;
        WaitingPage {
            browser,
            page,
            events,
        }
    }

    /// Logs `id` in through the login page (a new identity is associated
    /// first) and returns the browser holding the session.
    pub async fn logged_in_browser(&self, id: &Identity, agent: &str) -> Browser {
        let mut browser = self.browser();
        browser.user_agent = agent.to_owned();
        let page = browser.open_login_page().await;
        let mut c = SqrlConversation::new(&self.http, &page.url);
        let known = c.query(id, NONE).await.tif().bits() & 1 == 1;
        c.ident(id, NONE, !known).await;
        let url = browser.pag_url(&page.nut).await;
        assert_eq!(browser.collect(&url).await.0, StatusCode::SEE_OTHER);
        browser
    }

    /// The absolute URL of an operator API path (`/identities/...`).
    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api{path}"))
    }

    /// An operator API request with [`OPERATOR_TOKEN`].
    pub fn operator(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api(path))
            .bearer_auth(OPERATOR_TOKEN)
    }

    /// The status of an operator API request with [`OPERATOR_TOKEN`] (and a
    /// JSON body).
    pub async fn operator_status(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> StatusCode {
        let mut request = self.operator(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap().status()
    }

    /// GETs an operator API path with [`OPERATOR_TOKEN`]; expects 200.
    pub async fn operator_get(&self, path: &str) -> serde_json::Value {
        let response = self.operator(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET /api{path}");
        response.json().await.unwrap()
    }
}

/// Signs `id` in on the login page `login` (a path with `rd=`) with a
/// cross-device scan; returns where the login sends the browser.
pub async fn scan_in(h: &Harness, browser: &mut Browser, login: &str, id: &Identity) -> String {
    let response = browser.get(login).await;
    assert_eq!(response.status(), StatusCode::OK, "login page {login}");
    let html = response.text().await.unwrap();
    let between = |start: &str, end: &str| {
        let from = html.find(start).unwrap() + start.len();
        html[from..from + html[from..].find(end).unwrap()].replace("&amp;", "&")
    };
    let nut = between("data-nut=\"", "\"");
    let url = between("<code id=\"url\">", "</code>");
    let mut c = SqrlConversation::new(&h.http, &url);
    let known = c.query(id, NONE).await.tif().bits() & 1 == 1;
    c.ident(id, NONE, !known).await;
    let collect = browser.pag_url(&nut).await;
    let (status, to) = browser.collect(&collect).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    to.unwrap()
}

/// Mints a nut through the SSP API of the server at `base` (`http://...`)
/// and returns its SQRL URL.
pub async fn mint_url(http: &reqwest::Client, base: &str) -> String {
    let text = text(http.get(format!("{base}/nut.sqrl"))).await;
    let nut = form_field(&text, "nut");
    format!("{}/cli.sqrl?nut={nut}", base.replace("http://", "qrl://"))
}

/// A self-signed certificate for 127.0.0.1, written to `dir` as the
/// server's TLS files; the certificate for clients to trust.
pub fn self_signed_tls(dir: &Path) -> (TlsFiles, rcgen::CertifiedKey) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    (TlsFiles { cert, key }, certified)
}

/// Starts the `sqrl-server` binary at `binary` (a test passes
/// `env!("CARGO_BIN_EXE_sqrl-server")`) on `127.0.0.1:0` with the database
/// `db` (no rate limit, [`OPERATOR_TOKEN`] for the operator API and metrics):
/// the child process and the address it listens on. Its
/// log is drained in the background so that it never blocks on a full pipe.
pub fn spawn_server_binary(binary: &str, db: &Path) -> (Child, String) {
    spawn_server(binary, &["--db".into(), db.as_os_str().to_owned()])
}

/// Starts the `sqrl-server` binary at `binary` on `127.0.0.1:0` with no rate
/// limit, [`OPERATOR_TOKEN`], and `args`: the child process and the address
/// it listens on.
pub fn spawn_server(binary: &str, args: &[std::ffi::OsString]) -> (Child, String) {
    spawn_server_as(Process::new(binary), args)
}

/// Like [`spawn_server`], with the command that starts the binary given
/// (e.g. the binary under `strace`).
pub fn spawn_server_as(mut command: Process, args: &[std::ffi::OsString]) -> (Child, String) {
    use std::io::BufRead as _;
    let mut child = command
        .args([
            "--bind",
            "127.0.0.1:0",
            "--rate-limit-per-second",
            "0",
            "--operator-token",
            OPERATOR_TOKEN,
        ])
        .args(args)
        .env("SQRL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// One `sqrl_identities` row.
type IdentityRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>, bool, bool, bool, i64);

/// Everything account-related, as rows.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    accounts: Vec<(i64, i64)>,
    identities: Vec<IdentityRow>,
    superseded: Vec<(Vec<u8>, Option<i64>)>,
    indexed_secrets: Vec<(Vec<u8>, String, Vec<u8>)>,
    sessions: i64,
    history: i64,
}

impl Snapshot {
    pub fn take(db: &Connection) -> Self {
        let count = |sql: &str| db.query_row(sql, [], |r| r.get(0)).unwrap();
        Self {
            accounts: rows(db, "SELECT id, created_at FROM accounts ORDER BY id", |r| {
                Ok((r.get(0)?, r.get(1)?))
            }),
            identities: rows(
                db,
                "SELECT idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, updated_at
                   FROM sqrl_identities ORDER BY idk",
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            ),
            superseded: rows(
                db,
                "SELECT idk, account_id FROM superseded_identities ORDER BY idk",
                |r| Ok((r.get(0)?, r.get(1)?)),
            ),
            indexed_secrets: rows(
                db,
                "SELECT idk, sin, ins_hash FROM indexed_secrets ORDER BY idk, sin",
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            ),
            sessions: count("SELECT count(*) FROM sessions"),
            history: count("SELECT count(*) FROM login_history"),
        }
    }
}

/// Every row `sql` selects, as the value `row` makes of it.
pub fn rows<T>(
    db: &Connection,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    db.prepare(sql)
        .unwrap()
        .query_map([], row)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Waits until `done` holds, checking every 20 ms; fails the test, naming
/// `what`, if it does not hold `within`.
pub async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
