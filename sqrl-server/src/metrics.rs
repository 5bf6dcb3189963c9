//! Prometheus metrics in the text exposition format: logins, client requests
//! and their failures by TIF, and latency histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// `sqrl_client_requests_total{command, tif}`.
    client_requests: BTreeMap<(String, String), u64>,
    /// `sqrl_logins_total{method}`.
    logins: BTreeMap<String, u64>,
    /// `sqrl_http_responses_total{class}`.
    http_responses: BTreeMap<String, u64>,
    /// `sqrl_client_request_seconds{command}`.
    client_latency: BTreeMap<String, Histogram>,
    /// `sqrl_http_request_seconds`.
    http_latency: Histogram,
    /// `sqrl_page_notify_seconds`.
    notify_latency: Histogram,
    /// `sqrl_rate_limited_total`.
    rate_limited: u64,
    /// `sqrl_requests_refused_total{reason}`.
    refused: BTreeMap<&'static str, u64>,
    /// Connections and event streams (see [`Metrics::connection_opened`] and below).
    connections: ConnectionCounts,
}

/// Open connections and event streams, and what was refused.
#[derive(Debug, Default)]
struct ConnectionCounts {
    /// `sqrl_open_connections`.
    open: u64,
    /// `sqrl_refused_connections_total{reason}`.
    refused: BTreeMap<&'static str, u64>,
    /// `sqrl_accept_errors_total`.
    accept_errors: u64,
    /// `sqrl_open_event_streams`.
    open_streams: u64,
    /// `sqrl_refused_event_streams_total{reason}`.
    refused_streams: BTreeMap<&'static str, u64>,
    /// `sqrl_replaced_event_streams_total`.
    replaced_streams: u64,
}

/// The service's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Counts one `/cli.sqrl` request by command and reply TIF.
    pub fn client_request(&self, command: &str, tif: &str, elapsed: Duration) {
        self.with(|inner| {
            *inner
                .client_requests
                .entry((command.to_owned(), tif.to_owned()))
                .or_default() += 1;
            inner
                .client_latency
                .entry(command.to_owned())
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// Counts one session handed to a browser.
    pub fn login(&self, method: &str) {
        self.with(|inner| *inner.logins.entry(method.to_owned()).or_default() += 1);
    }

    /// Counts one HTTP response and its latency.
    pub fn http_response(&self, status: u16, elapsed: Duration) {
        let class = format!("{}xx", status / 100);
        self.with(|inner| {
            *inner.http_responses.entry(class).or_default() += 1;
            inner.http_latency.observe(elapsed.as_secs_f64());
        });
    }

    /// Records how long a page update took from the notification (after the
    /// commit) to the event being handed to the page's stream.
    pub fn page_notified(&self, elapsed: Duration) {
        self.with(|inner| inner.notify_latency.observe(elapsed.as_secs_f64()));
    }

    /// Counts one request refused by the rate limit.
    pub fn rate_limited(&self) {
        self.with(|inner| inner.rate_limited += 1);
    }

    /// Counts one request refused by a defence other than the rate limit:
    /// `misdirected` (a `Host` that is not the public origin),
    /// `cross-site-post` (a form post from another site), `other-browser`
    /// (a same-device sign-in link opened in a browser that did not start the
    /// login).
    pub fn refused(&self, reason: &'static str) {
        self.with(|inner| *inner.refused.entry(reason).or_default() += 1);
    }

    /// Counts one accepted connection as open.
    pub fn connection_opened(&self) {
        self.with(|inner| inner.connections.open += 1);
    }

    /// Counts one open connection as closed.
    pub fn connection_closed(&self) {
        self.with(|inner| inner.connections.open = inner.connections.open.saturating_sub(1));
    }

    /// Counts one connection refused over a cap (`per-address`, `total`) or
    /// closed before it sent a request (`tls-handshake`).
    pub fn connection_refused(&self, reason: &'static str) {
        self.with(|inner| *inner.connections.refused.entry(reason).or_default() += 1);
    }

    /// Counts one failure to accept a connection (out of file descriptors...).
    pub fn accept_error(&self) {
        self.with(|inner| inner.connections.accept_errors += 1);
    }

    /// Counts one login event stream as open.
    pub fn event_stream_opened(&self) {
        self.with(|inner| inner.connections.open_streams += 1);
    }

    /// Counts one open event stream as closed.
    pub fn event_stream_closed(&self) {
        self.with(|inner| {
            inner.connections.open_streams = inner.connections.open_streams.saturating_sub(1);
        });
    }

    /// Counts one event stream refused over a cap (`per-address`, `total`).
    pub fn event_stream_refused(&self, reason: &'static str) {
        self.with(|inner| *inner.connections.refused_streams.entry(reason).or_default() += 1);
    }

    /// Counts one event stream closed because a newer one of its attempt
    /// took its place.
    pub fn event_stream_replaced(&self) {
        self.with(|inner| inner.connections.replaced_streams += 1);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.with(|inner| {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "# HELP sqrl_client_requests_total SQRL client requests by command and reply TIF (hex).\n\
                 # TYPE sqrl_client_requests_total counter"
            );
            for ((command, tif), count) in &inner.client_requests {
                let _ = writeln!(
                    out,
                    "sqrl_client_requests_total{{command=\"{command}\",tif=\"{tif}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP sqrl_client_failures_total SQRL client requests whose reply had TIF 0x40, by TIF.\n\
                 # TYPE sqrl_client_failures_total counter"
            );
            let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
            for ((_, tif), count) in &inner.client_requests {
                let failed = u32::from_str_radix(tif, 16).is_ok_and(|bits| bits & 0x40 != 0);
                if failed {
                    *failures.entry(tif.as_str()).or_default() += count;
                }
            }
            for (tif, count) in failures {
                let _ = writeln!(out, "sqrl_client_failures_total{{tif=\"{tif}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "# HELP sqrl_logins_total Browser sessions created, by method.\n\
                 # TYPE sqrl_logins_total counter"
            );
            for (method, count) in &inner.logins {
                let _ = writeln!(out, "sqrl_logins_total{{method=\"{method}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "# HELP sqrl_http_responses_total HTTP responses by status class.\n\
                 # TYPE sqrl_http_responses_total counter"
            );
            for (class, count) in &inner.http_responses {
                let _ = writeln!(out, "sqrl_http_responses_total{{class=\"{class}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "# HELP sqrl_rate_limited_total Requests refused by the per-address rate limit.\n\
                 # TYPE sqrl_rate_limited_total counter\nsqrl_rate_limited_total {}",
                inner.rate_limited
            );
            write_by_reason(
                &mut out,
                "sqrl_requests_refused_total",
                "Requests refused by a defence, by reason.",
                &inner.refused,
            );
            let _ = writeln!(
                out,
                "# HELP sqrl_client_request_seconds Time to answer a SQRL client request.\n\
                 # TYPE sqrl_client_request_seconds histogram"
            );
            for (command, histogram) in &inner.client_latency {
                write_histogram(
                    &mut out,
                    "sqrl_client_request_seconds",
                    &format!("command=\"{command}\","),
                    histogram,
                );
            }
            let _ = writeln!(
                out,
                "# HELP sqrl_http_request_seconds Time to answer any HTTP request.\n\
                 # TYPE sqrl_http_request_seconds histogram"
            );
            write_histogram(&mut out, "sqrl_http_request_seconds", "", &inner.http_latency);
            let _ = writeln!(
                out,
                "# HELP sqrl_page_notify_seconds From a committed change to the waiting page's event.\n\
                 # TYPE sqrl_page_notify_seconds histogram"
            );
            write_histogram(&mut out, "sqrl_page_notify_seconds", "", &inner.notify_latency);
            write_connections(&mut out, &inner.connections);
            out
        })
    }
}

fn write_connections(out: &mut String, counts: &ConnectionCounts) {
    let _ = writeln!(
        out,
        "# HELP sqrl_open_connections Client connections open now.\n\
         # TYPE sqrl_open_connections gauge\nsqrl_open_connections {}",
        counts.open
    );
    write_by_reason(
        out,
        "sqrl_refused_connections_total",
        "Connections closed unserved: over a cap (per-address, total) or a TLS handshake \
         that failed or timed out (tls-handshake).",
        &counts.refused,
    );
    let _ = writeln!(
        out,
        "# HELP sqrl_accept_errors_total Failures to accept a connection (such as no file descriptor left).\n\
         # TYPE sqrl_accept_errors_total counter\nsqrl_accept_errors_total {}",
        counts.accept_errors
    );
    let _ = writeln!(
        out,
        "# HELP sqrl_open_event_streams Login event streams open now.\n\
         # TYPE sqrl_open_event_streams gauge\nsqrl_open_event_streams {}",
        counts.open_streams
    );
    write_by_reason(
        out,
        "sqrl_refused_event_streams_total",
        "Login event streams refused over a cap, by cap.",
        &counts.refused_streams,
    );
    let _ = writeln!(
        out,
        "# HELP sqrl_replaced_event_streams_total Event streams closed for a newer one of the same attempt.\n\
         # TYPE sqrl_replaced_event_streams_total counter\nsqrl_replaced_event_streams_total {}",
        counts.replaced_streams
    );
}

/// A counter family labelled by `reason`.
fn write_by_reason(out: &mut String, name: &str, help: &str, counts: &BTreeMap<&'static str, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (reason, count) in counts {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
    }
}

fn write_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}le=\"+Inf\"}} {}",
        histogram.count
    );
    let trimmed = labels.trim_end_matches(',');
    if trimmed.is_empty() {
        let _ = writeln!(out, "{name}_sum {}", histogram.sum);
        let _ = writeln!(out, "{name}_count {}", histogram.count);
    } else {
        let _ = writeln!(out, "{name}_sum{{{trimmed}}} {}", histogram.sum);
        let _ = writeln!(out, "{name}_count{{{trimmed}}} {}", histogram.count);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_failures_and_histograms() {
        let metrics = Metrics::default();
        metrics.client_request("query", "5", Duration::from_millis(2));
        metrics.client_request("ident", "c0", Duration::from_millis(1));
        metrics.client_request("ident", "c0", Duration::from_millis(1));
        metrics.login("cross-device");
        let text = metrics.render();
        assert!(text.contains("sqrl_client_requests_total{command=\"query\",tif=\"5\"} 1"));
        assert!(text.contains("sqrl_client_failures_total{tif=\"c0\"} 2"));
        assert!(!text.contains("sqrl_client_failures_total{tif=\"5\"}"));
        assert!(text.contains("sqrl_logins_total{method=\"cross-device\"} 1"));
        assert!(
            text.contains("sqrl_client_request_seconds_bucket{command=\"ident\",le=\"0.001\"} 2")
        );
        assert!(text.contains("sqrl_client_request_seconds_count{command=\"query\"} 1"));
    }

    #[test]
    fn renders_connection_gauges_and_refusals() {
        let metrics = Metrics::default();
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.connection_refused("per-address");
        metrics.accept_error();
        metrics.event_stream_opened();
        metrics.event_stream_refused("total");
        metrics.event_stream_replaced();
        // A gauge never goes below zero.
        metrics.event_stream_closed();
        metrics.event_stream_closed();
        let text = metrics.render();
        assert!(text.contains("sqrl_open_connections 1\n"));
        assert!(text.contains("sqrl_refused_connections_total{reason=\"per-address\"} 1"));
        assert!(text.contains("sqrl_accept_errors_total 1\n"));
        assert!(text.contains("sqrl_open_event_streams 0\n"));
        assert!(text.contains("sqrl_refused_event_streams_total{reason=\"total\"} 1"));
        assert!(text.contains("sqrl_replaced_event_streams_total 1\n"));
        assert!(text.contains("# TYPE sqrl_open_event_streams gauge"));
    }
}
