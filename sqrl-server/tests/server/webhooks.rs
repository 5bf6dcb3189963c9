//! Login events as the site's application receives them: the real server
//! binary POSTs signed webhooks to a receiver in the test (a small axum
//! server) that checks each signature with the verification recipe of the
//! server's README, written here from that recipe and not from the server's
//! signing code. On SQLite and on PostgreSQL:
//! - each change (logins, logout, revoke, disable, enable, rekey, the user's
//!   and the operator's removal) sends exactly its event, once;
//! - a tampered body or signature is rejected by the receiver;
//! - an endpoint that fails twice gets the event on the third attempt;
//! - a server stopped with SIGTERM in the middle of deliveries and started
//!   again delivers every event exactly once;
//! - killed with SIGKILL in the middle of a delivery, it sends that event
//!   again after the restart, with the same `Webhook-Id` (at least once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{
    Browser, Identity, NONE, OPERATOR_TOKEN, Request, SqrlConversation, TestDatabase, assert_tif,
    http_client, spawn_server,
};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;
use sqrl_core::msg::{ClientOptions, Command as SqrlCommand};

const BINARY: &str = env!("CARGO_BIN_EXE_sqrl-server");

/// The endpoint's secret: `whsec_` and the base64 of 32 bytes.
const SECRET: &str = "whsec_c3FybC13ZWJob29rLXRlc3Qtc2VjcmV0LWtleSE=";

/// Longest any test waits for an event to arrive (a guard against hanging,
/// not a measurement).
const PATIENCE: Duration = Duration::from_secs(60);

// --- the receiver ----------------------------------------------------------------

/// One verified request the receiver answered (or is answering).
#[derive(Debug, Clone)]
struct Arrival {
    id: String,
    body: Value,
    /// The status the receiver chose for it.
    status: u16,
    /// Whether that answer has been sent (after the delay).
    answered: bool,
}

#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many more verified requests.
    fail: AtomicUsize,
    /// Wait this long (ms) before answering.
    delay_ms: AtomicU64,
    arrivals: Mutex<Vec<Arrival>>,
    rejected: AtomicUsize,
    /// The headers and body of every verified request, to replay tampered.
    raw: Mutex<Vec<(HeaderMap, Bytes)>>,
}

struct Receiver {
    url: String,
    behaviour: Arc<Behaviour>,
}

/// The README's recipe: the key is the base64 after `whsec_`; the signed
/// content is `{Webhook-Id}.{Webhook-Timestamp}.{body}`; any `v1,<base64>`
/// in `Webhook-Signature` must be its HMAC-SHA256; the timestamp must be
/// within five minutes of now.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<(String, Value), &'static str> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or("missing header")
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let sent: i64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - sent).abs() > 300 {
        return Err("timestamp too far from now");
    }
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let matches = signatures.split(' ').any(|entry| {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(candidate) = STANDARD.decode(encoded) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&signed);
        // Constant time.
        mac.verify_slice(&candidate).is_ok()
    });
    if !matches {
        return Err("no matching signature");
    }
    let body = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    Ok((id.to_owned(), body))
}

async fn hook(
    State(behaviour): State<Arc<Behaviour>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (id, json) = match verify(&headers, &body) {
        Ok(verified) => verified,
        Err(_) => {
            behaviour.rejected.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED;
        }
    };
    let failing = behaviour
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    behaviour.raw.lock().unwrap().push((headers, body));
    let index = {
        let mut arrivals = behaviour.arrivals.lock().unwrap();
        arrivals.push(Arrival {
            id,
            body: json,
            status: status.as_u16(),
            answered: false,
        });
        arrivals.len() - 1
    };
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    behaviour.arrivals.lock().unwrap()[index].answered = true;
    status
}

impl Receiver {
    async fn start() -> Self {
        let behaviour = Arc::new(Behaviour::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(Arc::clone(&behaviour));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hook"),
            behaviour,
        }
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.behaviour.arrivals.lock().unwrap().clone()
    }

    /// The events accepted (answered 2xx), by id, with how often.
    fn accepted(&self) -> BTreeMap<String, (Value, usize)> {
        let mut accepted = BTreeMap::new();
        for arrival in self.arrivals().into_iter().filter(|a| a.status < 300) {
            accepted.entry(arrival.id).or_insert((arrival.body, 0)).1 += 1;
        }
        accepted
    }

    /// Waits until `done` holds for the arrivals.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Arrival]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(&self.arrivals()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited in vain for {what}: {:#?}",
                self.arrivals()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` distinct events were accepted.
    async fn wait_accepted(&self, n: usize) {
        self.wait_for(&format!("{n} accepted events"), |arrivals| {
            let mut ids: Vec<&str> = arrivals
                .iter()
                .filter(|a| a.status < 300)
                .map(|a| a.id.as_str())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len() >= n
        })
        .await;
    }
}

// --- the server --------------------------------------------------------------------

/// A server process, killed if a test ends without stopping it.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on `db` with `receiver` as its one endpoint, a
    /// retry base of one second and a POST timeout of `timeout` seconds.
    fn start(dir: &Path, db: &str, receiver: &Receiver, timeout: u64) -> Self {
        Self::start_with(
            dir,
            db,
            receiver,
            &["--webhook-timeout", &timeout.to_string()],
        )
    }

    /// The same, with `extra` arguments.
    fn start_with(dir: &Path, db: &str, receiver: &Receiver, extra: &[&str]) -> Self {
        let config = dir.join("sqrl.toml");
        std::fs::write(
            &config,
            format!(
                "[[webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
                receiver.url
            ),
        )
        .unwrap();
        let args: Vec<OsString> = vec![
            "--config".into(),
            config.into_os_string(),
            "--db".into(),
            db.into(),
            "--webhook-retry-base".into(),
            "1".into(),
        ];
        let args: Vec<OsString> = args
            .into_iter()
            .chain(extra.iter().map(OsString::from))
            .collect();
        let (child, addr) = spawn_server(BINARY, &args);
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

/// Where a test's server keeps its data: a SQLite file or a PostgreSQL schema.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase, tempfile::TempDir),
}

impl Db {
    async fn new(postgres: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if postgres {
            Db::Postgres(TestDatabase::create().await, dir)
        } else {
            Db::Sqlite(dir)
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Db::Sqlite(dir) | Db::Postgres(_, dir) => dir.path(),
        }
    }

    fn arg(&self) -> String {
        match self {
            Db::Sqlite(dir) => dir.path().join("sqrl.db").display().to_string(),
            Db::Postgres(database, _) => database.url(),
        }
    }

    async fn drop(self) {
        if let Db::Postgres(database, _) = self {
            database.drop().await;
        }
    }
}

// --- what a person does ------------------------------------------------------------

/// Logs `id` in through the login page as a browser calling itself `agent`
/// (associating it first if it is new).
async fn log_in(http: &reqwest::Client, base: &str, id: &Identity, agent: &str) -> Browser {
    let mut browser = Browser::new(http, base);
    browser.user_agent = agent.to_owned();
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(http, &page.url);
    let known = c.query(id, NONE).await.tif().bits() & 1 == 1;
    assert_tif(&c.ident(id, NONE, !known).await, 0x05);
    let link = browser.pag_url(&page.nut).await;
    assert_eq!(browser.collect(&link).await.0, StatusCode::SEE_OTHER);
    browser
}

async fn conversation(http: &reqwest::Client, base: &str) -> SqrlConversation {
    SqrlConversation::new(http, &common::mint_url(http, base).await)
}

/// The session id of the login event of the browser called `agent`.
fn session_of(receiver: &Receiver, agent: &str) -> i64 {
    receiver
        .accepted()
        .values()
        .find(|(body, _)| body["type"] == "login" && body["data"]["user_agent"] == agent)
        .unwrap_or_else(|| panic!("no login of {agent}"))
        .0["data"]["session"]
        .as_i64()
        .unwrap()
}

/// What a test compares: the type and the data fields that tell events of
/// one type apart.
fn summary(body: &Value) -> String {
    let data = &body["data"];
    match body["type"].as_str().unwrap() {
        "login" => format!("login {}", data["user_agent"].as_str().unwrap()),
        "session.revoked" => format!("session.revoked {}", data["reason"].as_str().unwrap()),
        "identity.removed" => format!("identity.removed by {}", data["by"].as_str().unwrap()),
        other => other.to_owned(),
    }
}

// --- the tests ---------------------------------------------------------------------

async fn each_change_sends_its_event_once(postgres: bool) {
    let receiver = Receiver::start().await;
    let db = Db::new(postgres).await;
    let server = Server::start(db.dir(), &db.arg(), &receiver, 5);
    let http = http_client();
    let base = server.base.clone();

    let id = Identity::new();
    let mut first = log_in(&http, &base, &id, "First").await;
    let first_cookie = first.cookie("sqrl_session");
    log_in(&http, &base, &id, "Second").await;
    receiver.wait_accepted(2).await;
    let second_session = session_of(&receiver, "Second");
    let first_session = session_of(&receiver, "First");

    // The first browser revokes the second's session, then logs out.
    let revoke = format!("/account/sessions/{second_session}/revoke");
    assert_eq!(first.post(&revoke).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.post("/logout").await.status(), StatusCode::SEE_OTHER);

    // Disabling ends the third browser's session.
    log_in(&http, &base, &id, "Third").await;
    let mut c = conversation(&http, &base).await;
    assert_tif(&c.query(&id, NONE).await, 0x05);
    let reply = c.run(Request::new(SqrlCommand::Disable, &id)).await;
    assert_tif(&reply, 0x0D);
    let suk = *reply.suk().unwrap();
    let mut c = conversation(&http, &base).await;
    c.query(&id, NONE).await;
    assert_tif(
        &c.run(Request::new(SqrlCommand::Enable, &id).urs(&id, suk))
            .await,
        0x05,
    );

    // Rekey, then the user removes the new identity.
    let new = Identity::new();
    let mut c = conversation(&http, &base).await;
    let reply = c.run(Request::query(&new).previous(&id)).await;
    assert_tif(&reply, 0x06);
    let old_suk = *reply.suk().unwrap();
    assert_tif(
        &c.run(
            Request::ident(&new)
                .previous(&id)
                .new_lock()
                .urs(&id, old_suk),
        )
        .await,
        0x05,
    );
    let mut c = conversation(&http, &base).await;
    let reply = c.query(&new, ClientOptions::SUK).await;
    let new_suk = *reply.suk().unwrap();
    assert_tif(
        &c.run(Request::new(SqrlCommand::Remove, &new).urs(&new, new_suk))
            .await,
        0x04,
    );

    // The operator removes another account's identity while it is logged in.
    let other = Identity::new();
    let browser = log_in(&http, &base, &other, "Fourth").await;
    let idk = other.idk(&SqrlConversation::new(&http, &common::mint_url(&http, &base).await).url);
    let removed = http
        .delete(format!("{base}/api/identities/{}", idk.to_base64url()))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    drop(browser);

    let expected = [
        "login First",
        "login Second",
        "session.revoked user",
        "logout",
        "login Third",
        "identity.disabled",
        "session.revoked identity-disabled",
        "identity.enabled",
        "identity.replaced",
        "identity.removed by user",
        "login Fourth",
        "session.revoked identity-removed",
        "identity.removed by operator",
    ];
    receiver.wait_accepted(expected.len()).await;
    // Time for a stray or repeated delivery to show (several polls).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), expected.len(), "each once: {arrivals:#?}");
    assert!(arrivals.iter().all(|a| a.status < 300));
    let mut got: Vec<String> = arrivals.iter().map(|a| summary(&a.body)).collect();
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want);

    // The details: sessions named, one account for the first identity's
    // events, another for the operator's removal; the body's id is the
    // Webhook-Id; no secret in any body.
    let accepted = receiver.accepted();
    let by_summary = |s: &str| -> Value {
        accepted
            .values()
            .map(|(body, _)| body)
            .find(|body| summary(body) == s)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_summary("session.revoked user")["data"]["session"],
        second_session
    );
    assert_eq!(by_summary("logout")["data"]["session"], first_session);
    let account = by_summary("login First")["account"].clone();
    assert!(account.is_string());
    for s in expected.iter().take(10) {
        assert_eq!(by_summary(s)["account"], account, "{s}");
    }
    let other_account = by_summary("login Fourth")["account"].clone();
    assert_ne!(other_account, account);
    assert_eq!(
        by_summary("identity.removed by operator")["account"],
        other_account
    );
    let login = by_summary("login First");
    assert_eq!(login["data"]["method"], "cross-device");
    assert_eq!(login["data"]["ip"], "127.0.0.1");
    assert!(login["occurred_at"].as_str().unwrap().ends_with('Z'));
    for arrival in &arrivals {
        assert_eq!(arrival.body["id"], arrival.id.as_str());
        let text = arrival.body.to_string();
        assert!(!text.contains(&first_cookie), "{text}");
        assert!(!text.contains(OPERATOR_TOKEN));
    }
    assert_eq!(receiver.behaviour.rejected.load(Ordering::SeqCst), 0);
    drop(server);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_sends_its_event_once_sqlite() {
    each_change_sends_its_event_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn each_change_sends_its_event_once_postgres() {
    each_change_sends_its_event_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_rejects_a_tampered_body_or_signature() {
    let receiver = Receiver::start().await;
    let db = Db::new(false).await;
    let server = Server::start(db.dir(), &db.arg(), &receiver, 5);
    let http = http_client();
    log_in(&http, &server.base, &Identity::new(), "Genuine").await;
    receiver.wait_accepted(1).await;
    let (headers, body) = receiver.behaviour.raw.lock().unwrap()[0].clone();

    let replay = |headers: HeaderMap, body: Vec<u8>| {
        let http = http.clone();
        let url = receiver.url.clone();
        async move {
            let mut request = http.post(url).body(body);
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                request = request.header(name, headers.get(name).unwrap().to_str().unwrap());
            }
            request.send().await.unwrap().status()
        }
    };
    // As sent: accepted (a receiver drops it as a repeat by its id).
    assert_eq!(
        replay(headers.clone(), body.to_vec()).await,
        StatusCode::NO_CONTENT
    );
    // The body changed by one character: rejected.
    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("Genuine", "Genuina");
    assert_eq!(
        replay(headers.clone(), tampered.into_bytes()).await,
        StatusCode::UNAUTHORIZED
    );
    // Another id under the same signature: rejected.
    let mut other_id = headers.clone();
    other_id.insert("webhook-id", "evt_someone_else".parse().unwrap());
    assert_eq!(
        replay(other_id, body.to_vec()).await,
        StatusCode::UNAUTHORIZED
    );
    // A signature flipped in one byte: rejected.
    let signature = headers.get("webhook-signature").unwrap().to_str().unwrap();
    let mut mac = STANDARD
        .decode(signature.strip_prefix("v1,").unwrap())
        .unwrap();
    mac[0] ^= 1;
    let mut flipped = headers.clone();
    flipped.insert(
        "webhook-signature",
        format!("v1,{}", STANDARD.encode(&mac)).parse().unwrap(),
    );
    assert_eq!(
        replay(flipped, body.to_vec()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(receiver.behaviour.rejected.load(Ordering::SeqCst), 3);
    drop(server);
}

/// The metrics the server reports about its webhooks.
async fn webhook_metrics(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    scrape
        .samples
        .into_iter()
        .filter(|sample| sample.metric.starts_with("sqrl_webhook"))
        .map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("{other:?}"),
            };
            (sample.metric, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_gets_the_event_on_the_third_attempt() {
    let receiver = Receiver::start().await;
    receiver.behaviour.fail.store(2, Ordering::SeqCst);
    let db = Db::new(false).await;
    let server = Server::start(db.dir(), &db.arg(), &receiver, 5);
    let http = http_client();
    log_in(&http, &server.base, &Identity::new(), "Patient").await;
    receiver.wait_accepted(1).await;
    let arrivals = receiver.arrivals();
    let statuses: Vec<u16> = arrivals.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 500, 204]);
    // The same event each time.
    assert!(
        arrivals
            .iter()
            .all(|a| a.id == arrivals[0].id && a.body == arrivals[0].body)
    );
    // Visible in the metrics (the gauge once the worker has looked again).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = webhook_metrics(&http, &server.base).await;
        let seen = |name: &str| metrics.get(name).copied().unwrap_or(-1.0);
        if seen("sqrl_webhook_outbox_pending") == 0.0 {
            assert_eq!(seen("sqrl_webhook_retries_total"), 2.0, "{metrics:?}");
            assert_eq!(seen("sqrl_webhook_deliveries_total"), 1.0, "{metrics:?}");
            assert_eq!(seen("sqrl_webhook_dead_total"), 0.0, "{metrics:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Recorded as the worker saw it (the gauge above is set after the
    // outcome is recorded): three attempts, delivered.
    let conn = rusqlite::Connection::open(db.dir().join("sqrl.db")).unwrap();
    let (attempts, status): (i64, String) = conn
        .query_row("SELECT attempts, status FROM webhook_outbox", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((attempts, status.as_str()), (3, "delivered"));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_2xx_leaves_a_dead_event() {
    let receiver = Receiver::start().await;
    receiver.behaviour.fail.store(usize::MAX, Ordering::SeqCst);
    let db = Db::new(false).await;
    let server = Server::start_with(
        db.dir(),
        &db.arg(),
        &receiver,
        &["--webhook-max-attempts", "2"],
    );
    let http = http_client();
    log_in(&http, &server.base, &Identity::new(), "Unlucky").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = webhook_metrics(&http, &server.base).await;
        let seen = |name: &str| metrics.get(name).copied().unwrap_or(-1.0);
        if seen("sqrl_webhook_outbox_dead") == 1.0 {
            assert_eq!(seen("sqrl_webhook_dead_total"), 1.0, "{metrics:?}");
            assert_eq!(seen("sqrl_webhook_retries_total"), 1.0, "{metrics:?}");
            assert_eq!(seen("sqrl_webhook_outbox_pending"), 0.0, "{metrics:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two attempts, then no more; the operator API shows it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.arrivals().len(), 2);
    let outbox: Value = http
        .get(format!("{}/api/webhooks", server.base))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outbox, serde_json::json!({"pending": 0, "dead": 1}));
    drop(server);
}

async fn a_restart_in_the_middle_of_deliveries_delivers_each_event_once(postgres: bool) {
    let receiver = Receiver::start().await;
    // Slow, and failing at first: deliveries are in flight, and some due
    // again, when the server is stopped.
    receiver.behaviour.fail.store(2, Ordering::SeqCst);
    receiver.behaviour.delay_ms.store(2000, Ordering::SeqCst);
    let db = Db::new(postgres).await;
    let mut server = Server::start(db.dir(), &db.arg(), &receiver, 5);
    let http = http_client();
    let base = server.base.clone();
    for n in 0..3 {
        let mut browser = log_in(&http, &base, &Identity::new(), &format!("Browser {n}")).await;
        assert_eq!(
            browser.post("/logout").await.status(),
            StatusCode::SEE_OTHER
        );
    }
    receiver
        .wait_for("deliveries in flight", |arrivals| arrivals.len() >= 3)
        .await;
    // What the test is about: an accepted delivery whose answer the server
    // has not yet had when it is told to stop.
    let in_flight = receiver
        .arrivals()
        .iter()
        .filter(|a| a.status < 300 && !a.answered)
        .count();
    server.signal("-TERM");
    assert!(in_flight > 0, "{:#?}", receiver.arrivals());
    assert!(receiver.accepted().len() < 6, "some left to deliver");

    receiver.behaviour.delay_ms.store(0, Ordering::SeqCst);
    let _server = Server::start(db.dir(), &db.arg(), &receiver, 5);
    receiver.wait_accepted(6).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 6, "{accepted:#?}");
    for (id, (body, times)) in &accepted {
        assert_eq!(*times, 1, "{id} accepted {times} times: {body}");
    }
    let mut types: Vec<&str> = accepted
        .values()
        .map(|(b, _)| b["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["login", "login", "login", "logout", "logout", "logout"]
    );
    // The two failures were tried again, the same events.
    let arrivals = receiver.arrivals();
    let failed: Vec<&Arrival> = arrivals.iter().filter(|a| a.status >= 500).collect();
    assert_eq!(failed.len(), 2);
    for arrival in failed {
        assert!(accepted.contains_key(&arrival.id));
    }
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_deliveries_delivers_each_event_once_sqlite() {
    a_restart_in_the_middle_of_deliveries_delivers_each_event_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn a_restart_in_the_middle_of_deliveries_delivers_each_event_once_postgres() {
    a_restart_in_the_middle_of_deliveries_delivers_each_event_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_delivery_it_sends_the_event_again_with_the_same_id() {
    let receiver = Receiver::start().await;
    // The receiver takes the event, but answers too late for the server,
    // which dies before it hears back.
    receiver.behaviour.delay_ms.store(3000, Ordering::SeqCst);
    let db = Db::new(false).await;
    let mut server = Server::start(db.dir(), &db.arg(), &receiver, 4);
    let http = http_client();
    log_in(&http, &server.base, &Identity::new(), "Interrupted").await;
    receiver
        .wait_for("the delivery in flight", |arrivals| arrivals.len() == 1)
        .await;
    server.signal("-KILL");
    receiver.behaviour.delay_ms.store(0, Ordering::SeqCst);

    // After the restart, once the dead process's lease has run out: the
    // same event again.
    let _server = Server::start(db.dir(), &db.arg(), &receiver, 4);
    receiver
        .wait_for("the delivery again", |arrivals| arrivals.len() == 2)
        .await;
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals[0].id, arrivals[1].id, "the same Webhook-Id");
    assert_eq!(arrivals[0].body, arrivals[1].body);
    // Deduplicated by id, one event.
    assert_eq!(receiver.accepted().len(), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.arrivals().len(), 2, "and then no more");
}
