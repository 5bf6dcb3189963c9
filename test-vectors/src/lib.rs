//! Runs SQRL test vector files against sqrl-core.
//!
//! Point it at a file or a directory (searched recursively). Each file's format is
//! recognised from its header line; every row is checked and reported with its line
//! number. A file that is neither a vector file nor documentation (`README*.md`)
//! is an error, so a file cannot silently drop out of a run.
//!
//! Two kinds of vector files exist: *conformance vectors*, published by others,
//! and the project's *regression snapshots* (`vectors/project/`), which record
//! sqrl-core's own output so that a change to it is noticed. A snapshot says so
//! in its first line ([`SNAPSHOT_SOURCE`]); the runner reports snapshots under a
//! heading of their own.

pub mod exchange;
mod formats;
pub mod text;

use std::fmt;
use std::path::{Path, PathBuf};

pub use formats::Format;

/// The first-line prefix of a regression snapshot: a file of sqrl-core's own
/// output, kept to notice a change, not a conformance vector.
pub const SNAPSHOT_SOURCE: &str = "# Source: sqrl-rs regression snapshot";

/// What a file is to the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Vectors published by others: what a conforming implementation must give.
    Conformance,
    /// sqrl-core's own output, recorded to notice a change ([`SNAPSHOT_SOURCE`]).
    RegressionSnapshot,
    /// A `README*.md` next to the vectors: read by people, not checked.
    Documentation,
    /// Neither a vector file nor documentation: an error.
    Unrecognised,
}

/// The outcome of one vector file.
#[derive(Debug)]
pub struct FileReport {
    /// The file checked.
    pub path: PathBuf,
    /// What the file is.
    pub role: Role,
    /// The recognised format, or `None` for documentation and unrecognised files.
    pub format: Option<Format>,
    /// Rows that passed.
    pub passed: usize,
    /// Failing rows: `(line number, reason)`.
    pub failures: Vec<(usize, String)>,
}

impl FileReport {
    /// Whether the file is documentation, or was checked and every row passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            None if self.role == Role::Documentation => {
                write!(f, "doc   {} (documentation)", self.path.display())
            }
            None => write!(
                f,
                "FAIL  {}: not a recognised vector file (only README*.md may sit among vectors)",
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

/// Whether `path` names documentation that may sit among vector files.
fn is_documentation(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("README") && name.ends_with(".md"))
}

/// Checks one file.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        path: path.to_owned(),
        role: Role::Unrecognised,
        format: None,
        passed: 0,
        failures: Vec::new(),
    };
    if is_documentation(path) {
        report.role = Role::Documentation;
        return report;
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.failures.push((0, format!("cannot read: {e}")));
            return report;
        }
    };
    let Some(format) = Format::detect_bytes(&bytes) else {
        report
            .failures
            .push((0, "not a recognised vector file".into()));
        return report;
    };
    report.format = Some(format);
    report.role = if bytes.starts_with(SNAPSHOT_SOURCE.as_bytes()) {
        Role::RegressionSnapshot
    } else {
        Role::Conformance
    };
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
