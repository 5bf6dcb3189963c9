//! `sqrl identity ...` through the real binary.

use sqrl_client::ExitCode;
use sqrl_core::base56;
use sqrl_core::secret::Password;
use sqrl_core::storage::{RescueCode, S4};

use crate::support::{Env, PASSWORD};

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
        let mode = |path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(env.identity_path("me")), 0o600);
        assert_eq!(mode(env.path("me.rescue")), 0o600);
    }
    let shown = env.run(&["identity", "show", "--json"]).success().json();
    assert_eq!(shown["blocks"], serde_json::json!([1, 2]));
    assert_eq!(shown["password_block"]["option_flags"], "01f3");
}

/// Opens the stored identity with the password and `code`: the code printed is
/// the one that decrypts its rescue block.
fn assert_rescue_code_opens(env: &Env, name: &str, code: &str) {
    let s4 = S4::parse(&env.identity_bytes(name)).unwrap();
    let code = RescueCode::parse(code).unwrap();
    s4.verify(&Password::from(PASSWORD), &code, &mut |_, _| {})
        .unwrap();
}

#[test]
fn create_without_a_terminal_needs_a_place_for_the_rescue_code() {
    let env = Env::new();
    let create = |name| env.sqrl(&["identity", "create", name]).password();
    // Nobody can type the code back, and nothing says where it goes: refused
    // before any code exists.
    let run = create("me")
        .run()
        .fails_saying(ExitCode::Usage, "--rescue-code-out FILE, --json or --yes");
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    assert!(!env.home().join("identities").exists());

    // --yes: printed, unconfirmed.
    let run = create("me").yes().run().success();
    let printed = run
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("RESCUE CODE: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{}", run.stdout()));
    assert_rescue_code_opens(&env, "me", &printed);

    // --json: in the result.
    let created = create("other").json().run().success().json();
    assert_rescue_code_opens(&env, "other", created["rescue_code"].as_str().unwrap());

    // --rescue-code-out: in the file.
    let written = env.create("third");
    assert_rescue_code_opens(&env, "third", &written);
}

#[test]
fn existing_identities_and_files_are_never_overwritten() {
    let env = Env::with_identity("me");
    let before = env.identity_bytes("me");
    env.sqrl(&["identity", "create", "me"])
        .password()
        .run()
        .fails_with(ExitCode::AlreadyExists);
    env.export("s4", "out.sqrl");
    env.import("out.sqrl", "me")
        .run()
        .fails_with(ExitCode::AlreadyExists);
    assert_eq!(env.identity_bytes("me"), before);
    // Export refuses to replace a file.
    env.write("taken", "keep me");
    env.run(&["identity", "export", "-o", "taken"])
        .fails_with(ExitCode::AlreadyExists);
    assert_eq!(env.read("taken"), b"keep me");
    // A rescue-code file that exists stops `create` before anything is written.
    env.sqrl(&["identity", "create", "other", "--rescue-code-out", "taken"])
        .password()
        .run()
        .fails_with(ExitCode::AlreadyExists);
    assert_eq!(env.read("taken"), b"keep me");
    assert!(!env.has_identity("other"));
}

#[test]
fn export_import_round_trips_are_byte_identical() {
    let env = Env::with_identity("me");
    let original = env.identity_bytes("me");

    env.export("s4", "binary.sqrl");
    assert_eq!(env.read("binary.sqrl"), original);
    env.import("binary.sqrl", "from-binary")
        .args(&["--verify"])
        .password()
        .run()
        .success();
    assert_eq!(env.identity_bytes("from-binary"), original);

    env.export("s4-text", "text.txt");
    assert!(env.read("text.txt").starts_with(b"SQRLDATA"));
    env.import("text.txt", "from-text").run().success();
    assert_eq!(env.identity_bytes("from-text"), original);

    // The same text through standard input and the JSON output.
    let text = env.run(&["identity", "export", "--json"]).success().json()["data"]
        .as_str()
        .unwrap()
        .to_owned();
    env.import("-", "from-stdin").input(text).run().success();
    assert_eq!(env.identity_bytes("from-stdin"), original);

    // A QR code saved as PNG, scanned back.
    env.export("qr-png", "identity.png");
    env.import("identity.png", "from-qr").run().success();
    assert_eq!(env.identity_bytes("from-qr"), original);

    // Binary to standard output when it is not a terminal.
    let piped = env.run(&["identity", "export", "-f", "s4"]).success();
    assert_eq!(piped.0.stdout, original);
}

#[test]
fn rescue_identity_round_trip_restores_the_same_keys() {
    let env = Env::with_identity("me");
    let site = "sqrl://example.com/cli.sqrl?nut=abc";
    let expected = env.idk("me", site, "password");

    env.export("base56", "paper.txt");
    let paper = String::from_utf8(env.read("paper.txt")).unwrap();
    assert!(paper.lines().all(|l| l.len() <= 24), "{paper}");
    env.write("new-password", "another password\n");
    let imported = env
        .import("paper.txt", "restored")
        .rescue_code_file("me.rescue")
        .password_file("new-password")
        .json()
        .run()
        .success()
        .json();
    assert_eq!(imported["rescue_only"], true);
    assert_eq!(env.idk("restored", site, "new-password"), expected);

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
    env.import("me.sqrc", "from-sqrc")
        .rescue_code_file("me.rescue")
        .password()
        .run()
        .success();
    assert_eq!(env.idk("from-sqrc", site, "password"), expected);
}

#[test]
fn wrong_secrets_fail_clearly_and_change_nothing() {
    let env = Env::with_identity("me");
    let before = env.identity_bytes("me");
    env.write("wrong-password", "not it\n");
    env.write("wrong-rescue", "0000-0000-0000-0000-0000-0000\n");
    env.write("new-password", "orbit lantern pebble cactus\n");

    env.sqrl(&[
        "identity",
        "password",
        "--new-password-file",
        "new-password",
    ])
    .password_file("wrong-password")
    .run()
    .fails_saying(ExitCode::WrongSecret, "wrong password");
    assert_eq!(env.identity_bytes("me"), before);

    env.rekey("wrong-rescue")
        .run()
        .fails_saying(ExitCode::WrongSecret, "wrong rescue code");
    assert_eq!(env.identity_bytes("me"), before);

    // Right rescue code, wrong password: rekey still changes nothing.
    env.rekey("me.rescue")
        .password_file("wrong-password")
        .run()
        .fails_with(ExitCode::WrongSecret);
    assert_eq!(env.identity_bytes("me"), before);

    env.write("short-rescue", "1234\n");
    env.rekey("short-rescue")
        .run()
        .fails_with(ExitCode::InvalidInput);

    // Importing a rescue identity with the wrong code stores nothing.
    env.export("base56", "paper.txt");
    env.import("paper.txt", "restored")
        .rescue_code_file("wrong-rescue")
        .password()
        .run()
        .fails_with(ExitCode::WrongSecret);
    assert!(!env.has_identity("restored"));
    assert_eq!(env.identity_bytes("me"), before);
}

#[test]
fn corrupted_textual_identity_names_the_bad_line() {
    let env = Env::with_identity("me");
    env.export("base56", "paper.txt");
    let paper = String::from_utf8(env.read("paper.txt")).unwrap();
    let mut lines: Vec<String> = paper.lines().map(str::to_owned).collect();
    // Change the first character of line 3 to another base56 character, one
    // its check character catches (one substitution in 56 would slip by).
    let line: String = lines[2].split_whitespace().collect();
    let (digits, check) = line.split_at(line.len() - 1);
    let typo = base56::ALPHABET
        .iter()
        .map(|&c| format!("{}{}", char::from(c), &digits[1..]))
        .find(|typo| *typo != digits && base56::check_char(typo, 2).to_string() != check)
        .unwrap();
    lines[2] = format!("{typo}{check}");
    env.write("typo.txt", lines.join("\n"));
    env.import("typo.txt", "typo")
        .rescue_code_file("x")
        .run()
        .fails_saying(ExitCode::InvalidInput, "line 3");
    assert!(!env.has_identity("typo"));
}

#[test]
fn password_change_keeps_the_identity() {
    let env = Env::with_identity("me");
    let site = "example.com";
    let before = env.idk("me", site, "password");
    env.write("new-password", "brand new password\n");
    env.sqrl(&[
        "identity",
        "password",
        "--new-password-file",
        "new-password",
    ])
    .password()
    .run()
    .success();
    assert_eq!(env.idk("me", site, "new-password"), before);
    env.sqrl(&["identity", "show", "--site", site])
        .password()
        .run()
        .fails_with(ExitCode::WrongSecret);
}

#[test]
fn rekey_keeps_the_old_identity_as_previous() {
    let env = Env::with_identity("me");
    let site = "sqrl://Example.com/login/cli.sqrl?x=6&nut=abc";
    let show = || {
        env.sqrl(&["identity", "show", "--site", site])
            .password()
            .json()
            .run()
            .success()
            .json()
    };
    let before = show();
    assert_eq!(before["site"], "example.com/login");
    let rekeyed = env
        .rekey("me.rescue")
        .args(&["--rescue-code-out", "new-rescue"])
        .json()
        .run()
        .success()
        .json();
    assert_eq!(rekeyed["previous_identities"], 1);
    let after = show();
    assert_ne!(after["idk"], before["idk"]);
    assert_eq!(after["previous_idks"][0], before["idk"]);
    // The old rescue code no longer works; the new one does.
    env.rekey("me.rescue")
        .run()
        .fails_with(ExitCode::WrongSecret);
    env.rekey("new-rescue")
        .args(&["--rescue-code-out", "third-rescue"])
        .run()
        .success();
    let shown = env.run(&["identity", "show", "--json"]).success().json();
    assert_eq!(shown["previous_identities"]["count"], 2);
    assert_eq!(shown["previous_identities"]["edition"], 2);
}

#[test]
fn alt_id_gives_another_site_key() {
    let env = Env::with_identity("me");
    let plain = env.idk("me", "example.com", "password");
    let alt = env
        .sqrl(&[
            "identity",
            "show",
            "--site",
            "example.com",
            "--alt-id",
            "work",
        ])
        .password()
        .json()
        .run()
        .success()
        .json();
    assert_ne!(alt["idk"].as_str().unwrap(), plain);
    assert_eq!(alt["alt_id"], "work");
    // The host is case-insensitive, the port is not part of the key (SPEC 1.2).
    assert_eq!(
        env.idk("me", "sqrl://EXAMPLE.com:8443/?nut=x", "password"),
        plain
    );
}

#[test]
fn several_identities_and_a_default() {
    let env = Env::with_identity("home");
    env.create("work");
    let list = env.run(&["identity", "list"]).success().stdout();
    assert_eq!(list, "* home\n  work\n");
    env.run(&["identity", "default", "work"]).success();
    assert_eq!(
        env.run(&["identity", "default"]).success().stdout().trim(),
        "work"
    );
    let home = env.idk("home", "example.com", "password");
    let work = env.idk("work", "example.com", "password");
    assert_ne!(home, work);
    let default = env
        .sqrl(&["identity", "show", "--site", "example.com"])
        .password()
        .json()
        .run()
        .success()
        .json();
    assert_eq!(default["idk"].as_str().unwrap(), work);
    env.run(&["identity", "default", "nobody"])
        .fails_with(ExitCode::NotFound);
    env.run(&["identity", "show", "-i", "../etc"])
        .fails_with(ExitCode::Usage);
}

#[test]
fn missing_answers_are_usage_errors_not_hangs() {
    let env = Env::with_identity("me");
    // No terminal, no --password-file.
    env.run(&["identity", "show", "--site", "example.com"])
        .fails_saying(ExitCode::Usage, "--password-file");
    Env::new()
        .run(&["identity", "show"])
        .fails_with(ExitCode::NotFound);
}

#[test]
fn json_errors_are_machine_readable() {
    let env = Env::new();
    let run = env
        .run(&["identity", "show", "--json"])
        .fails_with(ExitCode::NotFound);
    let value = run.json();
    assert_eq!(value["exit_code"], i32::from(ExitCode::NotFound.code()));
    assert!(value["error"].as_str().unwrap().contains("no identity"));
}

#[test]
fn secrets_never_reach_the_output_unasked() {
    let env = Env::new();
    let rescue = env.create("me");
    let mut outputs = String::new();
    for command in [
        env.sqrl(&["identity", "show", "--json"]),
        env.sqrl(&["identity", "show", "--site", "example.com"])
            .password(),
        env.sqrl(&["identity", "list"]),
    ] {
        let run = command.run().success();
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
        // The registration of the dynamic completer, which asks sqrl itself.
        let out = env.run(&["completions", shell]).success().stdout();
        assert!(
            out.contains("sqrl") && out.contains("COMPLETE"),
            "{shell}: {out}"
        );
    }
}
