//! `cargo run -p test-vectors -- [PATH ...]`: checks vector files (default: the
//! bundled `vectors/` directory) and exits non-zero if any row fails.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.iter().any(|p| p == "--help" || p == "-h") {
        println!("usage: test-vectors [FILE_OR_DIR ...]   (default: the bundled vectors/)");
        return ExitCode::SUCCESS;
    }
    if paths.is_empty() {
        paths.push(test_vectors::bundled_vectors());
    }
    let mut files = 0;
    let mut checked = 0;
    let (mut passed, mut failed) = (0, 0);
    for path in &paths {
        if !path.exists() {
            eprintln!("error: {} does not exist", path.display());
            return ExitCode::from(2);
        }
        for report in test_vectors::run_path(path) {
            println!("{report}");
            files += 1;
            if report.format.is_some() {
                checked += 1;
            }
            passed += report.passed;
            failed += report.failures.len();
        }
    }
    println!("{files} files, {checked} checked: {passed} passed, {failed} failed");
    if checked == 0 {
        eprintln!("error: no vector file recognised");
        return ExitCode::from(2);
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
