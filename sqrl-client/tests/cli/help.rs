//! The manual page and the shell completions, from the built binary.

use crate::support::Env;

#[test]
fn the_manual_page_documents_commands_examples_and_exit_codes() {
    let env = Env::new();
    let page = env.run(&["man"]).success().stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH sqrl"),
        "{page}"
    );
    assert!(page.contains(".TH sqrl"), "no title");
    for text in [
        "identity",
        "login",
        "agent",
        "Exit codes",
        "130",
        "wrong password",
    ] {
        assert!(page.contains(text), "{text:?} not in the manual page");
    }
    // Real roff: man(1) renders it, when it is installed.
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok()
    {
        let path = env.write("sqrl.1", &page);
        let rendered = std::process::Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success(), "{rendered:?}");
        assert!(text.contains("Exit codes"), "{text}");
    }
}

#[test]
fn completions_register_the_dynamic_completer_and_list_identity_names() {
    let env = Env::with_identity("work");
    env.create("home-pc");
    let script = env.run(&["completions", "bash"]).success().stdout();
    assert!(
        script.contains("COMPLETE=\"bash\"") || script.contains("COMPLETE=bash"),
        "{script}"
    );
    assert!(script.contains("sqrl"), "{script}");

    // What the shell runs while the user types `sqrl login -i <TAB>`.
    let names = env
        .sqrl(&["--", "sqrl", "login", "-i", ""])
        .env("COMPLETE", "fish")
        .run()
        .success()
        .stdout();
    let names: Vec<&str> = names
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["home-pc", "work"]);
    // And subcommands, as usual.
    let commands = env
        .sqrl(&["--", "sqrl", "ag"])
        .env("COMPLETE", "fish")
        .run()
        .success()
        .stdout();
    assert!(commands.starts_with("agent"), "{commands}");
}

#[test]
fn each_command_lists_only_its_own_options() {
    let env = Env::new();
    let login = env.run(&["login", "--help"]).success().stdout();
    assert!(login.contains("--password-file"));
    assert!(!login.contains("--new-password-file"), "{login}");
    assert!(!login.contains("--rescue-code-file"), "{login}");
    assert!(login.contains("Examples:"), "{login}");
    let completions = env.run(&["completions", "--help"]).success().stdout();
    assert!(!completions.contains("--password-file"), "{completions}");
    assert!(!completions.contains("--identity"), "{completions}");
    let top = env.run(&["--help"]).success().stdout();
    assert!(top.contains("Exit codes:") && top.contains("130"), "{top}");
}
