//! The bench against the real server (started in-process on 127.0.0.1:0),
//! in both flows, and against servers that answer nonsense.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sqrl_bench::flows::{Flow, NutFormat};
use sqrl_bench::outcome::Step;
use sqrl_bench::site::Site;
use sqrl_bench::{BenchError, Config, Report, Stop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Our server with a fresh database, without the per-address limits that a
/// load from one address would hit (the rate limit, the event-stream cap).
async fn our_server() -> (sqrl_server::RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sqrl_server::config::Config::for_tests(dir.path().join("db"));
    config.rate_limit = None;
    config.limits.max_event_streams_per_address = 1024;
    let server = sqrl_server::start(config).await.unwrap();
    (server, dir)
}

fn short_run(base: &str, flow: Flow, logins: u64) -> Config {
    let mut config = Config::new(Site::parse(base).unwrap(), flow, 4);
    config.stop = Stop::Logins(logins);
    config.warmup = Duration::ZERO;
    config.floor_iterations = 50;
    config.settings.timeout = Duration::from_secs(5);
    config
}

/// Every login succeeded, and every count agrees with every other.
fn assert_clean(report: &Report, logins: u64, steps: &[Step]) {
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|e| {
            format!(
                "{} x{}: {} {:?}",
                e.step.name(),
                e.count,
                e.detail,
                e.example
            )
        })
        .collect();
    assert!(errors.is_empty(), "errors: {errors:#?}");
    assert_eq!(report.attempted, logins);
    assert_eq!(report.succeeded, logins);
    assert_eq!(report.failed, 0);
    assert_eq!(report.other_errors, 0);
    assert_eq!(
        report.new_identities + report.returning_identities,
        report.succeeded
    );
    assert_eq!(report.total.count as u64, logins);
    assert_eq!(report.client_work.count as u64, logins);
    let measured: Vec<Step> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(measured, steps);
    for step in &report.steps {
        assert_eq!(step.summary.count as u64, logins, "{:?}", step.step);
        assert!(step.summary.p50_us <= step.summary.p99_us);
        assert!(step.summary.p99_us <= step.summary.max_us);
    }
    assert!(report.logins_per_second > 0.0);
    assert!(report.floor.per_login_us > 0.0);
    // 40 logins with 4 phones: each phone's first login creates its account.
    assert_eq!(report.new_identities, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssp_flow_against_our_server() {
    let (server, _dir) = our_server().await;
    let base = server.base_url();

    let mut config = short_run(&base, Flow::Ssp, 40);
    // The server runs in this process: its CPU is this process's.
    config.server_pid = Some(std::process::id());
    let report = sqrl_bench::run(&config).await.unwrap();
    assert_clean(
        &report,
        40,
        &[Step::Nut, Step::Query, Step::Ident, Step::Pag],
    );
    let cpu = report.server_cpu.as_ref().unwrap();
    assert_eq!(cpu.pid, std::process::id());
    assert!(cpu.per_login_us.is_some());
    assert!(report.polls_per_login.unwrap() >= 1.0);
    // The text report names every step it measured.
    let text = report.to_text(&config);
    assert!(text.contains("logins: 40 ok, 0 failed"), "{text}");
    assert!(text.contains("floor / server CPU per login"), "{text}");

    // Following the URL /pag.sqrl gives (our server: collect with the pag
    // secret, a session), and asking for JSON.
    let mut config = short_run(&base, Flow::Ssp, 40);
    config.settings.follow = true;
    config.settings.nut_format = NutFormat::Json;
    let report = sqrl_bench::run(&config).await.unwrap();
    assert_clean(
        &report,
        40,
        &[
            Step::Nut,
            Step::Query,
            Step::Ident,
            Step::Pag,
            Step::Collect,
        ],
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["succeeded"], 40);
    assert_eq!(json["steps"][0]["step"], "nut");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_flow_against_our_server() {
    let (server, _dir) = our_server().await;
    let config = short_run(&server.base_url(), Flow::Page, 40);
    let report = sqrl_bench::run(&config).await.unwrap();
    assert_clean(
        &report,
        40,
        &[
            Step::Page,
            Step::Stream,
            Step::Query,
            Step::Ident,
            Step::Confirm,
            Step::Collect,
        ],
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_run_with_warmup_and_pacing() {
    let (server, _dir) = our_server().await;
    let mut config = short_run(&server.base_url(), Flow::Ssp, 1);
    config.stop = Stop::After(Duration::from_millis(600));
    config.warmup = Duration::from_millis(200);
    config.rate = Some(40.0);
    let report = sqrl_bench::run(&config).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.failed, 0);
    assert!(report.succeeded > 0);
    // 40 logins/s for 0.6 s: about 24 slots, never more.
    assert!(report.attempted <= 25, "{}", report.attempted);
    assert!(report.schedule_lag.is_some());
    server.shutdown().await;
}

/// What a fake server answers to a request line.
type Answer = fn(&str) -> Vec<u8>;

/// A server on 127.0.0.1:0 answering every request with `answer(request
/// line)` and closing the connection; returns its base URL.
async fn fake_server(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                let head_end = loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let line = head.lines().next().unwrap_or_default().to_owned();
                let _ = socket.write_all(&answer(&line)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn http_reply(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Speaks HTTP, but no SQRL: a nut and then nonsense.
fn garbage(line: &str) -> Vec<u8> {
    if line.contains("/nut.sqrl") {
        http_reply("200 OK", "nut=abcdefghijk&pag=secret&exp=60")
    } else if line.contains("/cli.sqrl") {
        http_reply("200 OK", "this is not a SQRL reply \u{1F4A5}")
    } else if line.starts_with("GET / ") {
        http_reply("200 OK", "<html>no SQRL here</html>")
    } else {
        http_reply("400 Bad Request", "")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_are_counted_as_errors() {
    let base = fake_server(garbage).await;
    let report = sqrl_bench::run(&short_run(&base, Flow::Ssp, 10))
        .await
        .unwrap();
    assert_eq!(
        (report.attempted, report.succeeded, report.failed),
        (10, 0, 10)
    );
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let error = &report.errors[0];
    assert_eq!(
        (error.step, error.category, error.count),
        (Step::Query, "protocol", 10)
    );
    assert!(error.example.as_deref().unwrap().starts_with("this is not"));

    let report = sqrl_bench::run(&short_run(&base, Flow::Page, 10))
        .await
        .unwrap();
    assert_eq!((report.attempted, report.failed), (10, 10));
    assert_eq!(report.errors[0].step, Step::Page);
    assert_eq!(
        report.errors[0].detail,
        "protocol: the page shows no SQRL URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_broken_http_are_counted_as_errors() {
    let unavailable = fake_server(|_| http_reply("503 Service Unavailable", "busy")).await;
    let report = sqrl_bench::run(&short_run(&unavailable, Flow::Ssp, 8))
        .await
        .unwrap();
    assert_eq!(report.failed, 8);
    assert_eq!(report.errors[0].detail, "HTTP 503");
    assert_eq!(report.errors[0].step, Step::Nut);

    let not_http = fake_server(|_| b"SQRL? never heard of it\r\n\r\n".to_vec()).await;
    let report = sqrl_bench::run(&short_run(&not_http, Flow::Ssp, 8))
        .await
        .unwrap();
    assert_eq!(report.failed, 8);
    assert_eq!(report.errors[0].category, "transport");
}

#[tokio::test]
async fn an_unreachable_server_stops_the_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = sqrl_bench::run(&short_run(&base, Flow::Ssp, 1))
        .await
        .unwrap_err();
    assert!(matches!(error, BenchError::Unreachable { .. }), "{error}");
}

#[tokio::test]
async fn a_missing_server_process_stops_the_run() {
    let base = fake_server(garbage).await;
    let mut config = short_run(&base, Flow::Ssp, 1);
    config.server_pid = Some(u32::MAX);
    let error = sqrl_bench::run(&config).await.unwrap_err();
    assert!(matches!(error, BenchError::Cpu(_)), "{error}");
}
