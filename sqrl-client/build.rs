//! Marks the end-to-end browser tests as ignored, with the reason, on a
//! machine without Chromium, Node.js or the `playwright-core` package that
//! drives it, and the terminal tests on one without tmux, so that
//! `cargo test` reports them as ignored rather than as passed. CI sets
//! `SQRL_REQUIRE_BROWSER=1` (after `.ci/install-browser`, which installs all
//! four): then they always run, and a missing tool fails them. The browser
//! test of an app behind nginx also needs nginx (`.ci/install-server-tools`);
//! `SQRL_REQUIRE_NGINX=1` (CI) makes it run without.

use std::path::{Path, PathBuf};

/// The driver's npm package, installed by `.ci/install-browser`.
const PLAYWRIGHT: &str = "tests/browser/node_modules/playwright-core/package.json";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(no_browser)");
    println!("cargo::rustc-check-cfg=cfg(no_tmux)");
    println!("cargo::rustc-check-cfg=cfg(no_nginx)");
    for var in [
        "SQRL_REQUIRE_BROWSER",
        "SQRL_REQUIRE_NGINX",
        "SQRL_CHROMIUM",
        "SQRL_NODE",
        "PATH",
        "CI",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if Path::new(PLAYWRIGHT).is_file() {
        println!("cargo::rerun-if-changed={PLAYWRIGHT}");
    } else {
        // The directory changes when `npm ci` creates node_modules in it.
        println!("cargo::rerun-if-changed=tests/browser");
    }
    let chromium = program(Some("SQRL_CHROMIUM"), &["chromium", "chromium-browser"]);
    let node = program(Some("SQRL_NODE"), &["node"]);
    let tmux = program(None, &["tmux"]);
    for found in [&chromium, &node, &tmux].into_iter().flatten() {
        println!("cargo::rerun-if-changed={}", found.display());
    }
    if chromium.is_none() || node.is_none() || tmux.is_none() {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    let required = std::env::var("SQRL_REQUIRE_BROWSER").is_ok_and(|value| value == "1")
        || std::env::var_os("CI").is_some();
    let browser = chromium.is_some() && node.is_some() && Path::new(PLAYWRIGHT).is_file();
    if !browser && !required {
        println!("cargo::rustc-cfg=no_browser");
    }
    if tmux.is_none() && !required {
        println!("cargo::rustc-cfg=no_tmux");
    }
    // Debian installs nginx in /usr/sbin, off a normal user's PATH.
    let nginx = program(None, &["nginx"])
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|path| path.is_file()));
    match &nginx {
        Some(path) => println!("cargo::rerun-if-changed={}", path.display()),
        None => {
            if Path::new("/usr/sbin").is_dir() {
                println!("cargo::rerun-if-changed=/usr/sbin");
            }
            if !std::env::var("SQRL_REQUIRE_NGINX").is_ok_and(|value| value == "1") {
                println!("cargo::rustc-cfg=no_nginx");
            }
        }
    }
}

/// The program named by `variable` (as the tests take it), or the first of
/// `names` on the PATH.
fn program(variable: Option<&str>, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = variable.and_then(std::env::var_os) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}
