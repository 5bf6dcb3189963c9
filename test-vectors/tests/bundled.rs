//! Every bundled vector file is recognised, plays the role it should, and has
//! exactly the rows it had: a file cannot silently drop out or lose rows.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use test_vectors::{Role, bundled_vectors, run_path};

/// Every file under `vectors/`, with its role and its number of rows.
const BUNDLED: &[(&str, Role, usize)] = &[
    ("project/exchange-new-user.txt", Role::RegressionSnapshot, 1),
    (
        "project/exchange-replace-previous.txt",
        Role::RegressionSnapshot,
        1,
    ),
    (
        "project/exchange-returning-user.txt",
        Role::RegressionSnapshot,
        1,
    ),
    ("project/pins-vectors.txt", Role::RegressionSnapshot, 4),
    ("project/type3-identity.txt", Role::RegressionSnapshot, 1),
    ("project/urs-vectors.txt", Role::RegressionSnapshot, 8),
    ("published/README.md", Role::Documentation, 0),
    ("published/grc/tif-values.txt", Role::Conformance, 17),
    (
        "published/grc/url-auth-domain-examples.txt",
        Role::Conformance,
        10,
    ),
    (
        "published/libsqrl/base56check-identity-vector.txt",
        Role::Conformance,
        1,
    ),
    (
        "published/libsqrl/base64url-vectors.txt",
        Role::Conformance,
        10,
    ),
    (
        "published/libsqrl/enscrypt-vectors.txt",
        Role::Conformance,
        5,
    ),
    ("published/libsqrl/test1-identity.txt", Role::Conformance, 1),
    ("published/libsqrl/test1.sqrl", Role::Conformance, 1),
    ("published/libsqrl/test2.sqrl", Role::Conformance, 1),
    (
        "published/libsqrl/uri-sitekey-vectors.txt",
        Role::Conformance,
        4,
    ),
    ("published/sqrldev/README-source.md", Role::Documentation, 0),
    (
        "published/sqrldev/base56-full-format-vectors.txt",
        Role::Conformance,
        128,
    ),
    (
        "published/sqrldev/base56-vectors.txt",
        Role::Conformance,
        120,
    ),
    (
        "published/sqrldev/enhash-vectors.txt",
        Role::Conformance,
        1000,
    ),
    (
        "published/sqrldev/enscrypt-vectors.txt",
        Role::Conformance,
        80,
    ),
    (
        "published/sqrldev/identity-lock-vectors.txt",
        Role::Conformance,
        14,
    ),
    (
        "published/sqrldev/identity-vectors.txt",
        Role::Conformance,
        80,
    ),
    ("published/sqrldev/ins-vectors.txt", Role::Conformance, 48),
    (
        "published/sqrldotnetclient/identity-roundtrip-vectors.txt",
        Role::Conformance,
        5,
    ),
];

#[test]
fn every_bundled_vector_passes_with_its_role_and_row_count() {
    let root = bundled_vectors();
    let reports = run_path(&root);
    let mut failed = Vec::new();
    let mut found = Vec::new();
    for report in &reports {
        println!("{report}");
        if !report.ok() {
            failed.push(report.path.display().to_string());
        }
        let relative = report.path.strip_prefix(&root).unwrap();
        let relative = relative.to_str().unwrap().replace('\\', "/");
        found.push((relative, report.role, report.passed));
    }
    assert!(failed.is_empty(), "failing vector files: {failed:?}");
    let expected: Vec<(String, Role, usize)> = BUNDLED
        .iter()
        .map(|(path, role, rows)| ((*path).to_owned(), *role, *rows))
        .collect();
    assert_eq!(found, expected);
}

/// A directory holding a valid vector file, a README and `extra`.
fn directory_with(extra: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sqrl-vectors-{}-{}",
        std::process::id(),
        extra.replace('.', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let valid = bundled_vectors().join("published/libsqrl/base64url-vectors.txt");
    std::fs::copy(valid, dir.join("base64url-vectors.txt")).unwrap();
    std::fs::write(dir.join("README.md"), "# About these vectors\n").unwrap();
    std::fs::write(dir.join(extra), "a note that is not a vector file\n").unwrap();
    dir
}

fn run_binary(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_test-vectors"))
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn an_unrecognised_file_fails_the_run_and_is_named() {
    let dir = directory_with("notes.txt");
    let reports = run_path(&dir);
    let output = run_binary(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let roles: Vec<(String, Role, bool)> = reports
        .iter()
        .map(|r| {
            let name = r.path.file_name().unwrap().to_str().unwrap().to_owned();
            (name, r.role, r.ok())
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("README.md".to_owned(), Role::Documentation, true),
            ("base64url-vectors.txt".to_owned(), Role::Conformance, true),
            ("notes.txt".to_owned(), Role::Unrecognised, false),
        ]
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("notes.txt: not a recognised vector file"),
        "{stderr}"
    );
}

#[test]
fn documentation_alone_beside_vectors_passes() {
    let dir = directory_with("README-more.md");
    let output = run_binary(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("README-more.md (documentation)"),
        "{stdout}"
    );
}

/// The runner must be able to fail: one altered row is reported with its line.
#[test]
fn an_altered_row_fails_with_its_line_number() {
    let source = bundled_vectors().join("published/sqrldev/identity-vectors.txt");
    let text = std::fs::read_to_string(&source).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Row 5 (line 5): change the expected IDK's first character.
    let row = &mut lines[4];
    let idk_start = row.rfind(",\"").unwrap() + 2;
    let original = row.as_bytes()[idk_start];
    let replacement = if original == b'A' { "B" } else { "A" };
    row.replace_range(idk_start..idk_start + 1, replacement);
    let dir = std::env::temp_dir().join(format!("sqrl-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let altered = dir.join("identity-vectors.txt");
    std::fs::write(&altered, lines.join("\n")).unwrap();

    let reports = run_path(&altered);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.passed, 79);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].0, 5);
    assert!(
        report.failures[0].1.starts_with("IDK"),
        "{:?}",
        report.failures[0]
    );
}
