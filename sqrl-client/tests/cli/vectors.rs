//! Importing every published S4 form (the copies in `test-vectors/vectors/published/`).

use sqrl_client::ExitCode;

use crate::support::{Env, vectors_dir};

/// `(label, bytes)` of each SQRLDotNetClient round-trip row.
fn sqrldotnetclient_rows() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(
        vectors_dir().join("sqrldotnetclient/identity-roundtrip-vectors.txt"),
    )
    .unwrap();
    test_vectors::text::labelled_hex_rows(&text).unwrap()
}

#[test]
fn sqrldotnetclient_identities_import_byte_for_byte_but_do_not_unlock() {
    let rows = sqrldotnetclient_rows();
    assert_eq!(rows.len(), 5);
    let env = Env::new();
    env.write("wrong", "not the published password\n");
    for (index, (label, bytes)) in rows.iter().enumerate() {
        let name = format!("row{index}");
        let file = &format!("{name}.sqrl");
        env.write(file, bytes);
        let rescue_only = label.contains("rescue-only");
        if rescue_only {
            // A rescue identity needs its code, which is not published. A
            // malformed one is refused before any EnScrypt work; a well-formed
            // wrong one is tested on a fast identity in `identity.rs`.
            env.write("bogus-rescue", "1111-2222\n");
            env.import(file, &name)
                .rescue_code_file("bogus-rescue")
                .password()
                .run()
                .fails_with(ExitCode::InvalidInput)
                .says("rescue identity");
            assert!(!env.has_identity(&name), "{label}");
            continue;
        }
        let imported = env.import(file, &name).json().run().success().json();
        assert_eq!(imported["rescue_only"], false, "{label}");
        // Written back exactly: binary rows as they were, the text row as the
        // same blocks in binary, and in text again on export.
        let export = |format| {
            env.sqrl(&["identity", "export", "-f", format])
                .identity(&name)
                .run()
                .success()
                .0
                .stdout
        };
        if bytes.starts_with(b"SQRLDATA") {
            assert_eq!(
                String::from_utf8(export("s4-text"))
                    .unwrap()
                    .trim_end()
                    .as_bytes(),
                bytes.as_slice(),
                "{label}"
            );
        } else {
            assert_eq!(&export("s4"), bytes, "{label}");
            assert_eq!(env.identity_bytes(&name), *bytes, "{label}");
        }
        // The password is unknown: unlocking fails cleanly. Once is enough (the
        // published blocks cost ~145 EnScrypt iterations each).
        if index == 0 {
            env.sqrl(&["identity", "show", "--site", "example.com"])
                .identity(&name)
                .password_file("wrong")
                .run()
                .fails_with(ExitCode::WrongSecret);
        }
        let shown = || {
            env.sqrl(&["identity", "show", "--json"])
                .identity(&name)
                .run()
                .success()
                .json()
        };
        if label.contains("type 55") {
            assert_eq!(
                shown()["unknown_blocks"],
                serde_json::json!([55]),
                "{label}"
            );
        }
        if label.contains("rekeyed") {
            assert_eq!(shown()["previous_identities"]["count"], 4, "{label}");
        }
    }
}

/// The snapshot cases (`tests/cmd/*.in/`) hold copies of published rows, as
/// files the command reads; they must stay the published bytes.
#[test]
fn snapshot_fixtures_are_the_published_rows() {
    let rows = sqrldotnetclient_rows();
    let row = |prefix: &str| {
        rows.iter()
            .find(|(label, _)| label.starts_with(prefix))
            .map(|(_, bytes)| bytes.clone())
            .unwrap_or_else(|| panic!("no row {prefix:?}"))
    };
    let cmd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd");
    for (fixture, prefix) in [
        ("import-published-identity.in/published.sqrl", "blocks 1+2"),
        (
            "show-published-identity-json.in/home/.config/sqrl/identities/published.sqrl",
            "blocks 1+2",
        ),
        (
            "show-published-rekeyed-identity.in/home/.config/sqrl/identities/rekeyed.sqrl",
            "rekeyed 4x",
        ),
    ] {
        let bytes = std::fs::read(cmd.join(fixture)).unwrap();
        assert!(
            bytes == row(prefix),
            "{fixture} differs from row {prefix:?}"
        );
    }
}

#[test]
fn libsqrl_pre_v1_identities_are_refused_by_name() {
    let env = Env::new();
    for file in ["test1.sqrl", "test2.sqrl"] {
        let path = vectors_dir().join("libsqrl").join(file);
        env.import(path.to_str().unwrap(), "legacy")
            .run()
            .fails_saying(ExitCode::InvalidInput, "pre-v1");
        assert!(!env.has_identity("legacy"));
    }
}

#[test]
fn libsqrl_textual_identity_reads_as_a_rescue_identity() {
    let text =
        std::fs::read_to_string(vectors_dir().join("libsqrl/base56check-identity-vector.txt"))
            .unwrap();
    let identity = text
        .lines()
        .find_map(|l| l.strip_prefix("text = "))
        .unwrap();
    let env = Env::new();
    env.write("paper.txt", identity);
    env.write("bogus-rescue", "1111 2222\n");
    // It parses (a rescue block), so the rescue code is asked for; the published
    // code is unknown, so a malformed one is refused and nothing is stored.
    env.sqrl(&["identity", "import", "paper.txt"])
        .rescue_code_file("bogus-rescue")
        .password()
        .run()
        .fails_saying(ExitCode::InvalidInput, "24 digits")
        .says("rescue identity");
    assert!(env.run(&["identity", "list"]).success().stdout().is_empty());
}
