//! The `sqrl-server` binary at start-up: a setting the protocol would refuse
//! stops it with the setting's name, and `--help` shows every default.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longer than any start-up; a server still running then accepted the settings.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs the binary with `args` (a fresh database, any free port) and `env`,
/// and returns how it ended, killing it if it keeps running.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqrl-server"))
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("sqrl.db"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sqrl-server {args:?} started instead of refusing its settings");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn refused_with(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(message), "{message:?} in {stderr}");
}

#[test]
fn a_sin_with_a_space_stops_the_server_at_start_up() {
    refused_with(&run(&["--sin", "a b"], &[]), "invalid setting sin: ");
    refused_with(&run(&[], &[("SQRL_SIN", "a b")]), "invalid setting sin: ");
}

#[test]
fn an_ask_button_the_protocol_refuses_stops_the_server_at_start_up() {
    refused_with(
        &run(
            &["--ask", "Continue?", "--ask-buttons", "Yes;/caf\u{e9}"],
            &[],
        ),
        "invalid setting ask-buttons: ",
    );
}

#[test]
fn a_setting_in_the_file_is_checked_like_its_flag_and_yields_to_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sqrl-server.toml");
    std::fs::write(&file, "sin = \"a b\"\n").unwrap();
    refused_with(
        &run(&["--config", file.to_str().unwrap()], &[]),
        "invalid setting sin: ",
    );
    // Only the winning value is checked: a refusal shows which one won.
    std::fs::write(&file, "sin = \"7\"\n").unwrap();
    refused_with(
        &run(
            &["--config", file.to_str().unwrap()],
            &[("SQRL_SIN", "a b")],
        ),
        "invalid setting sin: ",
    );
    std::fs::write(&file, "nut_rotaton = 20\n").unwrap();
    refused_with(
        &run(&["--config", file.to_str().unwrap()], &[]),
        "nut_rotaton",
    );
}

#[test]
fn help_shows_the_defaults() {
    let output = Command::new(env!("CARGO_BIN_EXE_sqrl-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    // clap wraps lines to the terminal's width: compare words, not layout.
    let help = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for expected in [
        "--nut-rotation <NUT_ROTATION>",
        "[env: SQRL_NUT_ROTATION=]",
        "[default: 50]",
        "--login-token-lifetime <LOGIN_TOKEN_LIFETIME>",
        "[default: 60]",
        "[default: 127.0.0.1:8080]",
        "[default: sqrl.db]",
    ] {
        assert!(help.contains(expected), "{expected:?} in {help}");
    }
}
