//! Marks the tests that need a service or tool this machine lacks as
//! ignored, with the reason, so that `cargo test` reports them as ignored
//! rather than as passed. CI sets `SQRL_REQUIRE_POSTGRES=1`,
//! `SQRL_REQUIRE_NGINX=1` and `SQRL_REQUIRE_STRACE=1`: then nothing is
//! ignored, and a missing service fails its tests.

use std::path::{Path, PathBuf};

/// Where Debian installs nginx (not on a normal user's PATH).
const SBIN: &str = "/usr/sbin";

/// `(cfg set when missing, program, variable that requires it)`.
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("no_nginx", "nginx", "SQRL_REQUIRE_NGINX"),
    ("no_strace", "strace", "SQRL_REQUIRE_STRACE"),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in ["SQRL_TEST_POSTGRES", "SQRL_REQUIRE_POSTGRES", "PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(no_postgres)");
    let postgres = std::env::var_os("SQRL_TEST_POSTGRES").is_some_and(|url| !url.is_empty());
    if !postgres && !required("SQRL_REQUIRE_POSTGRES") {
        println!("cargo::rustc-cfg=no_postgres");
    }

    for (cfg, program, require) in PROGRAMS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={require}");
        match find(program) {
            // Rebuilt if it goes away.
            Some(path) => println!("cargo::rerun-if-changed={}", path.display()),
            None => {
                // Rebuilt when it is installed.
                for dir in ["/usr/bin", SBIN] {
                    if Path::new(dir).is_dir() {
                        println!("cargo::rerun-if-changed={dir}");
                    }
                }
                if !required(require) {
                    println!("cargo::rustc-cfg={cfg}");
                }
            }
        }
    }
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|value| value == "1")
}

/// `program` on the PATH, or in /usr/sbin (the tests search the same way).
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .chain([Path::new(SBIN).join(program)])
        .find(|candidate| candidate.is_file())
}
