//! The result of a run: as a value (JSON with `--json`) and as text.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::args::{Config, Stop};
use crate::floor::Floor;
use crate::flows::Flow;
use crate::outcome::Step;
use crate::stats::{Collector, Summary};

/// One kind of failure.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    /// The step that failed.
    pub step: Step,
    /// `http-status`, `tif`, `timeout`, `connect`, `transport` or `protocol`.
    pub category: &'static str,
    /// What exactly (the status, the TIF and its meaning, the reason).
    pub detail: String,
    /// How many logins failed so.
    pub count: u64,
    /// The start of one offending reply.
    pub example: Option<String>,
}

/// Latencies of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepEntry {
    /// The step.
    pub step: Step,
    /// What it measures.
    pub label: &'static str,
    /// Its percentiles.
    #[serde(flatten)]
    pub summary: Summary,
}

/// The server process's CPU over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// The process id.
    pub pid: u32,
    /// Its command name.
    pub name: String,
    /// User + system CPU seconds used in the window (all threads).
    pub cpu_seconds: f64,
    /// CPU per successful login.
    pub per_login_us: Option<f64>,
    /// CPU seconds per wall second: 1.0 is one core busy all the time.
    pub cores_busy: f64,
    /// The resolution of the kernel's counters.
    pub tick_us: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The site (`--url`).
    pub url: String,
    /// The flow.
    pub flow: Flow,
    /// Login loops at once.
    pub concurrency: usize,
    /// Identities.
    pub phones: usize,
    /// The pacing, if any (logins per second).
    pub rate: Option<f64>,
    /// The unmeasured warm-up.
    pub warmup_seconds: f64,
    /// The measured window, first login's start to last login's end.
    pub elapsed_seconds: f64,
    /// Logins that ended in the window.
    pub attempted: u64,
    /// Logins that reached the logged-in result.
    pub succeeded: u64,
    /// Logins that failed.
    pub failed: u64,
    /// Successful logins per second of the window.
    pub logins_per_second: f64,
    /// Successful logins of identities new at the site (account created).
    pub new_identities: u64,
    /// Successful logins of returning identities.
    pub returning_identities: u64,
    /// Failures, by step and kind, most frequent first.
    pub errors: Vec<ErrorEntry>,
    /// Failures of kinds beyond the report's limit.
    pub other_errors: u64,
    /// Step latencies (network and server; the phone's signing excluded).
    pub steps: Vec<StepEntry>,
    /// Whole successful logins, start to finish (wall time, signing included).
    pub total: Summary,
    /// The phone's own work per login: key derivation, signing, parsing.
    pub client_work: Summary,
    /// With `--rate`: how late logins started after their slot.
    pub schedule_lag: Option<Summary>,
    /// Requests resent after a transient error (TIF 0x20).
    pub retries: u64,
    /// `/pag.sqrl` polls per login that polled.
    pub polls_per_login: Option<f64>,
    /// Page flow: `confirmed` events read before the ident reply (counted as 0 µs).
    pub confirmed_before_reply: u64,
    /// The server's CPU, with `--server-pid`.
    pub server_cpu: Option<ServerCpu>,
    /// The bench's own CPU seconds per second of the window (near its
    /// number of cores: the bench, not the server, limits the result).
    pub bench_cores_busy: Option<f64>,
    /// The Ed25519 verification floor measured in this run.
    pub floor: Floor,
    /// Floor per login / server CPU per login.
    pub floor_share: Option<f64>,
}

impl Report {
    /// Assembles the report of a measured window.
    pub fn new(
        config: &Config,
        mut collector: Collector,
        elapsed: Duration,
        server_cpu: Option<(u32, String, Duration, Duration)>,
        floor: Floor,
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut errors: Vec<ErrorEntry> = collector
            .errors
            .iter()
            .map(|((step, kind), count)| ErrorEntry {
                step: *step,
                category: kind.category(),
                detail: kind.to_string(),
                count: count.count,
                example: count.example.clone(),
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.step.cmp(&b.step)));
        let steps = collector
            .steps
            .iter_mut()
            .map(|(step, samples)| StepEntry {
                step: *step,
                label: step.label(),
                summary: Summary::of(samples),
            })
            .collect();
        let server_cpu = server_cpu.map(|(pid, name, used, tick)| {
            let cpu_seconds = used.as_secs_f64();
            ServerCpu {
                pid,
                name,
                cpu_seconds,
                per_login_us: (collector.succeeded > 0)
                    .then(|| cpu_seconds * 1e6 / collector.succeeded as f64),
                cores_busy: cpu_seconds / seconds,
                tick_us: tick.as_secs_f64() * 1e6,
            }
        });
        let floor_share = server_cpu
            .as_ref()
            .and_then(|cpu| cpu.per_login_us)
            .filter(|per_login| *per_login > 0.0)
            .map(|per_login| floor.per_login_us / per_login);
        let polling = collector.steps.get(&Step::Pag).map_or(0, Vec::len);
        Self {
            url: config.settings.site.endpoint(""),
            flow: config.settings.flow,
            concurrency: config.concurrency,
            phones: config.phones,
            rate: config.rate,
            warmup_seconds: config.warmup.as_secs_f64(),
            elapsed_seconds: elapsed.as_secs_f64(),
            attempted: collector.attempted,
            succeeded: collector.succeeded,
            failed: collector.failed(),
            logins_per_second: collector.succeeded as f64 / seconds,
            new_identities: collector.new_identities,
            returning_identities: collector.returning,
            errors,
            other_errors: collector.other_errors,
            steps,
            total: Summary::of(&mut collector.total),
            client_work: Summary::of(&mut collector.client_work),
            schedule_lag: (!collector.lag.is_empty()).then(|| Summary::of(&mut collector.lag)),
            retries: collector.retries,
            polls_per_login: (polling > 0).then(|| collector.polls as f64 / polling as f64),
            confirmed_before_reply: collector.confirmed_early,
            server_cpu,
            bench_cores_busy: None,
            floor,
            floor_share,
        }
    }

    /// The report as text for a terminal.
    pub fn to_text(&self, config: &Config) -> String {
        let mut out = String::new();
        let window = match config.stop {
            Stop::After(duration) => format!("{:.0} s", duration.as_secs_f64()),
            Stop::Logins(count) => format!("{count} logins"),
        };
        let pacing = match self.rate {
            Some(rate) => format!("paced at {rate} logins/s"),
            None => "flat out".to_owned(),
        };
        let _ = writeln!(
            out,
            "sqrl-bench: {} flow against {}, {} loops, {} phones, {window} after {:.0} s warm-up, {pacing}",
            flow_name(self.flow),
            self.url,
            self.concurrency,
            self.phones,
            self.warmup_seconds,
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "logins: {} ok, {} failed, in {:.2} s = {:.1} logins/s",
            self.succeeded, self.failed, self.elapsed_seconds, self.logins_per_second
        );
        let _ = writeln!(
            out,
            "        {} new identities (account created), {} returning",
            self.new_identities, self.returning_identities
        );
        if self.retries > 0 {
            let _ = writeln!(
                out,
                "        {} requests resent after a transient error",
                self.retries
            );
        }
        if !self.errors.is_empty() || self.other_errors > 0 {
            let _ = writeln!(out);
            let _ = writeln!(out, "errors:");
            for error in &self.errors {
                let _ = write!(
                    out,
                    "  {:>8}  {:<8} {}",
                    error.count,
                    error.step.name(),
                    error.detail
                );
                if let Some(example) = &error.example {
                    let _ = write!(out, "  [reply: {example:?}]");
                }
                let _ = writeln!(out);
            }
            if self.other_errors > 0 {
                let _ = writeln!(out, "  {:>8}  (other kinds)", self.other_errors);
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<8} {:<34} {:>8} {:>10} {:>10} {:>10} {:>10}",
            "step", "", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let mut row = |name: &str, label: &str, s: &Summary| {
            let _ = writeln!(
                out,
                "  {name:<8} {label:<34} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
                s.count,
                s.p50_us / 1e3,
                s.p95_us / 1e3,
                s.p99_us / 1e3,
                s.max_us / 1e3
            );
        };
        for step in &self.steps {
            row(step.step.name(), step.label, &step.summary);
        }
        row("total", "whole login (wall, incl. signing)", &self.total);
        row(
            "client",
            "phone signing + parsing per login",
            &self.client_work,
        );
        if let Some(lag) = &self.schedule_lag {
            row("lag", "paced start behind its slot", lag);
        }
        if let Some(polls) = self.polls_per_login {
            let _ = writeln!(out, "  /pag.sqrl polls per login: {polls:.2}");
        }
        if self.flow == Flow::Page && self.confirmed_before_reply > 0 {
            let _ = writeln!(
                out,
                "  confirmed reached the page before the phone read its reply in {} logins (counted as 0)",
                self.confirmed_before_reply
            );
        }
        let _ = writeln!(out);
        match &self.server_cpu {
            Some(cpu) => {
                let per_login = cpu
                    .per_login_us
                    .map_or("n/a (no login succeeded)".to_owned(), |us| {
                        format!("{us:.0} µs")
                    });
                let _ = writeln!(
                    out,
                    "server CPU (pid {} {}): {:.2} s in the window = {:.2} cores busy; per login: {per_login}",
                    cpu.pid, cpu.name, cpu.cpu_seconds, cpu.cores_busy
                );
            }
            None => {
                let _ = writeln!(out, "server CPU: not measured (give --server-pid)");
            }
        }
        if let Some(busy) = self.bench_cores_busy {
            let _ = writeln!(out, "bench CPU: {busy:.2} cores busy");
        }
        let clock = if self.floor.thread_cpu_time {
            "thread CPU time"
        } else {
            "wall time"
        };
        let _ = write!(
            out,
            "Ed25519 floor: verify_strict {:.1} µs ({clock}, {}-byte message, {} runs) x 2 = {:.1} µs per login",
            self.floor.verify_us,
            self.floor.message_bytes,
            self.floor.iterations,
            self.floor.per_login_us
        );
        match self.floor_share {
            Some(share) => {
                let _ = writeln!(
                    out,
                    "; floor / server CPU per login = {:.1}%",
                    share * 100.0
                );
            }
            None => {
                let _ = writeln!(out);
            }
        }
        out
    }
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Ssp => "ssp",
        Flow::Page => "page",
    }
}
