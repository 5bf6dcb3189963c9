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
