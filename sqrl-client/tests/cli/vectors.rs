//! Importing every published S4 form in `shared/vectors/`.

use sqrl_client::ExitCode;

use crate::support::{Env, vectors_dir};

fn code(exit: ExitCode) -> i32 {
    i32::from(exit.code())
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `(label, bytes)` of each SQRLDotNetClient round-trip row.
fn sqrldotnetclient_rows() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(
        vectors_dir().join("sqrldotnetclient/identity-roundtrip-vectors.txt"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (label, data) = l.rsplit_once(" | ").unwrap();
            (label.to_owned(), hex(data.trim()))
        })
        .collect()
}

#[test]
fn sqrldotnetclient_identities_import_byte_for_byte_but_do_not_unlock() {
    let rows = sqrldotnetclient_rows();
    assert_eq!(rows.len(), 5);
    let env = Env::new();
    env.write("wrong", "not the published password\n");
    for (index, (label, bytes)) in rows.iter().enumerate() {
        let file = env.write(&format!("row{index}.sqrl"), bytes);
        let name = format!("row{index}");
        let rescue_only = label.contains("rescue-only");
        if rescue_only {
            // A rescue identity needs its code, which is not published. A
            // malformed one is refused before any EnScrypt work; a well-formed
            // wrong one is tested on a fast identity in `identity.rs`.
            env.write("bogus-rescue", "1111-2222\n");
            let run = env
                .run(&[
                    "identity",
                    "import",
                    file.to_str().unwrap(),
                    "--name",
                    &name,
                    "--rescue-code-file",
                    "bogus-rescue",
                    "--password-file",
                    "password",
                ])
                .fails_with(code(ExitCode::InvalidInput));
            assert!(run.stderr().contains("rescue identity"), "{label}");
            assert!(!env.home().join(format!("identities/{name}.sqrl")).exists());
            continue;
        }
        let imported = env
            .run(&[
                "identity",
                "import",
                file.to_str().unwrap(),
                "--name",
                &name,
                "--json",
            ])
            .success()
            .json();
        assert_eq!(imported["rescue_only"], false, "{label}");
        // Written back exactly: binary rows as they were, the text row as the
        // same blocks in binary, and in text again on export.
        let exported_text = env
            .run(&["identity", "export", "-i", &name, "-f", "s4-text"])
            .success()
            .stdout();
        let exported_binary = env
            .run(&["identity", "export", "-i", &name, "-f", "s4"])
            .success()
            .0
            .stdout;
        if bytes.starts_with(b"SQRLDATA") {
            assert_eq!(
                exported_text.trim_end().as_bytes(),
                bytes.as_slice(),
                "{label}"
            );
        } else {
            assert_eq!(&exported_binary, bytes, "{label}");
            assert_eq!(env.identity_bytes(&name), *bytes, "{label}");
        }
        // The password is unknown: unlocking fails cleanly. Once is enough (the
        // published blocks cost ~145 EnScrypt iterations each).
        if index == 0 {
            env.run(&[
                "identity",
                "show",
                "-i",
                &name,
                "--site",
                "example.com",
                "--password-file",
                "wrong",
            ])
            .fails_with(code(ExitCode::WrongSecret));
        }
        if label.contains("type 55") {
            let shown = env
                .run(&["identity", "show", "-i", &name, "--json"])
                .success()
                .json();
            assert_eq!(shown["unknown_blocks"], serde_json::json!([55]), "{label}");
        }
        if label.contains("rekeyed") {
            let shown = env
                .run(&["identity", "show", "-i", &name, "--json"])
                .success()
                .json();
            assert_eq!(shown["previous_identities"]["count"], 4, "{label}");
        }
    }
}

#[test]
fn libsqrl_pre_v1_identities_are_refused_by_name() {
    let env = Env::new();
    for file in ["test1.sqrl", "test2.sqrl"] {
        let path = vectors_dir().join("libsqrl").join(file);
        let run = env
            .run(&[
                "identity",
                "import",
                path.to_str().unwrap(),
                "--name",
                "legacy",
            ])
            .fails_with(code(ExitCode::InvalidInput));
        let line = run.error_line();
        assert!(line.contains("pre-v1"), "{file}: {line}");
        assert!(!env.home().join("identities/legacy.sqrl").exists());
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
    let run = env
        .run(&[
            "identity",
            "import",
            "paper.txt",
            "--rescue-code-file",
            "bogus-rescue",
            "--password-file",
            "password",
        ])
        .fails_with(code(ExitCode::InvalidInput));
    assert!(run.stderr().contains("rescue identity"), "{}", run.stderr());
    assert!(
        run.error_line().contains("24 digits"),
        "{}",
        run.error_line()
    );
    assert!(env.run(&["identity", "list"]).success().stdout().is_empty());
}
