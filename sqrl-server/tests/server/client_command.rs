//! `sqrl-server client new` and `client hash`, run as an operator would:
//! the printed table, pasted into a configuration file, is accepted by
//! `sqrl-server --config`, and the secret shown once authenticates the
//! relying party at its token endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_sqrl-server");
const CALLBACK: &str = "http://127.0.0.1:9/wiki/callback";

/// Runs the binary with `args`, `stdin` as its input.
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A token request of `wiki` with `secret` for a code that was never issued.
async fn token_request(token_endpoint: &str, secret: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(token_endpoint)
        .basic_auth("wiki", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "never-issued"),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_registered_client_is_accepted_and_its_secret_authenticates_it() {
    let new = run(
        &[
            "client",
            "new",
            "--id",
            "wiki",
            "--name",
            "The Wiki",
            "--redirect-uri",
            CALLBACK,
        ],
        "",
    );
    assert!(new.status.success(), "{}", text(&new.stderr));
    let table = text(&new.stdout);
    let notice = text(&new.stderr);
    let secret = notice.lines().last().unwrap().trim().to_owned();
    assert_eq!(secret.len(), 43, "32 bytes, base64url: {notice}");
    assert!(!table.contains(&secret), "the table never holds the secret");

    // `client hash` agrees with the table's hash.
    let hashed = run(&["client", "hash"], &format!("{secret}\n"));
    assert!(hashed.status.success(), "{}", text(&hashed.stderr));
    let hash = text(&hashed.stdout).trim().to_owned();
    assert!(
        table.contains(&format!("client_secret_sha256 = \"{hash}\"")),
        "{table}"
    );

    // Pasted into a configuration file, as it is.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sqrl.toml");
    std::fs::write(&config, &table).unwrap();
    let (mut server, addr) = common::spawn_server(
        BINARY,
        &[
            "--config".into(),
            config.into_os_string(),
            "--db".into(),
            dir.path().join("sqrl.db").into_os_string(),
        ],
    );
    let discovery: Value = reqwest::get(format!("http://{addr}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap().to_owned();

    // The secret authenticates: the fake code is what is refused.
    let (status, body) = token_request(&token_endpoint, &secret).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    // Any other secret does not.
    let (status, body) = token_request(&token_endpoint, &hash).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    for (args, stdin, reason) in [
        (
            &[
                "client",
                "new",
                "--id",
                "wiki",
                "--redirect-uri",
                "http://wiki.example/cb",
            ][..],
            "",
            "invalid setting oidc.clients.redirect_uris",
        ),
        (
            &["client", "new", "--id", "a b", "--redirect-uri", CALLBACK],
            "",
            "invalid setting oidc.clients.client_id",
        ),
        (&["client", "hash"], "too short\n", "at least 32 characters"),
        // The service's flags are no part of a command.
        (
            &["--db", "x.db", "client", "hash"],
            "0123456789abcdef0123456789abcdef",
            "cannot be used with",
        ),
    ] {
        let output = run(args, stdin);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed a table");
    }
}

#[test]
fn help_says_where_the_secret_goes() {
    let output = run(&["client", "new", "--help"], "");
    assert!(output.status.success());
    let help = text(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for expected in [
        "--redirect-uri",
        "--public",
        "goes to standard error, this once",
        "never logged",
        "client_secret_sha256",
    ] {
        assert!(help.contains(expected), "{expected:?} in {help}");
    }
    let top = text(&run(&["--help"], "").stdout);
    assert!(top.contains("client"), "{top}");
    assert!(top.contains("--bind"), "{top}");
}
