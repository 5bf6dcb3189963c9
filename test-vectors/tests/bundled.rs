//! Every bundled vector file is recognised and every row passes.
#![allow(clippy::unwrap_used)]

use test_vectors::{bundled_vectors, run_path};

#[test]
fn every_bundled_vector_passes() {
    let reports = run_path(&bundled_vectors());
    let mut failed = Vec::new();
    let mut rows = 0;
    for report in &reports {
        println!("{report}");
        rows += report.passed;
        if !report.ok() {
            failed.push(report.path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "failing vector files: {failed:?}");
    assert!(rows > 1500, "suspiciously few vector rows checked: {rows}");
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
