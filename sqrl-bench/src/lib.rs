//! A login load generator for SQRL servers.
//!
//! It drives complete cross-device logins over real sockets, as a visitor's
//! browser and a phone would, against any server that speaks GRC's SQRL
//! Service Provider API (SPEC 9), or through this project's own login page
//! and event stream. It reports logins per second, failures by step and
//! kind, latency percentiles of every step, the server's CPU per login, and
//! next to it the Ed25519 verification floor measured in the same run.
//!
//! | module | concept |
//! |---|---|
//! | [`args`] | flags and the checked [`Config`] |
//! | [`site`] | the site's endpoints and SQRL links |
//! | [`http`] | browser (cookies, event stream) and phone connections |
//! | [`phone`] | an identity and its `query`/`ident`, via `sqrl_core::client` |
//! | [`flows`] | one whole login: [`flows::ssp`] or [`flows::page`] |
//! | [`runner`] | C login loops sharing a pool of phones |
//! | [`outcome`], [`stats`] | what a login recorded, and percentiles |
//! | [`cpu`], [`floor`] | server CPU from `/proc`; the Ed25519 floor |
//! | [`report`] | the result, as text or JSON |
//!
//! ```no_run
//! use sqrl_bench::{Config, Stop, flows::Flow, site::Site};
//! # async fn example() -> Result<(), sqrl_bench::BenchError> {
//! let site = Site::parse("http://127.0.0.1:8080")?;
//! let mut config = Config::new(site, Flow::Ssp, 4);
//! config.stop = Stop::Logins(40);
//! let report = sqrl_bench::run(&config).await?;
//! println!("{}", report.to_text(&config));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod args;
pub mod cpu;
pub mod floor;
pub mod flows;
pub mod http;
pub mod outcome;
pub mod phone;
pub mod report;
pub mod runner;
pub mod site;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

pub use args::{Config, Stop};
pub use report::Report;

use crate::cpu::{CpuError, ProcessCpu};
use crate::flows::Devices;
use crate::http::PhoneLink;
use crate::runner::{PhonePool, run_phase};
use crate::site::SiteError;

/// Why a run could not be made (as opposed to logins that failed, which
/// the report counts).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
    /// The site URL is unusable.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The server process cannot be measured.
    #[error("--server-pid: {0}")]
    Cpu(#[from] CpuError),
    /// Nothing answers HTTP at the site.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A login loop or the floor measurement stopped abnormally.
    #[error("{0}")]
    Task(String),
}

/// Runs the warm-up and the measured window of `config`, then measures the
/// Ed25519 floor, and returns the report.
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    config.check().map_err(BenchError::Config)?;
    let progress = |line: &str| {
        if config.progress {
            eprintln!("sqrl-bench: {line}");
        }
    };
    let server = config.server_pid.map(ProcessCpu::open).transpose()?;
    preflight(config).await?;

    progress(&format!("making {} identities", config.phones));
    let phones = config.phones;
    let pool = tokio::task::spawn_blocking(move || PhonePool::generate(phones))
        .await
        .map_err(|e| BenchError::Task(format!("making identities: {e}")))?;
    let pool = Arc::new(pool);
    let mut devices = Vec::with_capacity(config.concurrency);
    for _ in 0..config.concurrency {
        devices.push(Devices {
            browser: http::Browser::new(config.settings.timeout),
            phone: PhoneLink::new(config.settings.timeout),
        });
    }

    if !config.warmup.is_zero() {
        progress(&format!(
            "warming up for {:.1} s",
            config.warmup.as_secs_f64()
        ));
        let warm = run_phase(config, &pool, devices, Stop::After(config.warmup))
            .await
            .map_err(BenchError::Task)?;
        devices = warm.devices;
    }

    progress(&match config.stop {
        Stop::After(duration) => format!("measuring for {:.1} s", duration.as_secs_f64()),
        Stop::Logins(count) => format!("measuring {count} logins"),
    });
    // The bench's own CPU too: a load generator that is itself saturated
    // measures itself, not the server.
    let own = ProcessCpu::open(std::process::id()).ok();
    let own_before = own.as_ref().and_then(|own| own.used().ok());
    let cpu_before = server.as_ref().map(ProcessCpu::used).transpose()?;
    let phase = run_phase(config, &pool, devices, config.stop)
        .await
        .map_err(BenchError::Task)?;
    let cpu_after = server.as_ref().map(ProcessCpu::used).transpose()?;
    let own_after = own.as_ref().and_then(|own| own.used().ok());
    let bench_cpu = match (own_before, own_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    // The loops' connections close here, before the floor is timed.
    drop(phase.devices);

    progress("measuring the Ed25519 floor");
    let collector = phase.collector;
    let message_bytes = match collector.signed_requests {
        0 => 600,
        n => usize::try_from(collector.signed_bytes / n).unwrap_or(600),
    };
    let iterations = config.floor_iterations;
    let floor = tokio::task::spawn_blocking(move || floor::measure(message_bytes, iterations))
        .await
        .map_err(|e| BenchError::Task(format!("measuring the floor: {e}")))?;

    let server_cpu = match (server, cpu_before, cpu_after) {
        (Some(server), Some(before), Some(after)) => Some((
            server.pid(),
            server.name().to_owned(),
            after.saturating_sub(before),
            server.tick(),
        )),
        _ => None,
    };
    let mut report = Report::new(config, collector, phase.elapsed, server_cpu, floor);
    report.bench_cores_busy =
        bench_cpu.map(|used| used.as_secs_f64() / phase.elapsed.as_secs_f64().max(1e-9));
    Ok(report)
}

/// Fails early when nothing listens at the site. `/pag.sqrl` without
/// parameters changes nothing on an SSP server (it answers 400). Only a
/// refused connection or silence stops the run: a server that answers
/// anything, even broken HTTP, is measured, and its failures counted.
async fn preflight(config: &Config) -> Result<(), BenchError> {
    let url = config.settings.site.endpoint("/pag.sqrl");
    let timeout = config.settings.timeout.min(Duration::from_secs(5));
    http::reachable(&url, timeout)
        .await
        .map_err(|kind| BenchError::Unreachable {
            url,
            reason: kind.to_string(),
        })
}
