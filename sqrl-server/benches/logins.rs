//! Complete logins over real sockets (127.0.0.1) against the service.
//!
//! ```text
//! cargo bench -p sqrl-server --bench logins -- [--logins N] [--concurrency 1,8,16] [--rate R] [--db-dir DIR]
//! ```
//!
//! By default each of the C workers starts its next login as soon as the last
//! one is done (as fast as the machine goes). With `--rate R` the workers
//! together start R logins per second (each one every C/R seconds, later if
//! it is behind), so two builds can be compared at the same load.
//!
//! Each login is what a visitor and a phone do: the browser loads the login
//! page and opens its event stream, the client sends `query` then `ident`
//! (new identity: suk/vuk), the page's stream reports `confirmed` with its
//! single-use link, and the browser follows it to get a session. For each
//! concurrency level (N logins, C at a time) it prints logins/s, p50/p99 of
//! every step, and the server's CPU per login next to the cost of the Ed25519
//! verifications that login needs (one `ids` per request: two).
//!
//! The two latencies the service is judged by are labelled:
//!
//! * **(a) server confirm → browser**: from the moment the server has
//!   committed the `ident` (durably: `synchronous=FULL`) and goes on to reply,
//!   to the moment the waiting page's event stream delivers `confirmed` to the
//!   browser. Target: p99 under 20 ms.
//! * **(b) ident round trip (client)**: what the phone waits for its `ident`,
//!   from sending the request to holding the parsed reply, fsync included.
//!
//! To put both ends of (a) on one clock the service runs in this process, on
//! its own runtime and threads (named `sqrl-server`), serving real sockets;
//! its [`Notifier`] is the production one wrapped to note when each
//! notification is published (right after the commit, before the reply).
//! Server CPU is the CPU time of the service's threads (its runtime's and the
//! store's writer thread). The phones' identities are made before the timed
//! part (a phone is another device; its key generation is not the server's
//! load), and every request is signed before its clock starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/server/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{Browser, Identity, Request, SqrlConversation, http_client};
use sqrl_server::config::Config;
use sqrl_server::notify::{InProcessNotifier, Notifier, Subscription};
use sqrl_server::store::sqlite::SqliteStore;

/// The name of the service's runtime threads.
const SERVER_THREADS: &str = "sqrl-server";

/// What the names of all the service's threads start with (its runtime's, and
/// the store's writer, `sqrl-db-writer`).
const SERVER_THREAD_PREFIX: &str = "sqrl-";

struct Args {
    logins: usize,
    levels: Vec<usize>,
    /// Logins started per second across all workers; `None`: flat out.
    rate: Option<f64>,
    db_dir: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        logins: 200,
        levels: vec![1, 8, 16],
        rate: None,
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
                if let Some(list) = iter.next() {
                    let levels: Vec<usize> = list
                        .split(',')
                        .filter_map(|v| v.trim().parse().ok())
                        .filter(|c| *c > 0)
                        .collect();
                    if !levels.is_empty() {
                        args.levels = levels;
                    }
                }
            }
            "--rate" => {
                args.rate = iter
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|r| r.is_finite() && *r > 0.0)
            }
            "--db-dir" => args.db_dir = iter.next().map(Into::into),
            _ => {} // cargo passes --bench
        }
    }
    args.logins = args.logins.max(1);
    args
}

/// The production notifier, noting when each notification is published.
#[derive(Default)]
struct TimedNotifier {
    inner: InProcessNotifier,
    published: Mutex<HashMap<String, Instant>>,
}

impl TimedNotifier {
    /// When the latest notification for `attempt` was published.
    fn take(&self, attempt: &str) -> Option<Instant> {
        self.published.lock().unwrap().remove(attempt)
    }
}

#[async_trait]
impl Notifier for TimedNotifier {
    async fn notify(&self, attempt: &str) {
        let now = Instant::now();
        self.published
            .lock()
            .unwrap()
            .insert(attempt.to_owned(), now);
        self.inner.notify(attempt).await;
    }

    fn subscribe(&self, attempt: &str) -> Subscription {
        self.inner.subscribe(attempt)
    }
}

/// Per-login timings.
#[derive(Debug, Default, Clone)]
struct Timings {
    page: Duration,
    stream: Duration,
    query: Duration,
    /// (b): sending `ident` to holding its parsed reply.
    ident: Duration,
    /// (a): the server's post-commit notification to the page's event.
    server_confirm_to_browser: Duration,
    /// Sending `ident` to the page's event (what a user watching both sees).
    ident_sent_to_browser: Duration,
    collect: Duration,
    total: Duration,
}

async fn one_login(
    base: &str,
    http: &reqwest::Client,
    notifier: &TimedNotifier,
    phone: &Identity,
) -> Timings {
    let mut t = Timings::default();
    let start = Instant::now();
    let mut browser = Browser::new(http, base);
    let page = browser.open_login_page().await;
    t.page = start.elapsed();

    let s = Instant::now();
    let mut events = browser.events(&page.nut).await;
    events.expect("pending").await;
    t.stream = s.elapsed();

    let mut conversation = SqrlConversation::new(http, &page.url);
    let form = conversation.form(&Request::query(phone));
    let s = Instant::now();
    let reply = conversation.send_form(form).await;
    assert_eq!(reply.tif().bits(), 0x04);
    t.query = s.elapsed();
    events.expect("scanned").await;

    // The ident request is signed before the clock starts: the client's own
    // work is not the server's latency.
    let form = conversation.form(&Request::ident(phone).new_lock());
    let sent = Instant::now();
    let ((reply, replied), event) = tokio::join!(
        async {
            let reply = conversation.send_form(form).await;
            (reply, Instant::now())
        },
        events.expect("confirmed")
    );
    assert_eq!(reply.tif().bits(), 0x05);
    t.ident = replied - sent;
    t.ident_sent_to_browser = event.at - sent;
    let committed = notifier
        .take(&page.nut)
        .expect("the server published the confirmation");
    t.server_confirm_to_browser = event.at.saturating_duration_since(committed);

    let s = Instant::now();
    let (status, _) = browser.collect(event.url.as_deref().unwrap()).await;
    assert_eq!(status.as_u16(), 303);
    t.collect = s.elapsed();
    t.total = start.elapsed();
    t
}

/// The value at percentile `p` (nearest rank) of `values`, sorted in place.
fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

/// CPU time so far of this process's threads whose names start with
/// [`SERVER_THREAD_PREFIX`] (Linux `/proc`; microsecond resolution where the
/// scheduler reports it).
fn server_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(SERVER_THREAD_PREFIX) {
            continue;
        }
        total += thread_cpu(&path)?;
    }
    Some(total)
}

fn thread_cpu(task: &std::path::Path) -> Option<Duration> {
    // `sched` gives milliseconds with six decimals; `stat` 10 ms ticks.
    if let Ok(sched) = std::fs::read_to_string(task.join("sched"))
        && let Some(value) = sched
            .lines()
            .find(|line| line.starts_with("se.sum_exec_runtime"))
            .and_then(|line| line.split(':').nth(1))
            .and_then(|value| value.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(value / 1e3));
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
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

/// One concurrency level's results.
struct Level {
    concurrency: usize,
    timings: Vec<Timings>,
    elapsed: Duration,
    cpu_per_login: Option<Duration>,
}

impl Level {
    fn pick(&self, f: fn(&Timings) -> Duration) -> Vec<Duration> {
        self.timings.iter().map(f).collect()
    }

    fn p50_p99(&self, f: fn(&Timings) -> Duration) -> (Duration, Duration) {
        let mut values = self.pick(f);
        (percentile(&mut values, 50.0), percentile(&mut values, 99.0))
    }
}

async fn run_level(
    base: &str,
    http: &reqwest::Client,
    notifier: &Arc<TimedNotifier>,
    args: &Args,
    concurrency: usize,
) -> Level {
    let logins = args.logins;
    let concurrency = concurrency.min(logins);
    // Each worker starts a login every `interval` (paced), or at once.
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(concurrency as f64 / rate));
    let shares: Vec<Vec<Identity>> = (0..concurrency)
        .map(|worker| {
            let share = logins / concurrency + usize::from(worker < logins % concurrency);
            (0..share).map(|_| Identity::new()).collect()
        })
        .collect();
    let cpu_before = server_cpu();
    let started = Instant::now();
    let mut workers = Vec::new();
    for (worker, phones) in shares.into_iter().enumerate() {
        let base = base.to_owned();
        let http = http.clone();
        let notifier = Arc::clone(notifier);
        workers.push(tokio::spawn(async move {
            let mut all = Vec::with_capacity(phones.len());
            // Paced workers start spread over one interval.
            let mut next = interval.map(|every| {
                tokio::time::Instant::now() + every.mul_f64(worker as f64 / concurrency as f64)
            });
            for phone in &phones {
                if let (Some(at), Some(every)) = (next.as_mut(), interval) {
                    tokio::time::sleep_until(*at).await;
                    *at = (*at + every).max(tokio::time::Instant::now());
                }
                all.push(one_login(&base, &http, &notifier, phone).await);
            }
            all
        }));
    }
    let mut timings = Vec::with_capacity(logins);
    for worker in workers {
        timings.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu_per_login = match (cpu_before, server_cpu()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) / logins as u32),
        _ => None,
    };
    Level {
        concurrency,
        timings,
        elapsed,
        cpu_per_login,
    }
}

fn print_level(level: &Level, verify: Duration) {
    let n = level.timings.len();
    println!();
    println!(
        "concurrency {}: {n} logins in {:.2} s = {:.1} logins/s",
        level.concurrency,
        level.elapsed.as_secs_f64(),
        n as f64 / level.elapsed.as_secs_f64()
    );
    println!("  {:<44} {:>11} {:>11} {:>11}", "step", "p50", "p99", "max");
    type Pick = fn(&Timings) -> Duration;
    let steps: [(&str, Pick); 8] = [
        ("GET / (page, new attempt)", |t| t.page),
        ("open event stream -> pending", |t| t.stream),
        ("POST query", |t| t.query),
        ("(b) ident round trip (client, incl. fsync)", |t| t.ident),
        ("(a) server confirm -> browser (SSE)", |t| {
            t.server_confirm_to_browser
        }),
        ("    ident sent -> browser (SSE)", |t| {
            t.ident_sent_to_browser
        }),
        ("GET collect link -> session", |t| t.collect),
        ("whole login", |t| t.total),
    ];
    for (name, pick) in steps {
        let mut values = level.pick(pick);
        let max = values.iter().max().copied().unwrap_or_default();
        println!(
            "  {name:<44} {} {} {}",
            ms(percentile(&mut values, 50.0)),
            ms(percentile(&mut values, 99.0)),
            ms(max)
        );
    }
    match level.cpu_per_login {
        Some(cpu) => println!(
            "  server CPU per login: {:.0} µs; its Ed25519 verifications (2 x {:.1} µs): {:.1} µs = {:.1}%",
            cpu.as_secs_f64() * 1e6,
            verify.as_secs_f64() * 1e6,
            2.0 * verify.as_secs_f64() * 1e6,
            200.0 * verify.as_secs_f64() / cpu.as_secs_f64().max(1e-9)
        ),
        None => println!(
            "  server CPU per login: unavailable (no /proc); one Ed25519 verification: {:.1} µs",
            verify.as_secs_f64() * 1e6
        ),
    }
}

fn main() {
    let args = args();
    // The service logs as the binary does (info), into a sink.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .try_init();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(SERVER_THREADS)
        // Keep blocking-pool threads alive, so their CPU time stays countable.
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .unwrap();

    let dir = match &args.db_dir {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let db = dir.path().join("bench.db");
    let notifier = Arc::new(TimedNotifier::default());
    let server = server_runtime.block_on(async {
        let mut config = Config::for_tests(&db);
        config.rate_limit = None;
        let store = SqliteStore::open(&db, config.db_connections).unwrap();
        sqrl_server::start_with(config, Arc::new(store), notifier.clone())
            .await
            .unwrap()
    });
    let base = server.base_url();

    let verify = verify_cost();
    let levels = client_runtime.block_on(async {
        let http = http_client();
        // Warm up (page, SQLite cache, connections).
        for _ in 0..4 {
            one_login(&base, &http, &notifier, &Identity::new()).await;
        }
        let mut levels = Vec::new();
        for &concurrency in &args.levels {
            levels.push(run_level(&base, &http, &notifier, &args, concurrency).await);
        }
        levels
    });
    server_runtime.block_on(server.shutdown());

    println!(
        "sqrl-server login benchmark: {} logins per level, {}, SQLite synchronous=FULL at {}",
        args.logins,
        match args.rate {
            Some(rate) => format!("paced at {rate} logins/s"),
            None => "flat out".to_owned(),
        },
        db.display()
    );
    for level in &levels {
        print_level(level, verify);
    }
    println!();
    println!("summary (p50 / p99, ms)                      concurrency");
    print!("  {:<44}", "");
    for level in &levels {
        print!(" {:>15}", level.concurrency);
    }
    println!();
    type Pick = fn(&Timings) -> Duration;
    let rows: [(&str, Pick); 2] = [
        ("(a) server confirm -> browser (SSE)", |t| {
            t.server_confirm_to_browser
        }),
        ("(b) ident round trip (client, incl. fsync)", |t| t.ident),
    ];
    for (name, pick) in rows {
        print!("  {name:<44}");
        for level in &levels {
            let (p50, p99) = level.p50_p99(pick);
            print!(
                " {:>15}",
                format!(
                    "{:.2} / {:.2}",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                )
            );
        }
        println!();
    }
    print!("  {:<44}", "throughput (logins/s)");
    for level in &levels {
        print!(
            " {:>15.1}",
            level.timings.len() as f64 / level.elapsed.as_secs_f64()
        );
    }
    println!();
    print!("  {:<44}", "server CPU per login (µs)");
    for level in &levels {
        match level.cpu_per_login {
            Some(cpu) => print!(" {:>15.0}", cpu.as_secs_f64() * 1e6),
            None => print!(" {:>15}", "n/a"),
        }
    }
    println!();
}
