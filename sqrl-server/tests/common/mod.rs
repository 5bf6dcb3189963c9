//! Test harness: an in-process server on 127.0.0.1:0 with a temporary SQLite
//! file, a browser that keeps its cookies by hand, and a SQRL client built on
//! `sqrl_core` keys and message types that can also misbehave on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use rusqlite::Connection;
use sqrl_core::base64url;
use sqrl_core::keys::{
    IdentityKey, IdentityLockKey, IdentityMasterKey, IdentityUnlockKey, RandomLockKey,
    ServerUnlockKey, SiteKey, UnlockRequestSigningKey,
};
use sqrl_core::msg::{ClientOptions, ClientRequest, Command, RequestBody, ServerReply, Tif};
use sqrl_core::rand_core::OsRng;
use sqrl_core::url::SqrlUrl;
use sqrl_server::RunningServer;
use sqrl_server::config::Config;
use tempfile::TempDir;

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

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().join("sqrl.db"));
        // Tests send many requests from one address.
        config.rate_limit = None;
        configure(&mut config);
        let server = sqrl_server::start(config).await.unwrap();
        Self {
            server,
            dir,
            http: http_client(),
        }
    }

    pub fn base(&self) -> String {
        self.server.base_url()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("sqrl.db")
    }

    /// A direct connection to the database, to check rows.
    pub fn db(&self) -> Connection {
        Connection::open(self.db_path()).unwrap()
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.http, &self.base())
    }

    /// The account tables, to check that nothing changed.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.db())
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |row| row.get(0)).unwrap()
    }
}

/// One `sqrl_identities` row.
type IdentityRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>, bool, bool, bool, i64);

/// Everything account-related, as rows.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    accounts: Vec<(i64, i64)>,
    identities: Vec<IdentityRow>,
    superseded: Vec<(Vec<u8>, Option<i64>)>,
    sessions: i64,
    history: i64,
}

impl Snapshot {
    pub fn take(db: &Connection) -> Self {
        let accounts = db
            .prepare("SELECT id, created_at FROM accounts ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let identities = db
            .prepare(
                "SELECT idk, account_id, suk, vuk, disabled, sqrl_only, hardlock, updated_at
                   FROM sqrl_identities ORDER BY idk",
            )
            .unwrap()
            .query_map([], |r| {
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
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let superseded = db
            .prepare("SELECT idk, account_id FROM superseded_identities ORDER BY idk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        Self {
            accounts,
            identities,
            superseded,
            sessions: db
                .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
                .unwrap(),
            history: db
                .query_row("SELECT count(*) FROM login_history", [], |r| r.get(0))
                .unwrap(),
        }
    }
}

/// A SQRL identity (only what the protocol needs; no S4 storage).
pub struct Identity {
    pub iuk: IdentityUnlockKey,
    pub imk: IdentityMasterKey,
    pub ilk: IdentityLockKey,
}

impl Identity {
    pub fn new() -> Self {
        let iuk = IdentityUnlockKey::generate(&mut OsRng);
        let imk = iuk.master_key();
        let ilk = iuk.lock_key();
        Self { iuk, imk, ilk }
    }

    pub fn site_key(&self, url: &SqrlUrl) -> SiteKey {
        self.imk.site_key(url.site_key_string())
    }

    pub fn idk(&self, url: &SqrlUrl) -> IdentityKey {
        self.site_key(url).public_key()
    }

    /// A fresh SUK/VUK pair for a new association.
    pub fn lock(&self) -> (ServerUnlockKey, sqrl_core::keys::VerifyUnlockKey) {
        RandomLockKey::generate(&mut OsRng).lock(&self.ilk).unwrap()
    }

    pub fn ursk(&self, suk: &ServerUnlockKey) -> UnlockRequestSigningKey {
        self.iuk.unlock_request_signing_key(suk).unwrap()
    }
}

/// One client-side conversation: keeps the `server=` value to echo and where
/// to POST next.
pub struct SqrlConversation {
    pub http: reqwest::Client,
    pub url: SqrlUrl,
    /// The next `server=` value.
    pub server: String,
    /// Where the next POST goes.
    pub post_url: String,
    /// Sent as X-Forwarded-For (with a trusted-proxy config) to pose as
    /// another address.
    pub forwarded_for: Option<String>,
    pub last_reply: Option<ServerReply>,
}

impl SqrlConversation {
    pub fn new(http: &reqwest::Client, url: &str) -> Self {
        let parsed = SqrlUrl::parse(url).unwrap();
        Self {
            http: http.clone(),
            server: base64url::encode(url),
            post_url: parsed.post_url(),
            url: parsed,
            forwarded_for: None,
            last_reply: None,
        }
    }

    pub fn posing_as(mut self, ip: &str) -> Self {
        self.forwarded_for = Some(ip.to_owned());
        self
    }

    /// Signs `client` over the current `server=` value and POSTs it.
    pub async fn send(
        &mut self,
        client: &ClientRequest,
        ids: &SiteKey,
        pids: Option<&SiteKey>,
        urs: Option<&UnlockRequestSigningKey>,
    ) -> ServerReply {
        let body = RequestBody::sign(client, &self.server, ids, pids, urs).unwrap();
        self.send_form(body.to_form()).await
    }

    /// POSTs a form body as is and follows the reply.
    pub async fn send_form(&mut self, form: String) -> ServerReply {
        let (status, text) = self.post_raw(form).await;
        assert_eq!(status, StatusCode::OK, "reply body: {text}");
        let reply = ServerReply::parse(&text).unwrap_or_else(|e| panic!("bad reply {text:?}: {e}"));
        self.server = text;
        self.post_url = self.url.post_url_for_query(reply.qry()).unwrap();
        self.last_reply = Some(reply.clone());
        reply
    }

    pub async fn post_raw(&self, form: String) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(&self.post_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        if let Some(ip) = &self.forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    pub async fn query(&mut self, id: &Identity, options: ClientOptions) -> ServerReply {
        let key = id.site_key(&self.url);
        let client = ClientRequest::builder(Command::Query, key.public_key())
            .options(options)
            .build()
            .unwrap();
        self.send(&client, &key, None, None).await
    }

    /// `ident` of a new identity (with suk/vuk) or a known one.
    pub async fn ident(&mut self, id: &Identity, options: ClientOptions, new: bool) -> ServerReply {
        let key = id.site_key(&self.url);
        let mut builder = ClientRequest::builder(Command::Ident, key.public_key()).options(options);
        if new {
            let (suk, vuk) = id.lock();
            builder = builder.lock(suk, vuk);
        }
        let client = builder.build().unwrap();
        self.send(&client, &key, None, None).await
    }
}

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
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() && !text.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
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

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .request(reqwest::Method::POST, path)
            .send()
            .await
            .unwrap();
        self.remember(&response);
        response
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
            response,
            buffer: String::new(),
        }
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
}

/// A Server-Sent Events reader.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// One `{"state", "url"}` event.
#[derive(Debug, Clone)]
pub struct PageEvent {
    pub state: String,
    pub url: Option<String>,
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
                    at: Instant::now(),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk.unwrap() {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
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

pub fn tif(reply: &ServerReply) -> u32 {
    reply.tif().bits()
}

pub const NONE: ClientOptions = ClientOptions::NONE;

pub fn opts(list: &[ClientOptions]) -> ClientOptions {
    list.iter().fold(ClientOptions::NONE, |acc, o| acc | *o)
}

pub fn assert_tif(reply: &ServerReply, expected: u32) {
    assert_eq!(
        tif(reply),
        expected,
        "expected tif {expected:x}, got {:?}",
        reply.tif()
    );
}

pub fn is_failure(reply: &ServerReply) -> bool {
    reply.tif().contains(Tif::COMMAND_FAILED)
}
