//! Snapshots of what a user sees, run by `trycmd`: each `tests/cmd/NAME.toml`
//! holds one `sqrl` command line and the exit status, standard output and
//! standard error it must produce. A change to help texts, JSON results or
//! error messages therefore shows up as a change to these files in review.
//!
//! Every case runs in a fresh sandbox, a copy of `tests/cmd/NAME.in/` when it
//! exists (input files, the file `password`, or an identity store laid out as
//! `sqrl identity import` leaves it), with no inherited environment
//! (`env.inherit = false`), so help texts show no `SQRL_*` values. `HOME` is the
//! sandbox's `home`, so the default configuration directory is used and is
//! printed as `home/.config/sqrl`.
//!
//! `TRYCMD=overwrite cargo test -p sqrl-client --test cli snapshots` rewrites
//! the expected output of every case that differs.

#[test]
fn user_visible_output_matches_the_snapshots() {
    trycmd::TestCases::new()
        .register_bin("sqrl", std::path::Path::new(env!("CARGO_BIN_EXE_sqrl")))
        // Relative: the sandbox is each case's working directory.
        .env("HOME", "home")
        // New identities in a case need no real key stretching.
        .env("SQRL_ENSCRYPT_MS", "1")
        .case("tests/cmd/*.toml");
}
