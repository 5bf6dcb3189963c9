//! Counting logins and summarising latencies. Every sample is kept (a
//! 20-second run at a few thousand logins per second is a few hundred
//! thousand durations), so percentiles are exact, not estimated.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::outcome::{ErrorKind, IdentityUse, LoginError, Step, Trace};

/// Percentiles of a set of durations, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median (nearest rank).
    pub p50_us: f64,
    /// 95th percentile (nearest rank).
    pub p95_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: Duration = samples.iter().sum();
        let mean = if samples.is_empty() {
            0.0
        } else {
            us(total) / samples.len() as f64
        };
        Self {
            count: samples.len(),
            mean_us: mean,
            p50_us: us(percentile(samples, 50.0)),
            p95_us: us(percentile(samples, 95.0)),
            p99_us: us(percentile(samples, 99.0)),
            max_us: us(samples.last().copied().unwrap_or_default()),
        }
    }
}

/// The value at percentile `p` of sorted `values`, by nearest rank (the
/// smallest value with at least p% of the samples at or below it).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

/// One kind of failure: how often, and the start of one offending reply.
#[derive(Debug, Clone, Default)]
pub struct ErrorCount {
    /// How many logins failed so.
    pub count: u64,
    /// The start of the first reply that caused it.
    pub example: Option<String>,
}

/// At most this many distinct failure kinds are told apart; more are
/// counted under one "other" entry, so that a server answering varied
/// garbage cannot grow the report without end.
pub const MAX_ERROR_KINDS: usize = 64;

/// Everything a set of logins recorded.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    /// Logins that ended (either way).
    pub attempted: u64,
    /// Logins that reached the logged-in result.
    pub succeeded: u64,
    /// Successful logins of an identity new at the site.
    pub new_identities: u64,
    /// Successful logins of a returning identity.
    pub returning: u64,
    /// Failures by step and kind.
    pub errors: BTreeMap<(Step, ErrorKind), ErrorCount>,
    /// Failures beyond [`MAX_ERROR_KINDS`] kinds.
    pub other_errors: u64,
    /// Step latencies (of every step that completed, also in logins that
    /// failed later).
    pub steps: BTreeMap<Step, Vec<Duration>>,
    /// Whole-login latencies of successful logins.
    pub total: Vec<Duration>,
    /// The phone's own work per login (signing, parsing).
    pub client_work: Vec<Duration>,
    /// How late each paced login started (with `--rate`).
    pub lag: Vec<Duration>,
    /// Requests resent after a transient error.
    pub retries: u64,
    /// `/pag.sqrl` polls.
    pub polls: u64,
    /// Page flow: `confirmed` events that arrived before the ident reply.
    pub confirmed_early: u64,
    /// Bytes signed, and requests signed (for the floor's message size).
    pub signed_bytes: u64,
    /// See [`Collector::signed_bytes`].
    pub signed_requests: u64,
}

impl Collector {
    /// Adds one login.
    pub fn record(&mut self, trace: Trace, result: Result<Duration, LoginError>) {
        self.attempted += 1;
        for (step, took) in trace.steps {
            self.steps.entry(step).or_default().push(took);
        }
        self.client_work.push(trace.client_work);
        self.retries += u64::from(trace.retries);
        self.polls += u64::from(trace.polls);
        self.confirmed_early += u64::from(trace.confirmed_early);
        self.signed_bytes += trace.signed_bytes as u64;
        self.signed_requests += u64::from(trace.signed_requests);
        match result {
            Ok(total) => {
                self.succeeded += 1;
                self.total.push(total);
                match trace.identity {
                    Some(IdentityUse::New) => self.new_identities += 1,
                    Some(IdentityUse::Returning) => self.returning += 1,
                    None => {}
                }
            }
            Err(error) => self.failed_with(error),
        }
    }

    fn failed_with(&mut self, error: LoginError) {
        let key = (error.step, error.kind);
        let known = self.errors.contains_key(&key);
        if !known && self.errors.len() >= MAX_ERROR_KINDS {
            self.other_errors += 1;
            return;
        }
        let entry = self.errors.entry(key).or_default();
        entry.count += 1;
        if entry.example.is_none() {
            entry.example = error.example;
        }
    }

    /// Logins that failed.
    pub fn failed(&self) -> u64 {
        self.attempted - self.succeeded
    }

    /// Adds another collector's logins to this one.
    pub fn merge(&mut self, other: Collector) {
        self.attempted += other.attempted;
        self.succeeded += other.succeeded;
        self.new_identities += other.new_identities;
        self.returning += other.returning;
        for (key, count) in other.errors {
            let known = self.errors.contains_key(&key);
            if !known && self.errors.len() >= MAX_ERROR_KINDS {
                self.other_errors += count.count;
                continue;
            }
            let entry = self.errors.entry(key).or_default();
            entry.count += count.count;
            if entry.example.is_none() {
                entry.example = count.example;
            }
        }
        self.other_errors += other.other_errors;
        for (step, samples) in other.steps {
            self.steps.entry(step).or_default().extend(samples);
        }
        self.total.extend(other.total);
        self.client_work.extend(other.client_work);
        self.lag.extend(other.lag);
        self.retries += other.retries;
        self.polls += other.polls;
        self.confirmed_early += other.confirmed_early;
        self.signed_bytes += other.signed_bytes;
        self.signed_requests += other.signed_requests;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut values = ms(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]);
        let summary = Summary::of(&mut values);
        assert_eq!(summary.count, 10);
        assert_eq!(summary.p50_us, 5_000.0);
        assert_eq!(summary.p95_us, 10_000.0);
        assert_eq!(summary.max_us, 10_000.0);
        assert_eq!(summary.mean_us, 5_500.0);
        assert_eq!(Summary::of(&mut []).p99_us, 0.0);
    }

    #[test]
    fn counts_add_up_across_merges() {
        let mut a = Collector::default();
        let mut trace = Trace::default();
        trace.step(Step::Query, Duration::from_millis(1));
        trace.identity = Some(IdentityUse::New);
        a.record(trace, Ok(Duration::from_millis(3)));
        let mut b = Collector::default();
        let failure = LoginError::new(Step::Ident, ErrorKind::Tif(0xC0)).with_body("dGlmPWMw");
        b.record(Trace::default(), Err(failure.clone()));
        b.record(Trace::default(), Err(failure));
        a.merge(b);
        assert_eq!((a.attempted, a.succeeded, a.failed()), (3, 1, 2));
        assert_eq!(a.new_identities, 1);
        let count = &a.errors[&(Step::Ident, ErrorKind::Tif(0xC0))];
        assert_eq!(count.count, 2);
        assert_eq!(count.example.as_deref(), Some("dGlmPWMw"));
    }

    #[test]
    fn error_kinds_are_capped() {
        let mut collector = Collector::default();
        for i in 0..100 {
            let kind = ErrorKind::protocol(format!("reason {i}"));
            collector.record(Trace::default(), Err(LoginError::new(Step::Nut, kind)));
        }
        assert_eq!(collector.errors.len(), MAX_ERROR_KINDS);
        assert_eq!(collector.other_errors, 100 - MAX_ERROR_KINDS as u64);
        assert_eq!(collector.failed(), 100);
    }
}
