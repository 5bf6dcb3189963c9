//! Does the service still serve others while one address floods it with
//! connections that never finish a request?
//!
//! ```text
//! cargo bench -p sqrl-server --bench flood -- [--connections N] [--seconds S] [--reconnect-ms R]
//! ```
//!
//! Starts the release-built `sqrl-server` binary on 127.0.0.1:0 (default
//! connection limits; the per-request rate limit off, so that only the
//! connection limits are measured), then:
//!
//! 1. **baseline**: from 127.0.0.1, `/healthz` each on a fresh connection,
//!    and whole logins (login page, event stream, `query`, `ident`, the
//!    stream's `confirmed`, session collected);
//! 2. **flood**: opens N connections (default 5000) from 127.0.0.2, half
//!    idle, half slowloris (a request line, then one header line a second,
//!    never ending the header), each opened again R ms (default 1000) after
//!    the server closes it;
//! 3. **under the flood**, for S seconds (default 25, longer than the
//!    header-read timeout so that closed connections come back), the same
//!    measurements from 127.0.0.1;
//!
//! and prints latencies, failures, what the flood saw and what the server
//! counted, then stops the flood and the server. Everything is bounded:
//! at most about S + 40 seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/server/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Flood, FloodPlan, Identity, login_through_the_page, percentile, spawn_server_binary};

struct Args {
    connections: usize,
    seconds: u64,
    reconnect: Duration,
}

fn args() -> Args {
    let mut args = Args {
        connections: 5000,
        seconds: 25,
        reconnect: Duration::from_millis(1000),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let value = |iter: &mut std::iter::Skip<std::env::Args>| {
            iter.next().and_then(|v| v.parse::<u64>().ok())
        };
        match arg.as_str() {
            "--connections" | "-n" => {
                if let Some(n) = value(&mut iter) {
                    args.connections = n as usize;
                }
            }
            "--seconds" => {
                if let Some(s) = value(&mut iter) {
                    args.seconds = s.clamp(1, 600);
                }
            }
            "--reconnect-ms" => {
                if let Some(ms) = value(&mut iter) {
                    args.reconnect = Duration::from_millis(ms.max(10));
                }
            }
            _ => {} // cargo passes --bench
        }
    }
    args
}

/// Latencies of one kind of request, and how many failed.
#[derive(Default)]
struct Sample {
    times: Vec<Duration>,
    failed: usize,
}

impl Sample {
    fn line(&mut self, name: &str) -> String {
        let ok = self.times.len();
        let max = self.times.iter().max().copied().unwrap_or_default();
        format!(
            "  {name:<34} {ok:>5} ok {:>3} failed   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
            self.failed,
            percentile(&mut self.times, 50.0).as_secs_f64() * 1e3,
            percentile(&mut self.times, 99.0).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        )
    }
}

/// `/healthz` on a fresh connection (a new visitor must get through the
/// accept queue the flood fills).
async fn healthz(fresh: &reqwest::Client, base: &str, into: &mut Sample) {
    let started = Instant::now();
    match fresh.get(format!("{base}/healthz")).send().await {
        Ok(response) if response.status() == 200 => into.times.push(started.elapsed()),
        _ => into.failed += 1,
    }
}

/// One whole login; a failure (the helper panics on one) or a login slower
/// than 15 s counts as failed.
async fn login(http: &reqwest::Client, base: &str, into: &mut Sample) {
    let phone = Identity::new();
    let (http, base) = (http.clone(), base.to_owned());
    let started = Instant::now();
    let task = tokio::spawn(async move {
        login_through_the_page(&http, &base, &phone).await;
    });
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(Ok(())) => into.times.push(started.elapsed()),
        _ => into.failed += 1,
    }
}

/// The server's connection metrics.
async fn server_counts(http: &reqwest::Client, base: &str) -> Vec<String> {
    let request = http
        .get(format!("{base}/metrics"))
        .bearer_auth(common::OPERATOR_TOKEN);
    let Ok(response) = request.send().await else {
        return vec!["(metrics unavailable)".to_owned()];
    };
    if !response.status().is_success() {
        return vec![format!("(metrics answered {})", response.status())];
    }
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| {
            !line.starts_with('#')
                && (line.starts_with("sqrl_open_connections")
                    || line.starts_with("sqrl_refused_connections_total")
                    || line.starts_with("sqrl_accept_errors_total"))
        })
        .map(str::to_owned)
        .collect()
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server_binary(
        env!("CARGO_BIN_EXE_sqrl-server"),
        &dir.path().join("flood.db"),
    );
    let server: SocketAddr = addr.parse().unwrap();
    let base = format!("http://{addr}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    runtime.block_on(async {
        let http = common::http_client();
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        println!(
            "sqrl-server flood: server {addr} (release build, default limits), flood from 127.0.0.2, measurements from 127.0.0.1"
        );

        // Warm up, then the baseline.
        let mut warm = Sample::default();
        for _ in 0..3 {
            login(&http, &base, &mut warm).await;
        }
        let (mut base_health, mut base_logins) = (Sample::default(), Sample::default());
        for _ in 0..100 {
            healthz(&fresh, &base, &mut base_health).await;
        }
        for _ in 0..20 {
            login(&http, &base, &mut base_logins).await;
        }

        let idle = args.connections / 2;
        let plan = FloodPlan {
            from: IpAddr::from([127, 0, 0, 2]),
            idle,
            slow: args.connections - idle,
            trickle: Duration::from_secs(1),
            reconnect_after: args.reconnect,
        };
        let flood_started = Instant::now();
        let flood = Flood::start(server, &plan);
        let deadline = Instant::now() + Duration::from_secs(15);
        while (flood.snapshot().opened as usize) < args.connections && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let up = flood.snapshot();
        println!(
            "\nflood: {} idle + {} slow connections from 127.0.0.2, reopened {} ms after the server closes them; \
             {} opened within {:.1} s",
            plan.idle,
            plan.slow,
            plan.reconnect_after.as_millis(),
            up.opened,
            flood_started.elapsed().as_secs_f64()
        );

        let (mut flood_health, mut flood_logins) = (Sample::default(), Sample::default());
        let until = Instant::now() + Duration::from_secs(args.seconds);
        while Instant::now() < until {
            for _ in 0..5 {
                healthz(&fresh, &base, &mut flood_health).await;
            }
            login(&http, &base, &mut flood_logins).await;
        }
        let seen = flood.snapshot();
        let counted = server_counts(&http, &base).await;
        flood.stop().await;

        println!("\nfrom 127.0.0.1, before the flood:");
        println!("{}", base_health.line("GET /healthz (new connection)"));
        println!("{}", base_logins.line("whole login (page to session)"));
        println!("\nfrom 127.0.0.1, during {} s of flood:", args.seconds);
        println!("{}", flood_health.line("GET /healthz (new connection)"));
        println!("{}", flood_logins.line("whole login (page to session)"));
        println!(
            "\nthe flood saw: {} connections opened, {} answered 503 and closed, {} closed by the server \
             without an answer (timeouts), {} connect failures, {} open at the end",
            seen.opened, seen.refused, seen.closed, seen.connect_failed, seen.open
        );
        println!("the server counted (end of the flood):");
        for line in counted {
            println!("  {line}");
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
