//! Snapshots of what a user sees: each `tests/cmd/NAME.toml` holds one `sqrl`
//! command line (with any files and setup commands it needs) and the exit
//! status, standard output and standard error it must produce, byte for byte.
//! A change to help texts, JSON results or error messages therefore shows up
//! as a change to these files in review.
//!
//! A case file:
//!
//! ```toml
//! # Why this case exists.
//! args = ["identity", "import", "notes.txt"]
//! files = { "notes.txt" = "hello\n" }     # optional: scratch files to write first
//! setup = [["identity", "list"]]          # optional: commands that must succeed first
//! stdin = "..."                           # optional (default: empty)
//! status = 4                              # the expected result, always last
//! stdout = ""
//! stderr = '''
//! sqrl: error: ...
//! '''
//! ```
//!
//! A file may also come from a published vector (the repository's copy in
//! `test-vectors/vectors/published/`), read in place:
//! `{ vector = "sqrldotnetclient/identity-roundtrip-vectors.txt", row = "blocks 1+2" }`
//! (the hex of the row whose label starts with `row`).
//!
//! Each case runs in a new directory with the file `password`, an empty
//! environment, and `HOME`/`XDG_CONFIG_HOME` pointing inside it, so the default
//! configuration directory is used and help texts show no `SQRL_*` values. That
//! directory is written `[DIR]` in the expected output, and blanks at the ends
//! of lines are not compared.
//!
//! `SNAPSHOTS=overwrite cargo test -p sqrl-client --test cli snapshots`
//! rewrites the expected part (from `status =` on) of every case that differs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::support::{Env, vectors_dir};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    args: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, FileSource>,
    #[serde(default)]
    setup: Vec<Vec<String>>,
    #[serde(default)]
    stdin: String,
    status: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileSource {
    Text(String),
    Vector { vector: String, row: String },
}

impl FileSource {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.clone().into_bytes(),
            Self::Vector { vector, row } => {
                let text = std::fs::read_to_string(vectors_dir().join(vector)).unwrap();
                let (_, hex) = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.rsplit_once(" | "))
                    .find(|(label, _)| label.starts_with(row.as_str()))
                    .unwrap_or_else(|| panic!("no row {row:?} in {vector}"));
                let hex = hex.trim();
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect()
            }
        }
    }
}

/// What one run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

fn sqrl(env: &Env, args: &[String], stdin: &str) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqrl"))
        .args(args)
        .env_clear()
        .env("HOME", env.dir.path())
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("SQRL_ENSCRYPT_MS", "1")
        .current_dir(env.dir.path())
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
    let output = child.wait_with_output().unwrap();
    let dir = env.dir.path().to_str().unwrap();
    // Trailing blanks (clap pads empty help lines) are dropped: editors strip
    // them from the case files.
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .replace(dir, "[DIR]")
            .split_inclusive('\n')
            .map(|line| {
                let end = line.trim_end_matches(['\n']).trim_end_matches([' ', '\t']);
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                format!("{end}{newline}")
            })
            .collect::<String>()
    };
    Outcome {
        status: output.status.code().unwrap_or(-1),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    }
}

fn run_case(case: &Case) -> Outcome {
    let env = Env::new();
    for (name, source) in &case.files {
        env.write(name, source.bytes());
    }
    for args in &case.setup {
        let outcome = sqrl(&env, args, "");
        assert_eq!(outcome.status, 0, "setup {args:?}: {outcome:?}");
    }
    sqrl(&env, &case.args, &case.stdin)
}

/// A TOML string for `text`: a multi-line literal string where that keeps it
/// exact (easy to read in review), else a basic string with escapes (a JSON
/// string is one).
fn toml_string(text: &str) -> String {
    let literal_safe = !text.contains("'''")
        && !text.ends_with('\'')
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !c.is_control());
    if text.is_empty() || !literal_safe {
        serde_json::to_string(text).unwrap()
    } else {
        // The newline right after the opening quotes is not part of the string.
        format!("'''\n{text}'''")
    }
}

/// The case file with its expected part (from the `status =` line on) replaced.
fn rewritten(source: &str, outcome: &Outcome) -> String {
    let mut kept = String::new();
    for line in source.split_inclusive('\n') {
        if line.starts_with("status =") {
            break;
        }
        kept.push_str(line);
    }
    if !kept.ends_with('\n') {
        kept.push('\n');
    }
    format!(
        "{kept}status = {}\nstdout = {}\nstderr = {}\n",
        outcome.status,
        toml_string(&outcome.stdout),
        toml_string(&outcome.stderr)
    )
}

fn differences(expected: &Case, actual: &Outcome) -> Vec<String> {
    let mut found = Vec::new();
    if expected.status != Some(actual.status) {
        found.push(format!(
            "status: expected {:?}, got {}",
            expected.status, actual.status
        ));
    }
    for (stream, want, got) in [
        ("stdout", &expected.stdout, &actual.stdout),
        ("stderr", &expected.stderr, &actual.stderr),
    ] {
        if want.as_ref() != Some(got) {
            found.push(format!(
                "{stream}: expected\n{}\n{stream}: got\n{}",
                want.as_deref().unwrap_or("(nothing recorded)"),
                got
            ));
        }
    }
    found
}

fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn user_visible_output_matches_the_snapshots() {
    let overwrite = std::env::var_os("SNAPSHOTS").is_some_and(|v| v == "overwrite");
    let files = case_files();
    assert!(files.len() >= 10, "case files missing: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let case: Case =
            toml::from_str(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = run_case(&case);
        let found = differences(&case, &outcome);
        if found.is_empty() {
            continue;
        }
        if overwrite {
            std::fs::write(path, rewritten(&source, &outcome)).unwrap();
        } else {
            failures.push(format!(
                "{} (args {:?}):\n{}",
                path.display(),
                case.args,
                found.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} snapshots differ (SNAPSHOTS=overwrite records the new output):\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn snapshot_strings_round_trip_through_toml() {
    for text in [
        "",
        "one line",
        "two\nlines\n",
        "quotes ' and '' inside\n",
        "ends with a quote'",
        "has ''' three",
        "tab\tand \u{1b}[escape\r\n",
    ] {
        let source = format!("value = {}\n", toml_string(text));
        let parsed: BTreeMap<String, String> = toml::from_str(&source).unwrap();
        assert_eq!(parsed["value"], text, "{source}");
    }
}
