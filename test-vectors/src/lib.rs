//! Runs SQRL test vector files against sqrl-core.
//!
//! Point it at a file or a directory (searched recursively). Each file's format is
//! recognised from its header line; every row is checked and reported with its line
//! number. Files that are not vectors (README, sources) are listed as skipped.

pub mod exchange;
mod formats;
pub mod text;

use std::fmt;
use std::path::{Path, PathBuf};

pub use formats::Format;

/// The outcome of one vector file.
#[derive(Debug)]
pub struct FileReport {
    /// The file checked.
    pub path: PathBuf,
    /// The recognised format, or `None` when the file was skipped.
    pub format: Option<Format>,
    /// Rows that passed.
    pub passed: usize,
    /// Failing rows: `(line number, reason)`.
    pub failures: Vec<(usize, String)>,
}

impl FileReport {
    /// Whether the file was checked and every row passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            None => write!(
                f,
                "skip  {} (not a recognised vector file)",
                self.path.display()
            ),
            Some(format) => {
                let status = if self.ok() { "ok  " } else { "FAIL" };
                write!(
                    f,
                    "{status}  {}  [{format:?}] {} passed, {} failed",
                    self.path.display(),
                    self.passed,
                    self.failures.len()
                )?;
                for (line, reason) in &self.failures {
                    write!(f, "\n        line {line}: {reason}")?;
                }
                Ok(())
            }
        }
    }
}

/// Checks one file.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        path: path.to_owned(),
        format: None,
        passed: 0,
        failures: Vec::new(),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.failures.push((0, format!("cannot read: {e}")));
            return report;
        }
    };
    let Some(format) = Format::detect_bytes(&bytes) else {
        return report;
    };
    report.format = Some(format);
    let rows = format.check(&bytes);
    if rows.is_empty() {
        report.failures.push((0, "no vector rows found".into()));
    }
    for (line, outcome) in rows {
        match outcome {
            Ok(()) => report.passed += 1,
            Err(reason) => report.failures.push((line, reason)),
        }
    }
    report
}

/// Checks a file, or every file under a directory (sorted, recursive).
pub fn run_path(path: &Path) -> Vec<FileReport> {
    let mut files = Vec::new();
    collect_files(path, &mut files);
    files.sort();
    files.iter().map(|p| run_file(p)).collect()
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                collect_files(&entry.path(), out);
            }
        }
        Err(_) => out.push(path.to_owned()),
    }
}

/// The vector directory shipped with this crate.
pub fn bundled_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}
