//! `/metrics` as a scraper reads it: the whole exposition parses, and a
//! login moves the counters it should.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};
use sqrl_server::config::OperatorToken;

async fn scrape(h: &Harness) -> Scrape {
    let response = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

/// The value of the gauge `name` whose labels include `labels`.
fn gauge(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |sample: &&Sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    };
    match scrape.samples.iter().find(matches).map(|s| &s.value) {
        Some(Value::Gauge(value)) => Some(*value),
        Some(other) => panic!("{name} is not a gauge: {other:?}"),
        None => None,
    }
}

/// The value of the counter `name` whose labels include `labels` (0 if the
/// series does not exist yet).
fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matches = |sample: &&Sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    };
    match scrape.samples.iter().find(matches).map(|s| &s.value) {
        Some(Value::Counter(value)) => *value,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
        None => 0.0,
    }
}

#[tokio::test]
async fn a_login_moves_the_login_and_request_counters() {
    let h = Harness::start_with(|config| {
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let before = scrape(&h).await;
    let id = Identity::new();
    let _browser = h.logged_in_browser(&id, "Metrics/1.0").await;
    let after = scrape(&h).await;

    let logins = [("method", "cross-device")];
    assert_eq!(counter(&before, "sqrl_logins_total", &logins), 0.0);
    assert_eq!(counter(&after, "sqrl_logins_total", &logins), 1.0);
    let query = [("command", "query")];
    assert_eq!(
        counter(&after, "sqrl_client_requests_total", &query)
            - counter(&before, "sqrl_client_requests_total", &query),
        1.0
    );
    let histogram = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "sqrl_client_request_seconds" && s.labels.get("command") == Some("ident")
        })
        .map(|s| &s.value);
    assert!(
        matches!(histogram, Some(Value::Histogram(buckets)) if !buckets.is_empty()),
        "{histogram:?}"
    );
    // Every family the service declares is typed, so a scraper keeps it.
    for family in ["sqrl_http_responses_total", "sqrl_open_connections"] {
        assert!(
            after.docs.contains_key(family),
            "{family} has HELP: {:?}",
            after.docs.keys()
        );
    }
}

#[tokio::test]
async fn responses_are_counted_by_route_pattern_and_results_by_name() {
    let h = Harness::start_with(|config| {
        config.operator_token = Some(OperatorToken::new(OPERATOR_TOKEN));
    })
    .await;
    let id = Identity::new();
    let mut browser = h.logged_in_browser(&id, "Metrics/1.0").await;
    assert_eq!(
        browser
            .post("/account/sessions/987654/revoke")
            .await
            .status(),
        404
    );
    h.get("/no/such/page").await;
    // A SQRL request on a nut the server never issued.
    let never_issued = format!(
        "{}/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA",
        h.base().replacen("http://", "qrl://", 1)
    );
    let mut client = SqrlConversation::new(&h.http, &never_issued);
    let reply = client.query(&id, NONE).await;
    assert!(is_failure(&reply));
    let after = scrape(&h).await;

    // The pattern, not the path: the session id is not a label value.
    let revoke = [("route", "/account/sessions/:id/revoke"), ("class", "4xx")];
    let responses: Vec<_> = after
        .samples
        .iter()
        .filter(|s| s.metric == "sqrl_http_responses_total")
        .map(|s| format!("{:?} {:?}", s.labels, s.value))
        .collect();
    assert_eq!(
        counter(&after, "sqrl_http_responses_total", &revoke),
        1.0,
        "{responses:#?}"
    );
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("987654"))),
        "a path's identifier became a label"
    );
    let unmatched = [("route", "unmatched"), ("class", "4xx")];
    assert_eq!(
        counter(&after, "sqrl_http_responses_total", &unmatched),
        1.0
    );
    let unknown_nut = [("command", "query"), ("result", "unknown-nut")];
    assert_eq!(
        counter(&after, "sqrl_client_requests_total", &unknown_nut),
        1.0
    );
    let ok = [("command", "ident"), ("result", "ok")];
    assert_eq!(counter(&after, "sqrl_client_requests_total", &ok), 1.0);

    // Counted in the store at the scrape: the one logged-in browser.
    assert_eq!(gauge(&after, "sqrl_active_sessions", &[]), Some(1.0));
    assert!(gauge(&after, "sqrl_logins_in_flight", &[("kind", "attempts")]).is_some());
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(gauge(&after, "sqrl_build_info", &version), Some(1.0));
}
