//! Marks the end-to-end browser tests as ignored, with the reason, on a
//! machine without Chromium, Node.js or the `playwright-core` package that
//! drives it, so that `cargo test` reports them as ignored rather than as
//! passed. CI sets `SQRL_REQUIRE_BROWSER=1` (after `.ci/install-browser`):
//! then they always run, and a missing tool fails them.

use std::path::{Path, PathBuf};

/// The driver's npm package, installed by `.ci/install-browser`.
const PLAYWRIGHT: &str = "tests/browser/node_modules/playwright-core/package.json";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(no_browser)");
    for var in ["SQRL_REQUIRE_BROWSER", "SQRL_CHROMIUM", "SQRL_NODE", "PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    // The directory changes when `npm ci` creates node_modules in it.
    println!("cargo::rerun-if-changed=tests/browser");
    let chromium = program("SQRL_CHROMIUM", &["chromium", "chromium-browser"]);
    let node = program("SQRL_NODE", &["node"]);
    for found in [&chromium, &node].into_iter().flatten() {
        println!("cargo::rerun-if-changed={}", found.display());
    }
    if chromium.is_none() || node.is_none() {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    let present = chromium.is_some() && node.is_some() && Path::new(PLAYWRIGHT).is_file();
    let required = std::env::var("SQRL_REQUIRE_BROWSER").is_ok_and(|value| value == "1");
    if !present && !required {
        println!("cargo::rustc-cfg=no_browser");
    }
}

/// The program named by `variable`, or the first of `names` on the PATH.
fn program(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}
