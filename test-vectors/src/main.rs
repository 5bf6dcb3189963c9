//! `cargo run -p test-vectors -- [PATH ...]`: checks vector files (default: the
//! bundled `vectors/` directory) and exits non-zero if any row fails or any file
//! is neither a vector file nor documentation.

use std::path::PathBuf;
use std::process::ExitCode;

use test_vectors::{FileReport, Role};

/// Rows passed and failed over some reports.
fn totals<'a>(reports: impl Iterator<Item = &'a FileReport>) -> (usize, usize, usize) {
    reports.fold((0, 0, 0), |(files, passed, failed), report| {
        (
            files + 1,
            passed + report.passed,
            failed + report.failures.len(),
        )
    })
}

fn main() -> ExitCode {
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.iter().any(|p| p == "--help" || p == "-h") {
        println!("usage: test-vectors [FILE_OR_DIR ...]   (default: the bundled vectors/)");
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() {
        paths.push(test_vectors::bundled_vectors());
    }
    let mut reports = Vec::new();
    for path in &paths {
        if !path.exists() {
            eprintln!("error: {} does not exist", path.display());
            return ExitCode::from(2);
        }
        reports.extend(test_vectors::run_path(path));
    }
    // Conformance vectors, documentation and unrecognised files first; the
    // project's own snapshots apart, so they are not read as conformance.
    for report in reports
        .iter()
        .filter(|r| r.role != Role::RegressionSnapshot)
    {
        println!("{report}");
    }
    let of_role = |role| reports.iter().filter(move |r| r.role == role);
    let (conformance, passed, failed) = totals(of_role(Role::Conformance));
    println!("conformance vectors: {conformance} files, {passed} rows passed, {failed} failed");
    let (snapshots, snapshot_passed, snapshot_failed) = totals(of_role(Role::RegressionSnapshot));
    if snapshots > 0 {
        println!(
            "\n== regression snapshots (sqrl-core's own output, kept to notice a change; not conformance vectors)"
        );
        for report in of_role(Role::RegressionSnapshot) {
            println!("{report}");
        }
        println!(
            "regression snapshots: {snapshots} files, {snapshot_passed} rows passed, {snapshot_failed} failed"
        );
    }
    let unrecognised: Vec<&FileReport> = of_role(Role::Unrecognised).collect();
    for report in &unrecognised {
        eprintln!(
            "error: {}: not a recognised vector file (only README*.md may sit among vectors)",
            report.path.display()
        );
    }
    if conformance + snapshots == 0 {
        eprintln!("error: no vector file recognised");
        return ExitCode::from(2);
    }
    if failed + snapshot_failed > 0 || !unrecognised.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
