//! What an operator sees of a running `sqrl-server` process: JSON log lines
//! with one access line per request and no token in them, readiness, and a
//! warning when the public origin cannot work for the address it listens on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Longer than any start-up or log line takes to appear.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `sqrl-server` process whose stdout (where it logs) is read line by line.
struct Server {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqrl-server"))
            .arg("--db")
            .arg(dir.path().join("sqrl.db"))
            .args(args)
            .env("SQRL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    /// Reads lines until one satisfies `wanted`, and returns it.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no log line {what}; saw:\n{}", self.seen.join("\n"))
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
}

fn blocking_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn json_logs_have_one_access_line_per_request_and_no_token() {
    let mut server = Server::start(&["--bind", "127.0.0.1:0", "--log-format", "json"]);
    let listening = json(&server.wait_for("listening", |line| line.contains("\"listening\"")));
    let base = listening["origin"].as_str().unwrap().to_owned();
    let http = blocking_client();

    let secret = "Zq7uQ3SECRETtokenVALUE9x";
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(format!("{base}/readyz")).await, 200);
    assert_eq!(get(format!("{base}/healthz")).await, 200);
    get(format!("{base}/login/collect?token={secret}")).await;
    assert_eq!(get(format!("{base}/no/such/{secret}")).await, 404);

    // Each request is one access line, in order, with the route pattern.
    let mut access = Vec::new();
    for _ in 0..4 {
        let line = server.wait_for("for each request", |line| {
            line.contains("sqrl_server::access")
        });
        access.push(json(&line));
    }
    let routes: Vec<_> = access
        .iter()
        .map(|line| line["route"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        routes,
        ["/readyz", "/healthz", "/login/collect", "unmatched"]
    );
    for line in &access {
        assert_eq!(line["target"], "sqrl_server::access");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["ip"], "127.0.0.1");
        assert!(line["status"].as_u64().is_some(), "{line}");
        assert!(line["micros"].as_u64().is_some(), "{line}");
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
    }
    assert_eq!(access[3]["status"], 404);
    // Every line is JSON; none carries the token from a path or a query.
    for line in &server.seen {
        json(line);
        assert!(!line.contains(secret), "a token reached the log: {line}");
    }
}

#[tokio::test]
async fn a_loopback_origin_on_a_public_address_is_warned_about() {
    let mut server = Server::start(&[
        "--bind",
        "0.0.0.0:0",
        "--public-origin",
        "http://127.0.0.1:8080",
    ]);
    let warning = server.wait_for("warning of the loopback origin", |line| {
        line.contains("WARN") && line.contains("loopback")
    });
    assert!(warning.contains("--public-origin"), "{warning}");
}

#[tokio::test]
async fn a_loopback_origin_on_a_loopback_address_is_not_warned_about() {
    let mut server = Server::start(&["--bind", "127.0.0.1:0"]);
    let listening = server.wait_for("listening", |line| line.contains("listening"));
    // The warning would come right after "listening"; a request's access
    // line comes later still.
    let origin = listening
        .split("origin=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let status = blocking_client()
        .get(format!("{origin}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    server.wait_for("the access line", |line| line.contains("/healthz"));
    assert!(
        !server.seen.iter().any(|line| line.contains("WARN")),
        "{:#?}",
        server.seen
    );
}
