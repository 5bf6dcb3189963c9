//! Prometheus metrics (`prometheus-client`): logins, client requests and
//! their failures by TIF, defences that refused a request, connections and
//! event streams, and latency histograms.
//!
//! `/metrics` is served in the Prometheus text format (version 0.0.4), whose
//! counter names carry their `_total` suffix in every line.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::InFlight;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The TIF bit of a failed command (SPEC: 0x40).
const TIF_COMMAND_FAILED: u32 = 0x40;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandResult {
    command: String,
    tif: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TifResult {
    tif: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteClass {
    route: String,
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Command {
    command: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

type ByReason = Family<Reason, Counter>;
type Latency = Family<Command, Histogram, fn() -> Histogram>;
type RouteLatency = Family<Route, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The service's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    client_requests: Family<CommandResult, Counter>,
    client_failures: Family<TifResult, Counter>,
    client_latency: Latency,
    logins: Family<Method, Counter>,
    http_responses: Family<RouteClass, Counter>,
    http_latency: RouteLatency,
    active_sessions: Gauge,
    logins_in_flight: Family<Kind, Gauge>,
    notify_latency: Histogram,
    rate_limited: Counter,
    refused: ByReason,
    open_connections: Gauge,
    refused_connections: ByReason,
    accept_errors: Counter,
    open_event_streams: Gauge,
    refused_event_streams: ByReason,
    replaced_event_streams: Counter,
    webhooks: WebhookMetrics,
    oidc: Family<Outcome, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The login-event outbox and its deliveries.
#[derive(Debug, Default)]
struct WebhookMetrics {
    delivered: Counter,
    retried: Counter,
    dead: Counter,
    pending_rows: Gauge,
    dead_rows: Gauge,
}

impl WebhookMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "sqrl_webhook_deliveries",
            "Login events delivered to a webhook endpoint (2xx)",
            metrics.delivered.clone(),
        );
        registry.register(
            "sqrl_webhook_retries",
            "Failed webhook attempts that will be tried again",
            metrics.retried.clone(),
        );
        registry.register(
            "sqrl_webhook_dead",
            "Webhook deliveries given up after their last attempt",
            metrics.dead.clone(),
        );
        registry.register(
            "sqrl_webhook_outbox_pending",
            "Outbox rows not yet delivered (as of the worker's last look)",
            metrics.pending_rows.clone(),
        );
        registry.register(
            "sqrl_webhook_outbox_dead",
            "Outbox rows given up on (as of the worker's last look)",
            metrics.dead_rows.clone(),
        );
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder appends it.
        let client_requests = Family::default();
        registry.register(
            "sqrl_client_requests",
            "SQRL client requests by command, reply TIF (hex) and result (ok, or the \
             failure's name)",
            client_requests.clone(),
        );
        let client_failures = Family::default();
        registry.register(
            "sqrl_client_failures",
            "SQRL client requests whose reply had TIF 0x40, by TIF and failure name",
            client_failures.clone(),
        );
        let logins = Family::default();
        registry.register(
            "sqrl_logins",
            "Browser sessions created, by method",
            logins.clone(),
        );
        let http_responses = Family::default();
        registry.register(
            "sqrl_http_responses",
            "HTTP responses by route (the matched path pattern, or `unmatched`) and status class",
            http_responses.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "sqrl_rate_limited",
            "Requests refused by the per-address rate limit",
            rate_limited.clone(),
        );
        let oidc = Family::<Outcome, Counter>::default();
        registry.register(
            "sqrl_oidc_outcomes",
            "OpenID Connect provider outcomes: codes and tokens issued, and each error code",
            oidc.clone(),
        );
        let refused = ByReason::default();
        registry.register(
            "sqrl_requests_refused",
            "Requests refused by a defence, by reason",
            refused.clone(),
        );
        let client_latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "sqrl_client_request_seconds",
            "Time to answer a SQRL client request",
            client_latency.clone(),
        );
        let http_latency: RouteLatency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "sqrl_http_request_seconds",
            "Time to answer an HTTP request (to its headers), by route",
            http_latency.clone(),
        );
        let build_info = Family::<Build, Gauge>::default();
        build_info
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "sqrl_build_info",
            "Always 1, labelled with the running version",
            build_info,
        );
        let active_sessions = Gauge::default();
        registry.register(
            "sqrl_active_sessions",
            "Browser sessions live now (not expired, not idle past the timeout), counted in \
             the store at each scrape: every instance on a shared database sees them all",
            active_sessions.clone(),
        );
        let logins_in_flight = Family::<Kind, Gauge>::default();
        registry.register(
            "sqrl_logins_in_flight",
            "What a crash may lose, counted at each scrape: login attempts, live nuts \
             (conversations) and single-use links not yet redeemed",
            logins_in_flight.clone(),
        );
        let notify_latency = latency_histogram();
        registry.register(
            "sqrl_page_notify_seconds",
            "From a committed change to the waiting page's event",
            notify_latency.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "sqrl_open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let refused_connections = ByReason::default();
        registry.register(
            "sqrl_refused_connections",
            "Connections closed unserved: over a cap (per-address, total) or a TLS handshake \
             that failed or timed out (tls-handshake)",
            refused_connections.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "sqrl_accept_errors",
            "Failures to accept a connection (such as no file descriptor left)",
            accept_errors.clone(),
        );
        let open_event_streams = Gauge::default();
        registry.register(
            "sqrl_open_event_streams",
            "Login event streams open now",
            open_event_streams.clone(),
        );
        let refused_event_streams = ByReason::default();
        registry.register(
            "sqrl_refused_event_streams",
            "Login event streams refused over a cap, by cap",
            refused_event_streams.clone(),
        );
        let replaced_event_streams = Counter::default();
        registry.register(
            "sqrl_replaced_event_streams",
            "Event streams closed for a newer one of the same attempt",
            replaced_event_streams.clone(),
        );
        let webhooks = WebhookMetrics::register(&mut registry);
        Self {
            registry,
            webhooks,
            client_requests,
            client_failures,
            client_latency,
            logins,
            http_responses,
            http_latency,
            active_sessions,
            logins_in_flight,
            notify_latency,
            rate_limited,
            refused,
            open_connections,
            refused_connections,
            accept_errors,
            open_event_streams,
            refused_event_streams,
            replaced_event_streams,
            oidc,
        }
    }
}

impl Metrics {
    /// Counts one login event delivered.
    pub fn webhook_delivered(&self) {
        self.webhooks.delivered.inc();
    }

    /// Counts one failed webhook attempt that will be retried.
    pub fn webhook_retried(&self) {
        self.webhooks.retried.inc();
    }

    /// Counts one webhook delivery given up.
    pub fn webhook_dead(&self) {
        self.webhooks.dead.inc();
    }

    /// Sets the outbox gauges.
    pub fn webhook_outbox(&self, pending: u64, dead: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.webhooks.pending_rows.set(gauge(pending));
        self.webhooks.dead_rows.set(gauge(dead));
    }

    /// Counts one `/cli.sqrl` request by command, reply TIF (hex) and
    /// result: `ok`, or the name of the failure
    /// ([`sqrl_core::server::Failure::name`]).
    pub fn client_request(
        &self,
        command: &str,
        tif: &str,
        result: &'static str,
        elapsed: Duration,
    ) {
        self.client_requests
            .get_or_create(&CommandResult {
                command: command.to_owned(),
                tif: tif.to_owned(),
                result,
            })
            .inc();
        let failed = u32::from_str_radix(tif, 16).is_ok_and(|bits| bits & TIF_COMMAND_FAILED != 0);
        if failed {
            self.client_failures
                .get_or_create(&TifResult {
                    tif: tif.to_owned(),
                    result,
                })
                .inc();
        }
        self.client_latency
            .get_or_create(&Command {
                command: command.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one session handed to a browser.
    pub fn login(&self, method: &str) {
        self.logins
            .get_or_create(&Method {
                method: method.to_owned(),
            })
            .inc();
    }

    /// Counts one HTTP response to `route` (the matched path pattern, such
    /// as `/account/sessions/{id}/revoke`, labelled `.../:id/revoke`; never
    /// the path itself, which may carry identifiers) and its latency.
    pub fn http_response(&self, route: &str, status: u16, elapsed: Duration) {
        let class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let route = route_label(route);
        self.http_latency
            .get_or_create(&Route {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.http_responses
            .get_or_create(&RouteClass { route, class })
            .inc();
    }

    /// Sets what the store counts at a scrape: live sessions and logins in
    /// flight.
    pub fn store_counts(&self, active_sessions: u64, in_flight: InFlight) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.active_sessions.set(gauge(active_sessions));
        for (kind, count) in [
            ("attempts", in_flight.attempts),
            ("conversations", in_flight.conversations),
            ("links", in_flight.links),
        ] {
            self.logins_in_flight
                .get_or_create(&Kind { kind })
                .set(gauge(count));
        }
    }

    /// Records how long a page update took from the notification (after the
    /// commit) to the event being handed to the page's stream.
    pub fn page_notified(&self, elapsed: Duration) {
        self.notify_latency.observe(elapsed.as_secs_f64());
    }

    /// Counts one outcome of the OpenID Connect provider: `code-issued`,
    /// `tokens-issued`, `token-revoked`, `refused-request`, or an OAuth
    /// error code (`invalid_grant`, `login_required`, ...).
    pub fn oidc(&self, outcome: &'static str) {
        self.oidc.get_or_create(&Outcome { outcome }).inc();
    }

    /// Counts one request refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts one request refused by a defence other than the rate limit:
    /// `misdirected` (a `Host` that is not the public origin),
    /// `cross-site-post` (a form post from another site), `other-browser`
    /// (a same-device sign-in link opened in a browser that did not start the
    /// login), `return-url` (a login page asked to return somewhere it may
    /// not, `rd=`).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// Counts one accepted connection as open.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// Counts one open connection as closed.
    pub fn connection_closed(&self) {
        decrement_to_zero(&self.open_connections);
    }

    /// Counts one connection refused over a cap (`per-address`, `total`) or
    /// closed before it sent a request (`tls-handshake`).
    pub fn connection_refused(&self, reason: &'static str) {
        self.refused_connections
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Counts one failure to accept a connection (out of file descriptors...).
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Counts one login event stream as open.
    pub fn event_stream_opened(&self) {
        self.open_event_streams.inc();
    }

    /// Counts one open event stream as closed.
    pub fn event_stream_closed(&self) {
        decrement_to_zero(&self.open_event_streams);
    }

    /// Counts one event stream refused over a cap (`per-address`, `total`).
    pub fn event_stream_refused(&self, reason: &'static str) {
        self.refused_event_streams
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Counts one event stream closed because a newer one of its attempt
    /// took its place.
    pub fn event_stream_replaced(&self) {
        self.replaced_event_streams.inc();
    }

    /// The Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        if let Err(error) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "encoding metrics");
        }
        out
    }
}

/// A route pattern as a label value: `/account/sessions/:id/revoke` for the
/// router's `{id}`, since many scrapers' parsers end a label set at the
/// first `}`, even inside a quoted value.
fn route_label(pattern: &str) -> String {
    if pattern.contains(['{', '}']) {
        pattern
            .replace("{*", "*")
            .replace('{', ":")
            .replace('}', "")
    } else {
        pattern.to_owned()
    }
}

/// A gauge of things open never goes below zero, even if a close were
/// counted twice.
fn decrement_to_zero(gauge: &Gauge) {
    let open: &AtomicI64 = gauge.inner();
    let _ = open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
        (now > 0).then(|| now - 1)
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Parses the exposition with an independent parser: every sample of
    /// `text`, as `name{labels} value` with labels sorted by name.
    fn samples(text: &str) -> Vec<String> {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
        scrape
            .samples
            .iter()
            .map(|sample| {
                let mut labels: Vec<_> = sample
                    .labels
                    .iter()
                    .map(|(name, value)| format!("{name}=\"{value}\""))
                    .collect();
                labels.sort();
                let value = match &sample.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v.to_string(),
                    other => format!("{other:?}"),
                };
                format!("{}{{{}}} {value}", sample.metric, labels.join(","))
            })
            .collect()
    }

    #[test]
    fn renders_counters_failures_and_histograms() {
        let metrics = Metrics::default();
        metrics.client_request("query", "5", "ok", Duration::from_millis(2));
        metrics.client_request("ident", "c0", "signature", Duration::from_millis(1));
        metrics.client_request("ident", "c0", "signature", Duration::from_millis(1));
        metrics.login("cross-device");
        let text = metrics.render();
        assert!(
            text.contains(
                "sqrl_client_requests_total{command=\"query\",tif=\"5\",result=\"ok\"} 1"
            )
        );
        assert!(text.contains("sqrl_client_failures_total{tif=\"c0\",result=\"signature\"} 2"));
        assert!(!text.contains("sqrl_client_failures_total{tif=\"5\""));
        assert!(text.contains("sqrl_logins_total{method=\"cross-device\"} 1"));
        assert!(
            text.contains("sqrl_client_request_seconds_bucket{command=\"ident\",le=\"0.001\"} 2")
        );
        assert!(text.contains("sqrl_client_request_seconds_count{command=\"query\"} 1"));
        assert!(text.contains("# TYPE sqrl_client_requests_total counter\n"));
    }

    #[test]
    fn the_exposition_parses_with_every_family_typed() {
        let metrics = Metrics::default();
        metrics.client_request("ident", "c0", "malformed", Duration::from_millis(3));
        metrics.login("same-device");
        metrics.http_response("/healthz", 503, Duration::from_millis(7));
        metrics.store_counts(
            3,
            InFlight {
                attempts: 2,
                conversations: 5,
                links: 0,
            },
        );
        metrics.page_notified(Duration::from_millis(1));
        metrics.rate_limited();
        metrics.refused("misdirected");
        metrics.connection_opened();
        metrics.connection_refused("total");
        metrics.accept_error();
        metrics.event_stream_opened();
        metrics.event_stream_refused("per-address");
        metrics.event_stream_replaced();
        let text = metrics.render();
        let samples = samples(&text);
        for expected in [
            "sqrl_client_requests_total{command=\"ident\",result=\"malformed\",tif=\"c0\"} 1",
            "sqrl_client_failures_total{result=\"malformed\",tif=\"c0\"} 1",
            "sqrl_logins_total{method=\"same-device\"} 1",
            "sqrl_http_responses_total{class=\"5xx\",route=\"/healthz\"} 1",
            "sqrl_active_sessions{} 3",
            "sqrl_logins_in_flight{kind=\"attempts\"} 2",
            "sqrl_logins_in_flight{kind=\"conversations\"} 5",
            "sqrl_logins_in_flight{kind=\"links\"} 0",
            "sqrl_rate_limited_total{} 1",
            "sqrl_requests_refused_total{reason=\"misdirected\"} 1",
            "sqrl_open_connections{} 1",
            "sqrl_refused_connections_total{reason=\"total\"} 1",
            "sqrl_accept_errors_total{} 1",
            "sqrl_open_event_streams{} 1",
            "sqrl_refused_event_streams_total{reason=\"per-address\"} 1",
            "sqrl_replaced_event_streams_total{} 1",
        ] {
            assert!(
                samples.iter().any(|s| s == expected),
                "{expected} in {samples:#?}"
            );
        }
        let build = format!(
            "sqrl_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(samples.contains(&build), "{build} in {samples:#?}");
        for histogram in [
            "sqrl_client_request_seconds",
            "sqrl_http_request_seconds",
            "sqrl_page_notify_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {histogram} histogram\n")),
                "{histogram}"
            );
            assert!(
                samples
                    .iter()
                    .any(|s| s.starts_with(histogram) && s.contains("Histogram")),
                "{histogram} parses as a histogram"
            );
        }
        // Every sample line belongs to a family that declared its type.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| text.contains(&format!("# TYPE {family} histogram")))
                .unwrap_or(name);
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }

    #[test]
    fn route_labels_survive_a_naive_parser() {
        let metrics = Metrics::default();
        metrics.http_response(
            "/account/sessions/{id}/revoke",
            404,
            Duration::from_millis(1),
        );
        metrics.http_response("/static/{*file}", 200, Duration::from_millis(1));
        let samples = samples(&metrics.render());
        for expected in [
            "sqrl_http_responses_total{class=\"4xx\",route=\"/account/sessions/:id/revoke\"} 1",
            "sqrl_http_responses_total{class=\"2xx\",route=\"/static/*file\"} 1",
        ] {
            assert!(
                samples.iter().any(|s| s == expected),
                "{expected} in {samples:#?}"
            );
        }
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
