//! `sqrl identity ...` through the real binary.

use sqrl_client::ExitCode;

use crate::support::{Env, PASSWORD};

fn code(exit: ExitCode) -> i32 {
    i32::from(exit.code())
}

/// `idk` of the default (or named) identity for a site.
fn idk(env: &Env, identity: &str, site: &str, password_file: &str) -> String {
    env.run(&[
        "identity",
        "show",
        "-i",
        identity,
        "--site",
        site,
        "--password-file",
        password_file,
        "--json",
    ])
    .success()
    .json()["idk"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn create_makes_an_owner_only_default_identity() {
    let env = Env::new();
    let rescue = env.create("me");
    // Six dash-separated groups of four digits (SPEC 5.4).
    assert_eq!(rescue.len(), 29, "{rescue}");
    assert!(
        rescue
            .split('-')
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    let list = env.run(&["identity", "list", "--json"]).success().json();
    assert_eq!(list["identities"][0]["name"], "me");
    assert_eq!(list["identities"][0]["default"], true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let path = env.home().join("identities/me.sqrl");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let code_file = env.path("me.rescue");
        assert_eq!(
            std::fs::metadata(code_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let shown = env.run(&["identity", "show", "--json"]).success().json();
    assert_eq!(shown["blocks"], serde_json::json!([1, 2]));
    assert_eq!(shown["password_block"]["option_flags"], "01f3");
}

#[test]
fn existing_identities_and_files_are_never_overwritten() {
    let env = Env::new();
    env.create("me");
    let before = env.identity_bytes("me");
    env.run(&["identity", "create", "me", "--password-file", "password"])
        .fails_with(code(ExitCode::AlreadyExists));
    env.run(&["identity", "export", "-f", "s4", "-o", "out.sqrl"])
        .success();
    env.run(&["identity", "import", "out.sqrl", "--name", "me"])
        .fails_with(code(ExitCode::AlreadyExists));
    assert_eq!(env.identity_bytes("me"), before);
    // Export refuses to replace a file.
    env.write("taken", "keep me");
    env.run(&["identity", "export", "-o", "taken"])
        .fails_with(code(ExitCode::AlreadyExists));
    assert_eq!(env.read("taken"), b"keep me");
    // A rescue-code file that exists stops `create` before anything is written.
    env.run(&[
        "identity",
        "create",
        "other",
        "--password-file",
        "password",
        "--rescue-code-out",
        "taken",
    ])
    .fails_with(code(ExitCode::AlreadyExists));
    assert_eq!(env.read("taken"), b"keep me");
    assert!(!env.home().join("identities/other.sqrl").exists());
}

#[test]
fn export_import_round_trips_are_byte_identical() {
    let env = Env::new();
    env.create("me");
    let original = env.identity_bytes("me");

    env.run(&["identity", "export", "-f", "s4", "-o", "binary.sqrl"])
        .success();
    assert_eq!(env.read("binary.sqrl"), original);
    env.run(&[
        "identity",
        "import",
        "binary.sqrl",
        "--name",
        "from-binary",
        "--verify",
        "--password-file",
        "password",
    ])
    .success();
    assert_eq!(env.identity_bytes("from-binary"), original);

    env.run(&["identity", "export", "-f", "s4-text", "-o", "text.txt"])
        .success();
    assert!(env.read("text.txt").starts_with(b"SQRLDATA"));
    env.run(&["identity", "import", "text.txt", "--name", "from-text"])
        .success();
    assert_eq!(env.identity_bytes("from-text"), original);

    // The same text through standard input and the JSON output.
    let text = env.run(&["identity", "export", "--json"]).success().json()["data"]
        .as_str()
        .unwrap()
        .to_owned();
    env.run_with_input(
        &["identity", "import", "-", "--name", "from-stdin"],
        text.as_bytes(),
    )
    .success();
    assert_eq!(env.identity_bytes("from-stdin"), original);

    // A QR code saved as PNG, scanned back.
    env.run(&["identity", "export", "-f", "qr-png", "-o", "identity.png"])
        .success();
    env.run(&["identity", "import", "identity.png", "--name", "from-qr"])
        .success();
    assert_eq!(env.identity_bytes("from-qr"), original);

    // Binary to standard output when it is not a terminal.
    let piped = env.run(&["identity", "export", "-f", "s4"]).success();
    assert_eq!(piped.0.stdout, original);
}

#[test]
fn rescue_identity_round_trip_restores_the_same_keys() {
    let env = Env::new();
    let rescue = env.create("me");
    env.write("rescue", format!("{rescue}\n"));
    let site = "sqrl://example.com/cli.sqrl?nut=abc";
    let expected = idk(&env, "me", site, "password");

    env.run(&["identity", "export", "-f", "base56", "-o", "paper.txt"])
        .success();
    let paper = String::from_utf8(env.read("paper.txt")).unwrap();
    assert!(paper.lines().all(|l| l.len() <= 24), "{paper}");
    env.write("new-password", "another password\n");
    let imported = env
        .run(&[
            "identity",
            "import",
            "paper.txt",
            "--name",
            "restored",
            "--rescue-code-file",
            "rescue",
            "--password-file",
            "new-password",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(imported["rescue_only"], true);
    assert_eq!(idk(&env, "restored", site, "new-password"), expected);

    // A .sqrc rescue-only export works the same way.
    env.run(&[
        "identity",
        "export",
        "-f",
        "s4",
        "--rescue-only",
        "-o",
        "me.sqrc",
    ])
    .success();
    env.run(&[
        "identity",
        "import",
        "me.sqrc",
        "--name",
        "from-sqrc",
        "--rescue-code-file",
        "rescue",
        "--password-file",
        "password",
    ])
    .success();
    assert_eq!(idk(&env, "from-sqrc", site, "password"), expected);
}

#[test]
fn wrong_secrets_fail_clearly_and_change_nothing() {
    let env = Env::new();
    let rescue = env.create("me");
    let before = env.identity_bytes("me");
    env.write("wrong-password", "not it\n");
    env.write("wrong-rescue", "0000-0000-0000-0000-0000-0000\n");
    env.write("new-password", "new one\n");
    env.write("rescue", &rescue);

    let run = env
        .run(&[
            "identity",
            "password",
            "--password-file",
            "wrong-password",
            "--new-password-file",
            "new-password",
        ])
        .fails_with(code(ExitCode::WrongSecret));
    assert!(
        run.error_line().contains("wrong password"),
        "{}",
        run.error_line()
    );
    assert_eq!(env.identity_bytes("me"), before);

    let run = env
        .run(&[
            "identity",
            "rekey",
            "--rescue-code-file",
            "wrong-rescue",
            "--password-file",
            "password",
        ])
        .fails_with(code(ExitCode::WrongSecret));
    assert!(
        run.error_line().contains("wrong rescue code"),
        "{}",
        run.error_line()
    );
    assert_eq!(env.identity_bytes("me"), before);

    // Right rescue code, wrong password: rekey still changes nothing.
    env.run(&[
        "identity",
        "rekey",
        "--rescue-code-file",
        "rescue",
        "--password-file",
        "wrong-password",
    ])
    .fails_with(code(ExitCode::WrongSecret));
    assert_eq!(env.identity_bytes("me"), before);

    env.write("short-rescue", "1234\n");
    env.run(&[
        "identity",
        "rekey",
        "--rescue-code-file",
        "short-rescue",
        "--password-file",
        "password",
    ])
    .fails_with(code(ExitCode::InvalidInput));

    // Importing a rescue identity with the wrong code stores nothing.
    env.run(&["identity", "export", "-f", "base56", "-o", "paper.txt"])
        .success();
    env.run(&[
        "identity",
        "import",
        "paper.txt",
        "--name",
        "restored",
        "--rescue-code-file",
        "wrong-rescue",
        "--password-file",
        "password",
    ])
    .fails_with(code(ExitCode::WrongSecret));
    assert!(!env.home().join("identities/restored.sqrl").exists());
    assert_eq!(env.identity_bytes("me"), before);
}

#[test]
fn corrupted_textual_identity_names_the_bad_line() {
    let env = Env::new();
    env.create("me");
    env.run(&["identity", "export", "-f", "base56", "-o", "paper.txt"])
        .success();
    let paper = String::from_utf8(env.read("paper.txt")).unwrap();
    let mut lines: Vec<String> = paper.lines().map(str::to_owned).collect();
    // Change one character of line 3 to another base56 character.
    let mut chars: Vec<char> = lines[2].chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    lines[2] = chars.into_iter().collect();
    env.write("typo.txt", lines.join("\n"));
    let run = env
        .run(&[
            "identity",
            "import",
            "typo.txt",
            "--name",
            "typo",
            "--rescue-code-file",
            "x",
        ])
        .fails_with(code(ExitCode::InvalidInput));
    assert!(run.error_line().contains("line 3"), "{}", run.error_line());
    assert!(!env.home().join("identities/typo.sqrl").exists());
}

#[test]
fn password_change_keeps_the_identity() {
    let env = Env::new();
    env.create("me");
    let site = "example.com";
    let before = idk(&env, "me", site, "password");
    env.write("new-password", "brand new password\n");
    env.run(&[
        "identity",
        "password",
        "--password-file",
        "password",
        "--new-password-file",
        "new-password",
    ])
    .success();
    assert_eq!(idk(&env, "me", site, "new-password"), before);
    env.run(&[
        "identity",
        "show",
        "--site",
        site,
        "--password-file",
        "password",
    ])
    .fails_with(code(ExitCode::WrongSecret));
}

#[test]
fn rekey_keeps_the_old_identity_as_previous() {
    let env = Env::new();
    let rescue = env.create("me");
    env.write("rescue", &rescue);
    let site = "sqrl://Example.com/login/cli.sqrl?x=6&nut=abc";
    let before = env
        .run(&[
            "identity",
            "show",
            "--site",
            site,
            "--password-file",
            "password",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(before["site"], "example.com/login");
    let rekeyed = env
        .run(&[
            "identity",
            "rekey",
            "--rescue-code-file",
            "rescue",
            "--password-file",
            "password",
            "--rescue-code-out",
            "new-rescue",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(rekeyed["previous_identities"], 1);
    let after = env
        .run(&[
            "identity",
            "show",
            "--site",
            site,
            "--password-file",
            "password",
            "--json",
        ])
        .success()
        .json();
    assert_ne!(after["idk"], before["idk"]);
    assert_eq!(after["previous_idks"][0], before["idk"]);
    // The old rescue code no longer works; the new one does.
    env.run(&[
        "identity",
        "rekey",
        "--rescue-code-file",
        "rescue",
        "--password-file",
        "password",
    ])
    .fails_with(code(ExitCode::WrongSecret));
    env.run(&[
        "identity",
        "rekey",
        "--rescue-code-file",
        "new-rescue",
        "--password-file",
        "password",
        "--rescue-code-out",
        "third-rescue",
    ])
    .success();
    let shown = env.run(&["identity", "show", "--json"]).success().json();
    assert_eq!(shown["previous_identities"]["count"], 2);
    assert_eq!(shown["previous_identities"]["edition"], 2);
}

#[test]
fn alt_id_gives_another_site_key() {
    let env = Env::new();
    env.create("me");
    let plain = idk(&env, "me", "example.com", "password");
    let alt = env
        .run(&[
            "identity",
            "show",
            "--site",
            "example.com",
            "--alt-id",
            "work",
            "--password-file",
            "password",
            "--json",
        ])
        .success()
        .json();
    assert_ne!(alt["idk"].as_str().unwrap(), plain);
    assert_eq!(alt["alt_id"], "work");
    // The host is case-insensitive, the port is not part of the key (SPEC 1.2).
    assert_eq!(
        idk(&env, "me", "sqrl://EXAMPLE.com:8443/?nut=x", "password"),
        plain
    );
}

#[test]
fn several_identities_and_a_default() {
    let env = Env::new();
    env.create("home");
    env.create("work");
    let list = env.run(&["identity", "list"]).success().stdout();
    assert_eq!(list, "* home\n  work\n");
    env.run(&["identity", "default", "work"]).success();
    assert_eq!(
        env.run(&["identity", "default"]).success().stdout().trim(),
        "work"
    );
    let home = idk(&env, "home", "example.com", "password");
    let work = idk(&env, "work", "example.com", "password");
    assert_ne!(home, work);
    let default = env
        .run(&[
            "identity",
            "show",
            "--site",
            "example.com",
            "--password-file",
            "password",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(default["idk"].as_str().unwrap(), work);
    env.run(&["identity", "default", "nobody"])
        .fails_with(code(ExitCode::NotFound));
    env.run(&["identity", "show", "-i", "../etc"])
        .fails_with(code(ExitCode::Usage));
}

#[test]
fn missing_answers_are_usage_errors_not_hangs() {
    let env = Env::new();
    env.create("me");
    // No terminal, no --password-file.
    let run = env
        .run(&["identity", "show", "--site", "example.com"])
        .fails_with(code(ExitCode::Usage));
    assert!(
        run.error_line().contains("--password-file"),
        "{}",
        run.error_line()
    );
    let empty = Env::new();
    empty
        .run(&["identity", "show"])
        .fails_with(code(ExitCode::NotFound));
}

#[test]
fn json_errors_are_machine_readable() {
    let env = Env::new();
    let run = env
        .run(&["identity", "show", "--json"])
        .fails_with(code(ExitCode::NotFound));
    let value = run.json();
    assert_eq!(value["exit_code"], code(ExitCode::NotFound));
    assert!(value["error"].as_str().unwrap().contains("no identity"));
}

#[test]
fn secrets_never_reach_the_output_unasked() {
    let env = Env::new();
    let rescue = env.create("me");
    env.write("rescue", &rescue);
    let mut outputs = String::new();
    for args in [
        vec!["identity", "show", "--json"],
        vec![
            "identity",
            "show",
            "--site",
            "example.com",
            "--password-file",
            "password",
        ],
        vec!["identity", "list"],
    ] {
        let run = env.run(&args).success();
        outputs.push_str(&run.stdout());
        outputs.push_str(&run.stderr());
    }
    let digits: String = rescue.chars().filter(char::is_ascii_digit).collect();
    assert!(!outputs.contains(&rescue) && !outputs.contains(&digits));
    assert!(!outputs.contains(PASSWORD));
}

#[test]
fn completions_are_generated() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell]).success().stdout();
        assert!(out.contains("sqrl") && out.contains("identity"), "{shell}");
    }
}
