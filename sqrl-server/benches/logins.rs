//! Complete logins over real sockets against the `sqrl-server` binary.
//!
//! ```text
//! cargo bench -p sqrl-server --bench logins -- [--logins N] [--concurrency C] [--db-dir DIR]
//! ```
//!
//! Each login is what a visitor and a phone do: the browser loads the login
//! page and opens its event stream, the client sends `query` then `ident`
//! (new identity: suk/vuk), the page's stream reports `confirmed` with its
//! single-use link, and the browser follows it to get a session. Prints
//! logins/s, p50/p99 of every step, the confirm-to-browser notification
//! latency, and the server's CPU per login next to the cost of the Ed25519
//! verifications that login needs (one `ids` per request: two).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead as _;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{Browser, Identity, NONE, SqrlConversation, http_client};
use sqrl_core::msg::{ClientRequest, Command};

struct Args {
    logins: usize,
    concurrency: usize,
    db_dir: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        logins: 200,
        concurrency: 8,
        db_dir: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--logins" | "-n" => {
                args.logins = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.logins)
            }
            "--concurrency" | "-c" => {
                args.concurrency = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.concurrency)
            }
            "--db-dir" => args.db_dir = iter.next().map(Into::into),
            _ => {} // cargo passes --bench
        }
    }
    args.concurrency = args.concurrency.clamp(1, args.logins.max(1));
    args
}

/// Per-login timings.
#[derive(Debug, Default, Clone)]
struct Timings {
    page: Duration,
    stream: Duration,
    query: Duration,
    ident: Duration,
    /// From sending `ident` to the page's stream delivering `confirmed`.
    confirm_to_browser: Duration,
    /// The page's event minus the client's `ident` reply, in ms: negative
    /// when the page heard first.
    after_reply_ms: f64,
    collect: Duration,
    total: Duration,
}

async fn one_login(base: &str, http: &reqwest::Client) -> Timings {
    let mut t = Timings::default();
    let start = Instant::now();
    let mut browser = Browser::new(http, base);
    let page = browser.open_login_page().await;
    t.page = start.elapsed();

    let s = Instant::now();
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    t.stream = s.elapsed();

    let phone = Identity::new();
    let mut conversation = SqrlConversation::new(http, &page.url);
    let s = Instant::now();
    let reply = conversation.query(&phone, NONE).await;
    assert_eq!(reply.tif().bits(), 0x04);
    t.query = s.elapsed();
    events.expect("scanned").await;

    // The ident request is prepared before the clock starts: the client's
    // own signing is not the server's latency.
    let key = phone.site_key(&conversation.url);
    let (suk, vuk) = phone.lock();
    let ident = ClientRequest::builder(Command::Ident, key.public_key())
        .lock(suk, vuk)
        .build()
        .unwrap();
    let body = sqrl_core::msg::RequestBody::sign(&ident, &conversation.server, &key, None, None)
        .unwrap()
        .to_form();
    let sent = Instant::now();
    let (reply, replied, event) = {
        let reply = async {
            let reply = conversation.send_form(body).await;
            (reply, Instant::now())
        };
        let ((reply, replied), event) = tokio::join!(reply, events.expect("confirmed"));
        (reply, replied, event)
    };
    assert_eq!(reply.tif().bits(), 0x05);
    t.ident = replied - sent;
    t.confirm_to_browser = event.at.saturating_duration_since(sent);
    t.after_reply_ms = if event.at >= replied {
        (event.at - replied).as_secs_f64() * 1e3
    } else {
        -((replied - event.at).as_secs_f64() * 1e3)
    };

    let s = Instant::now();
    let (status, _) = browser.collect(event.url.as_deref().unwrap()).await;
    assert_eq!(status.as_u16(), 303);
    t.collect = s.elapsed();
    t.total = start.elapsed();
    t
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (values.len() as f64 - 1.0)).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

/// p50/p99 upper bounds from a Prometheus histogram's buckets.
fn histogram_summary(metrics: &str, name: &str) -> String {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            Some((bound.to_owned(), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0, |(_, count)| *count);
    if total == 0 {
        return "no samples".to_owned();
    }
    let bound = |q: f64| {
        let wanted = (q * total as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, count)| *count >= wanted)
            .map_or("+Inf".to_owned(), |(bound, _)| bound.clone())
    };
    format!(
        "{total} events, p50 <= {} s, p99 <= {} s (bucket bounds)",
        bound(0.5),
        bound(0.99)
    )
}

/// User + system CPU of a process, from /proc (Linux).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 Hz on Linux unless configured otherwise.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Mean cost of one strict Ed25519 verification, as the server does it.
fn verify_cost() -> Duration {
    let id = Identity::new();
    let url = sqrl_core::url::SqrlUrl::parse("qrl://127.0.0.1/cli.sqrl?nut=bench").unwrap();
    let key = id.site_key(&url);
    let public = key.public_key();
    let message = vec![0x41u8; 600];
    let signature = key.sign(&message);
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        public
            .verify(std::hint::black_box(&message), &signature)
            .unwrap();
    }
    start.elapsed() / rounds
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = match &args.db_dir {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let db = dir.path().join("bench.db");
    let mut child = Process::new(env!("CARGO_BIN_EXE_sqrl-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--rate-limit-per-second",
            "0",
            "--db",
        ])
        .arg(&db)
        .env("SQRL_LOG", "warn,sqrl_server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sqrl-server");
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
    let base = format!("http://{addr}");
    let http = http_client();

    // Warm up (page, SQLite cache, connections).
    for _ in 0..args.concurrency.min(4) {
        one_login(&base, &http).await;
    }

    let cpu_before = process_cpu(child.id());
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let share =
            args.logins / args.concurrency + usize::from(worker < args.logins % args.concurrency);
        let base = base.clone();
        let http = http.clone();
        workers.push(tokio::spawn(async move {
            let mut all = Vec::with_capacity(share);
            for _ in 0..share {
                all.push(one_login(&base, &http).await);
            }
            all
        }));
    }
    let mut timings = Vec::with_capacity(args.logins);
    for worker in workers {
        timings.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu_after = process_cpu(child.id());
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();

    let n = timings.len();
    println!(
        "sqrl-server login benchmark: {n} logins, concurrency {}, SQLite synchronous=FULL at {}",
        args.concurrency,
        db.display()
    );
    println!(
        "throughput: {:.1} logins/s ({:.2} s)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("{:<34} {:>11} {:>11} {:>11}", "step", "p50", "p99", "max");
    type Pick = fn(&Timings) -> Duration;
    let steps: [(&str, Pick); 7] = [
        ("GET / (page, new attempt)", |t| t.page),
        ("open event stream -> pending", |t| t.stream),
        ("POST query", |t| t.query),
        ("POST ident (new identity)", |t| t.ident),
        ("confirm -> browser (SSE)", |t| t.confirm_to_browser),
        ("GET collect link -> session", |t| t.collect),
        ("whole login", |t| t.total),
    ];
    for (name, pick) in steps {
        let mut values: Vec<Duration> = timings.iter().map(pick).collect();
        let max = values.iter().max().copied().unwrap_or_default();
        println!(
            "{name:<34} {} {} {}",
            ms(percentile(&mut values, 50.0)),
            ms(percentile(&mut values, 99.0)),
            ms(max)
        );
    }
    let mut relative: Vec<f64> = timings.iter().map(|t| t.after_reply_ms).collect();
    relative.sort_by(f64::total_cmp);
    let at = |p: f64| relative[((p / 100.0) * (relative.len() as f64 - 1.0)).round() as usize];
    println!(
        "page event relative to the client's ident reply: p50 {:+.2} ms, p99 {:+.2} ms (negative: the page heard first)",
        at(50.0),
        at(99.0)
    );
    println!(
        "server side, commit -> page event handed to the stream: {}",
        histogram_summary(&metrics, "sqrl_page_notify_seconds")
    );
    let verify = verify_cost();
    match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => {
            let per_login = (after - before) / u32::try_from(n.max(1)).unwrap_or(1);
            println!(
                "server CPU per login: {:.0} µs (user+sys, 10 ms ticks averaged over {n} logins)",
                per_login.as_secs_f64() * 1e6
            );
            println!(
                "  of which Ed25519 verifications (2 x {:.1} µs): {:.1} µs = {:.1}%",
                verify.as_secs_f64() * 1e6,
                2.0 * verify.as_secs_f64() * 1e6,
                200.0 * verify.as_secs_f64() / per_login.as_secs_f64().max(1e-9)
            );
        }
        _ => println!(
            "server CPU per login: unavailable (no /proc); one Ed25519 verification: {:.1} µs",
            verify.as_secs_f64() * 1e6
        ),
    }
}
