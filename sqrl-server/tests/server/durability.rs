//! The durability contract (`sqrl-server/README.md`, "What a crash may
//! lose"), tested on the real binary:
//! - killed with SIGKILL under load, it loses no association and no session
//!   it acknowledged, and what it loses (logins in flight) is recovered by
//!   scanning again;
//! - under `strace`, every acknowledged change to durable state is synced
//!   before its reply leaves (what makes it hold against power loss, which a
//!   test cannot cut), and logins in flight are never synced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::{
    Browser, Identity, NONE, SqrlConversation, assert_tif, http_client, spawn_server,
    spawn_server_as, tif,
};
use reqwest::StatusCode;

const BINARY: &str = env!("CARGO_BIN_EXE_sqrl-server");

fn db_args(db: &Path) -> Vec<OsString> {
    vec!["--db".into(), db.as_os_str().to_owned()]
}

/// A login through the login page, to the session cookie: the identity's
/// key once its `ident` was acknowledged, and the browser once its session
/// cookie was.
async fn page_login(http: &reqwest::Client, base: &str) -> (Identity, Browser) {
    let id = Identity::new();
    let mut browser = Browser::new(http, base);
    let page = browser.open_login_page().await;
    let mut c = SqrlConversation::new(http, &page.url);
    assert_tif(&c.query(&id, NONE).await, 0x04);
    assert_tif(&c.ident(&id, NONE, true).await, 0x05);
    let link = browser.pag_url(&page.nut).await;
    assert_eq!(browser.collect(&link).await.0, StatusCode::SEE_OTHER);
    assert!(browser.has_cookie("sqrl_session"));
    (id, browser)
}

/// The same browser, cookies and all, pointed at a restarted server.
fn moved(browser: &Browser, http: &reqwest::Client, base: &str) -> Browser {
    let mut again = Browser::new(http, base);
    again.cookies = browser.cookies.clone();
    again
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged_and_a_pending_login_is_scanned_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let (child, addr) = spawn_server(BINARY, &db_args(&db));
    let mut first = Killed(child);
    let http = http_client();
    let base = format!("http://{addr}");

    // Acknowledged: 24 logins, 8 at a time, each to its session cookie.
    let mut done = Vec::new();
    for _ in 0..3 {
        let batch = (0..8).map(|_| page_login(&http, &base));
        done.extend(futures_util::future::join_all(batch).await);
    }
    // In flight when the process dies: a page whose code was scanned, and
    // one whose login was confirmed on the phone but not yet collected.
    let mut scanned = Browser::new(&http, &base);
    let scanned_page = scanned.open_login_page().await;
    let scanned_id = Identity::new();
    let mut scanned_phone = SqrlConversation::new(&http, &scanned_page.url);
    assert_tif(&scanned_phone.query(&scanned_id, NONE).await, 0x04);
    let mut confirmed = Browser::new(&http, &base);
    let confirmed_page = confirmed.open_login_page().await;
    let confirmed_id = Identity::new();
    let mut confirmed_phone = SqrlConversation::new(&http, &confirmed_page.url);
    assert_tif(&confirmed_phone.query(&confirmed_id, NONE).await, 0x04);
    assert_tif(
        &confirmed_phone.ident(&confirmed_id, NONE, true).await,
        0x05,
    );
    // And logins still arriving as it dies.
    let mut arriving = Vec::new();
    for _ in 0..8 {
        let http = http.clone();
        let base = base.clone();
        arriving.push(tokio::spawn(async move {
            let mut c = SqrlConversation::new(&http, &common::mint_url(&http, &base).await);
            let id = Identity::new();
            c.query(&id, NONE).await;
            let form = c.form(&common::Request::ident(&id).new_lock());
            let _ = http
                .post(c.post_url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    for task in arriving {
        // Some die with the server mid-request: that is the point.
        let _ = task.await;
    }

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let (child, addr) = spawn_server(BINARY, &db_args(&db));
    // Stopped even if an assertion below fails.
    let _restarted = Killed(child);
    let base = format!("http://{addr}");
    for (id, browser) in &done {
        // The association: the identity is known, and logs in again.
        let mut phone = SqrlConversation::new(&http, &common::mint_url(&http, &base).await);
        assert_tif(&phone.query(id, NONE).await, 0x05);
        // The session: its cookie still opens the account page.
        let mut browser = moved(browser, &http, &base);
        assert_eq!(browser.get("/account").await.status(), StatusCode::OK);
    }

    // The pending logins are gone, not half-kept: the pages' codes are
    // dead, the phone's next request is refused, nothing logs in.
    for (browser, page) in [(&scanned, &scanned_page), (&confirmed, &confirmed_page)] {
        let browser = moved(browser, &http, &base);
        let status = browser.pag(&page.nut).await.status();
        assert_eq!(status, StatusCode::NOT_FOUND, "a lost attempt is not found");
    }
    let stale = scanned_page.url.replace(
        &scanned_page.url[..scanned_page.url.find("/cli.sqrl").unwrap()],
        &base.replace("http://", "qrl://"),
    );
    let mut stale_phone = SqrlConversation::new(&http, &stale);
    let refused = stale_phone.ident(&scanned_id, NONE, true).await;
    assert_eq!(tif(&refused) & 0x40, 0x40, "the lost nut is refused");
    let mut confirmed_browser = moved(&confirmed, &http, &base);
    assert_eq!(
        confirmed_browser.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "a confirmed but uncollected login is not a session"
    );

    // The user scans again, on a fresh page, and is in.
    for id in [&scanned_id, &confirmed_id] {
        let mut browser = Browser::new(&http, &base);
        let page = browser.open_login_page().await;
        let mut phone = SqrlConversation::new(&http, &page.url);
        let known = tif(&phone.query(id, NONE).await) & 0x01 == 0x01;
        assert_eq!(
            known,
            std::ptr::eq(id, &confirmed_id),
            "acknowledged ident kept"
        );
        assert_tif(&phone.ident(id, NONE, !known).await, 0x05);
        let link = browser.pag_url(&page.nut).await;
        assert_eq!(browser.collect(&link).await.0, StatusCode::SEE_OTHER);
        assert_eq!(browser.get("/account").await.status(), StatusCode::OK);
    }
}

/// A server process, killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `strace` output: each completed `fsync`/`fdatasync`, with its file.
fn syncs(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("sync(") && line.trim_end().ends_with("= 0"))
        .map(str::to_owned)
        .collect()
}

/// Syncs of the database's write-ahead log.
fn wal_syncs(trace: &Path) -> usize {
    syncs(trace)
        .iter()
        .filter(|line| line.contains("crash.db-wal>"))
        .count()
}

/// The server traced by `strace` is its child; stopped by SIGKILL, since the
/// tracer's own death would leave it running.
struct Traced {
    strace: Child,
}

impl Drop for Traced {
    fn drop(&mut self) {
        let children = format!("/proc/{0}/task/{0}/children", self.strace.id());
        if let Ok(pids) = std::fs::read_to_string(children) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_strace, ignore = "needs strace: apt-get install strace")]
async fn acknowledged_writes_are_synced_before_their_reply_and_logins_in_flight_never() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let trace = dir.path().join("syscalls");
    let mut strace = Command::new("strace");
    // -f: the writer is a thread; -y: file names; output is written line by
    // line as each call returns, before the traced thread goes on.
    strace
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "signal=none",
            "-o",
        ])
        .arg(&trace)
        .arg(BINARY);
    let (child, addr) = spawn_server_as(strace, &db_args(&db));
    let _traced = Traced { strace: child };
    let http = http_client();
    let base = format!("http://{addr}");
    let known = Identity::new();
    {
        let mut c = SqrlConversation::new(&http, &common::mint_url(&http, &base).await);
        assert_tif(&c.query(&known, NONE).await, 0x04);
        assert_tif(&c.ident(&known, NONE, true).await, 0x05);
    }
    assert!(
        wal_syncs(&trace) > 0,
        "the trace sees syncs: {:?}",
        syncs(&trace)
    );

    // Logins in flight: login pages, SSP-API nuts, and queries of a new
    // identity and of a known one.
    let before = wal_syncs(&trace);
    for _ in 0..20 {
        let mut browser = Browser::new(&http, &base);
        browser.open_login_page().await;
        let mut c = SqrlConversation::new(&http, &browser.mint_url().await);
        assert_tif(&c.query(&Identity::new(), NONE).await, 0x04);
        let mut c = SqrlConversation::new(&http, &browser.mint_url().await);
        assert_tif(&c.query(&known, NONE).await, 0x05);
    }
    assert_eq!(
        wal_syncs(&trace),
        before,
        "logins in flight cost no sync: {:?}",
        &syncs(&trace)[before..]
    );

    // Acknowledged changes: each reply comes after a sync of the log that
    // holds its change.
    for _ in 0..5 {
        let before = wal_syncs(&trace);
        let mut c = SqrlConversation::new(&http, &common::mint_url(&http, &base).await);
        let id = Identity::new();
        assert_tif(&c.query(&id, NONE).await, 0x04);
        assert_tif(&c.ident(&id, NONE, true).await, 0x05);
        assert!(
            wal_syncs(&trace) > before,
            "a new association was acknowledged before any sync"
        );
    }
    let before = wal_syncs(&trace);
    let (_, browser) = page_login(&http, &base).await;
    assert!(browser.has_cookie("sqrl_session"));
    assert!(
        wal_syncs(&trace) >= before + 2,
        "the association and the session were each synced before their replies"
    );
}
