//! Several instances on one PostgreSQL database, behind a real load
//! balancer: three `sqrl-server` processes and nginx (round robin, event
//! streams passed through unbuffered), so the steps of one login land on
//! different instances, and one instance is killed mid-run.
//!
//! Needs PostgreSQL (`SQRL_TEST_POSTGRES`, see `common/postgres.rs`) and, for
//! the load-balancer test, nginx (`.ci/install-server-tools`). Without them the tests
//! are reported as ignored (see `build.rs`); with `SQRL_REQUIRE_POSTGRES=1` /
//! `SQRL_REQUIRE_NGINX=1` (CI) they run, and fail if a service is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::ffi::OsString;
use std::process::Child;
use std::time::{Duration, Instant};

use common::nginx::{self, Nginx};
use common::{
    Browser, Identity, NONE, SqrlConversation, TestDatabase, assert_tif, eventually, http_client,
    spawn_server,
};
use reqwest::StatusCode;
use sqrl_server::notify::Notifier;
use sqrl_server::store::postgres::PostgresStore;
use sqrl_server::store::postgres::listen::PostgresNotifier;

/// The deployment example the test runs as it is.
const NGINX_CONFIG: &str = include_str!("../../deploy/nginx-cluster.conf");

/// Long enough for a notification, far shorter than the event stream's
/// periodic re-read (15 s): an event within it was carried by a notification.
const DELIVERY: Duration = Duration::from_secs(3);

/// How long a listening connection may take to come up.
const LISTENING: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn notifications_reach_other_instances_and_survive_a_lost_connection() {
    let database = TestDatabase::create().await;
    // A name of their own: the cut below must not reach other tests'
    // connections.
    let mut config = database.config();
    config.application_name("sqrl-notify-test");
    let a_store = PostgresStore::connect_with(config.clone(), 2)
        .await
        .unwrap();
    let b_store = PostgresStore::connect_with(config, 2).await.unwrap();
    let a = PostgresNotifier::start(&a_store);
    let b = PostgresNotifier::start(&b_store);
    eventually("both listen", LISTENING, || {
        a.status().is_listening() && b.status().is_listening()
    })
    .await;

    let mut on_a = a.subscribe("attempt-1");
    let mut other_on_a = a.subscribe("attempt-2");
    b.notify("attempt-1").await;
    tokio::time::timeout(DELIVERY, on_a.changed())
        .await
        .expect("A hears what B published");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other_on_a.changed())
            .await
            .is_err(),
        "only the named attempt is woken"
    );
    // An instance wakes its own subscribers at once, and does not wake them
    // again when its publication comes back from the database.
    let mut on_b = b.subscribe("attempt-3");
    b.notify("attempt-3").await;
    assert!(on_b.changed().await);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), on_b.changed())
            .await
            .is_err(),
        "B ignores its own echo"
    );

    // The database drops A's listening connection: A reconnects, and wakes
    // its subscribers once, since it may have missed something meanwhile.
    let admin = database.client().await;
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE query LIKE 'LISTEN%' AND application_name = 'sqrl-notify-test'",
            &[],
        )
        .await
        .unwrap();
    assert!(!terminated.is_empty(), "a listening connection was found");
    eventually("A listens again", LISTENING, || {
        a.status().connections() >= 2
    })
    .await;
    tokio::time::timeout(DELIVERY, other_on_a.changed())
        .await
        .expect("subscribers are woken after a reconnection");
    b.notify("attempt-1").await;
    tokio::time::timeout(DELIVERY, on_a.changed())
        .await
        .expect("A hears B again after reconnecting");
    drop((a, b));
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db"
)]
async fn the_store_recovers_when_the_database_drops_its_connections() {
    use sqrl_server::store::Store;
    let database = TestDatabase::create().await;
    // A name of its own: the cut below must not reach other tests'
    // connections.
    let mut config = database.config();
    config.application_name("sqrl-recovery-test");
    let store = PostgresStore::connect_with(config, 4).await.unwrap();
    let store: &dyn Store = &store;
    store.health().await.unwrap();
    // What a database restart does to every open connection.
    let admin = database.client().await;
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'sqrl-recovery-test'",
            &[],
        )
        .await
        .unwrap();
    assert!(!cut.is_empty());
    // The pool notices closed connections and opens new ones: at most a
    // request or two fail (each with a typed, transient error), then all
    // succeed.
    let mut failures = 0;
    for _ in 0..20 {
        match store.health().await {
            Ok(()) => {}
            Err(error) => {
                assert!(error.is_transient(), "{error:?} is a lost connection");
                failures += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failures <= 4, "{failures} of 20 failed after the cut");
    store.health().await.unwrap();
    database.drop().await;
}

// --- three instances behind nginx ----------------------------------------------------

/// Three instances on one database, and nginx in front.
struct Cluster {
    instances: Vec<Option<Child>>,
    addrs: Vec<String>,
    /// Stopped when the cluster is dropped.
    _nginx: Nginx,
    base: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.instances.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    async fn start(database: &TestDatabase) -> Self {
        let port = nginx::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut instances = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let args: Vec<OsString> = [
                "--db".to_owned(),
                database.url(),
                "--public-origin".to_owned(),
                base.clone(),
                "--trusted-proxies".to_owned(),
                "127.0.0.1/32".to_owned(),
                "--db-connections".to_owned(),
                "4".to_owned(),
            ]
            .into_iter()
            .map(OsString::from)
            .collect();
            let (child, addr) = spawn_server(env!("CARGO_BIN_EXE_sqrl-server"), &args);
            instances.push(Some(child));
            addrs.push(addr);
        }
        let dir = tempfile::tempdir().unwrap();
        let servers: String = addrs
            .iter()
            .map(|addr| format!("        server {addr} max_fails=1 fail_timeout=10s;\n"))
            .collect();
        let config = NGINX_CONFIG
            .replace("@USER@", nginx::user_directive())
            .replace("@ROOT@", &dir.path().display().to_string())
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@UPSTREAMS@", servers.trim_end());
        let cluster = Self {
            instances,
            addrs,
            _nginx: Nginx::start_main(dir, &config, port),
            base,
        };
        let http = http_client();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = http
                .get(format!("{}/healthz", cluster.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "nginx did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster
    }

    /// Kills the instance listening on `addr` (SIGKILL: no clean shutdown).
    fn kill(&mut self, addr: &str) {
        let index = self.addrs.iter().position(|a| a == addr).unwrap();
        let mut child = self.instances[index].take().expect("already killed");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// The instance that answered: the last of those nginx tried (after a dead
/// one, `X-Upstream` lists both).
fn last_tried(upstream: Option<&str>) -> String {
    let upstream = upstream.expect("nginx names the instance");
    upstream.rsplit(", ").next().unwrap_or(upstream).to_owned()
}

/// Where the steps of one login landed, and how long the page waited.
#[derive(Debug)]
struct Login {
    stream: String,
    ident: String,
    /// From the phone holding the `ident` reply to the page's `confirmed`.
    confirm_to_page: Duration,
}

/// One login through the page, recording which instance served the event
/// stream and the `ident`. `before_ident` runs between `query` and `ident`
/// with the stream's instance (the test kills it there).
async fn login(http: &reqwest::Client, base: &str, mut before_ident: impl FnMut(&str)) -> Login {
    let phone = Identity::new();
    let mut browser = Browser::new(http, base);
    let page = browser.open_login_page().await;
    let mut events = browser.events(&page.nut).await;
    let stream = last_tried(events.upstream.as_deref());
    events.expect("pending").await;
    let mut conversation = SqrlConversation::new(http, &page.url);
    assert_tif(&conversation.query(&phone, NONE).await, 0x04);
    events.expect("scanned").await;
    before_ident(&stream);
    assert_tif(&conversation.ident(&phone, NONE, true).await, 0x05);
    let confirmed_at = Instant::now();
    let ident = last_tried(conversation.last_upstream.as_deref());
    // A stream whose instance died ends; the page's EventSource reconnects
    // (through the balancer, to a live instance) and reads the state there.
    let event = match events.next(DELIVERY).await {
        Some(event) => event,
        None => {
            let mut again = browser.events(&page.nut).await;
            again
                .next(DELIVERY)
                .await
                .expect("the reconnected stream reports")
        }
    };
    assert_eq!(event.state, "confirmed", "{event:?}");
    let confirm_to_page = event.at.duration_since(confirmed_at);
    let (status, _) = browser.collect(&event.url.unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(browser.has_cookie("sqrl_session"));
    let account = browser.get("/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    Login {
        stream,
        ident,
        confirm_to_page,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_postgres, no_nginx),
    ignore = "needs SQRL_TEST_POSTGRES=postgres://user@host/db and nginx (.ci/install-server-tools)"
)]
async fn logins_span_three_instances_behind_nginx_and_survive_one_dying() {
    let database = TestDatabase::create().await;
    let mut cluster = Cluster::start(&database).await;
    let base = cluster.base.clone();
    let http = http_client();

    // All three up: round robin spreads each login's steps.
    let mut logins = Vec::new();
    for _ in 0..9 {
        logins.push(login(&http, &base, |_| {}).await);
    }
    let crossing = logins.iter().filter(|l| l.stream != l.ident).count();
    assert!(
        crossing >= 3,
        "the ident and the page's stream were on different instances in {crossing} of 9 logins: {logins:?}"
    );
    for login in &logins {
        assert!(
            login.confirm_to_page < DELIVERY,
            "notified across instances, not found by the periodic re-read: {login:?}"
        );
    }

    // The instance holding a page's stream dies between the phone's query
    // and ident: the login completes on the others.
    let mut victim = None;
    let spanning = login(&http, &base, |stream| {
        cluster.kill(stream);
        victim = Some(stream.to_owned());
    })
    .await;
    let victim = victim.unwrap();
    assert_ne!(spanning.ident, victim);

    // With one instance dead, every login still succeeds.
    for _ in 0..6 {
        let login = login(&http, &base, |_| {}).await;
        assert_ne!(login.stream, victim);
        assert_ne!(login.ident, victim);
    }
    drop(cluster);
    database.drop().await;
}
