//! The prompts as a person meets them: `sqrl` runs on a real pseudo-terminal
//! inside a private tmux server (its own socket, no user configuration), keys
//! are typed with `send-keys`, and the screen is read with `capture-pane`.
//!
//! The password prompts read `/dev/tty`, so only a controlling terminal will do;
//! tmux provides one without any `unsafe` in the tests. Where tmux is not
//! installed these tests say so and pass, except on CI (`CI` set), where they
//! fail.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sqrl_client::ExitCode;
use sqrl_core::secret::Password;
use sqrl_core::server::memory::AttemptState;
use sqrl_core::storage::{RescueCode, S4};
use tempfile::TempDir;

use crate::memory_site::MemorySite;
use crate::support::{Env, PASSWORD};

/// Longest wait for the screen to show something.
const PATIENCE: Duration = Duration::from_secs(30);

/// One `sqrl` process on a tmux pane; the tmux server ends when this drops.
pub struct Terminal {
    socket: PathBuf,
    status_file: PathBuf,
    _dir: TempDir,
}

impl Terminal {
    /// Runs `sqrl args...` on a new 120x40 terminal. The tests that call
    /// this are ignored where tmux is missing (`build.rs`), unless CI or
    /// `SQRL_REQUIRE_BROWSER=1` requires it: then its absence fails here.
    pub fn start(env: &Env, args: &[&str]) -> Self {
        let installed = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(installed, "tmux is not installed: run .ci/install-browser");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tmux.conf");
        // The pane stays after `sqrl` exits, so its exit status can be read.
        std::fs::write(
            &config,
            "set -g remain-on-exit on\nset -g history-limit 5000\n",
        )
        .unwrap();
        let terminal = Self {
            socket: dir.path().join("socket"),
            status_file: dir.path().join("status"),
            _dir: dir,
        };
        let mut command = terminal.tmux();
        env.configure(&mut command);
        // Not nested in the tmux of whoever runs the tests.
        command.env_remove("TMUX").env("TERM", "xterm-256color");
        // tmux 3.3 can report a pane dead before its exit status is known, so
        // a shell records the status in a file instead.
        command
            .env("EXIT_STATUS_FILE", &terminal.status_file)
            .args(["-f", config.to_str().unwrap(), "new-session", "-d"])
            .args(["-x", "120", "-y", "40", "--", "sh", "-c"])
            .arg(r#""$0" "$@"; echo $? > "$EXIT_STATUS_FILE.new"; mv "$EXIT_STATUS_FILE.new" "$EXIT_STATUS_FILE""#)
            .arg(env!("CARGO_BIN_EXE_sqrl"))
            .args(args);
        let status = command.status().unwrap();
        assert!(status.success(), "tmux new-session: {status}");
        terminal
    }

    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket);
        command
    }

    fn query(&self, args: &[&str]) -> String {
        let output = self.tmux().args(args).output().unwrap();
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Everything the terminal holds: the visible screen and its scrollback.
    pub fn screen(&self) -> String {
        self.query(&["capture-pane", "-p", "-J", "-S", "-"])
    }

    /// Waits until the terminal shows `text`; returns the screen then.
    pub fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "waited for {text:?}; the terminal shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the program has turned echo off (a hidden password prompt
    /// reads the terminal), so what is typed next cannot appear on the screen.
    pub fn wait_for_hidden_input(&self) {
        let tty = self.query(&["display-message", "-p", "#{pane_tty}"]);
        let start = Instant::now();
        loop {
            let settings = Command::new("stty")
                .args(["-a", "-F", tty.trim()])
                .output()
                .unwrap();
            let settings = String::from_utf8_lossy(&settings.stdout);
            if settings.split_whitespace().any(|flag| flag == "-echo") {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "echo stayed on: {settings}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        if !text.is_empty() {
            self.query(&["send-keys", "-l", text]);
        }
        self.query(&["send-keys", "Enter"]);
    }

    /// Types `text` and Enter at a hidden prompt.
    pub fn type_secret(&self, text: &str) {
        self.wait_for_hidden_input();
        self.type_line(text);
    }

    /// Waits for `sqrl` to exit; returns its exit status.
    pub fn exit_status(&self) -> i32 {
        let start = Instant::now();
        loop {
            if let Ok(status) = std::fs::read_to_string(&self.status_file) {
                return status.trim().parse().unwrap();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "sqrl did not exit; the terminal shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}

/// The code on the `RESCUE CODE:` line of a screen.
fn shown_code(screen: &str) -> String {
    screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("RESCUE CODE: "))
        .unwrap_or_else(|| panic!("no rescue code on the screen:\n{screen}"))
        .trim()
        .to_owned()
}

/// The same code with its last digit changed.
fn misremembered(code: &str) -> String {
    let mut wrong = code.to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '9' { '0' } else { '9' });
    wrong
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn create_shows_the_code_has_it_typed_back_then_asks_the_password_twice() {
    let env = Env::new();
    let terminal = Terminal::start(&env, &["identity", "create", "me"]);
    let screen = terminal.wait_for("Press Enter when you have written it down");
    let code = shown_code(&screen);
    assert_eq!(code.len(), 29, "six groups of four digits: {code}");
    // Nothing asked before the code, and nothing written yet.
    assert!(!screen.contains("New password"), "{screen}");
    assert!(!env.home().join("identities/me.sqrl").exists());

    terminal.type_line("");
    let screen = terminal.wait_for("Type the rescue code from your paper");
    assert!(
        !screen.contains(&code),
        "the code stays on the screen:\n{screen}"
    );

    // A slip of the pen is caught, and the question asked again.
    terminal.type_line(&misremembered(&code));
    terminal.wait_for("2 left");
    // Typed with spaces, as it might be copied from paper (PITFALLS 17).
    terminal.type_line(&code.replace('-', " "));
    terminal.wait_for("New password:");

    terminal.type_secret(PASSWORD);
    terminal.wait_for("Repeat the new password:");
    terminal.type_secret("a different password");
    terminal.wait_for("The passwords do not match; try again.");
    terminal.type_secret(PASSWORD);
    terminal.wait_for("Repeat the new password:");
    terminal.type_secret(PASSWORD);
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());

    let screen = terminal.screen();
    assert!(screen.contains("Created identity \"me\""), "{screen}");
    // EnScrypt ran with a progress bar for each block.
    assert!(
        screen.contains("Encrypting (password) [") && screen.contains("Encrypting (rescue)   ["),
        "{screen}"
    );
    assert!(!screen.contains(&code) && !screen.contains(PASSWORD));

    // The code shown is the one that opens the rescue block of this identity.
    let s4 = S4::parse(&env.identity_bytes("me")).unwrap();
    let rescue = RescueCode::parse(&code).unwrap();
    s4.verify(&Password::from(PASSWORD), &rescue, &mut |_, _| {})
        .unwrap();
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn a_wrong_confirmation_saves_nothing() {
    let env = Env::new();
    let terminal = Terminal::start(&env, &["identity", "create", "me"]);
    let code = shown_code(&terminal.wait_for("Press Enter"));
    terminal.type_line("");
    terminal.wait_for("Type the rescue code");
    terminal.type_line("1234");
    terminal.wait_for("not 4");
    terminal.type_line(&misremembered(&code));
    terminal.wait_for("1 left");
    terminal.type_line(&misremembered(&code));
    assert_eq!(
        terminal.exit_status(),
        i32::from(ExitCode::InvalidInput.code())
    );
    let screen = terminal.screen();
    assert!(
        screen.contains(
            "sqrl: error: the rescue code typed back does not match the one shown; nothing was saved"
        ),
        "{screen}"
    );
    assert!(!screen.contains("New password"), "{screen}");
    assert!(!env.home().join("identities/me.sqrl").exists());
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn rekey_shows_the_new_code_and_has_it_typed_back_before_any_enscrypt() {
    let env = Env::with_identity("me");
    let before = env.identity_bytes("me");
    let rekey = [
        "identity",
        "rekey",
        "--rescue-code-file",
        "me.rescue",
        "--password-file",
        "password",
    ];

    // A wrong confirmation: no EnScrypt run, the identity as it was.
    let terminal = Terminal::start(&env, &rekey);
    let screen = terminal.wait_for("Press Enter when you have written it down");
    let code = shown_code(&screen);
    assert!(!screen.contains("Checking "), "{screen}");
    assert!(!screen.contains("Encrypting ("), "{screen}");
    terminal.type_line("");
    terminal.wait_for("Type the rescue code from your paper");
    for _ in 0..3 {
        terminal.type_line(&misremembered(&code));
    }
    assert_eq!(
        terminal.exit_status(),
        i32::from(ExitCode::InvalidInput.code())
    );
    let screen = terminal.screen();
    assert!(screen.contains("nothing was saved"), "{screen}");
    assert!(!screen.contains("Encrypting ("), "{screen}");
    assert_eq!(env.identity_bytes("me"), before);
    drop(terminal);

    // Confirmed: then the work, then the rekeyed identity under the new code.
    let terminal = Terminal::start(&env, &rekey);
    let code = shown_code(&terminal.wait_for("Press Enter when you have written it down"));
    terminal.type_line("");
    terminal.wait_for("Type the rescue code from your paper");
    terminal.type_line(&code.replace('-', " "));
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    let screen = terminal.screen();
    assert!(screen.contains("Rekeyed identity \"me\""), "{screen}");
    assert!(
        screen.contains("Checking rescue code") && screen.contains("Encrypting (rescue)"),
        "{screen}"
    );
    assert!(!screen.contains(&code), "{screen}");

    let s4 = S4::parse(&env.identity_bytes("me")).unwrap();
    let password = Password::from(PASSWORD);
    s4.verify(
        &password,
        &RescueCode::parse(&code).unwrap(),
        &mut |_, _| {},
    )
    .unwrap();
    let old = RescueCode::parse(&String::from_utf8(env.read("me.rescue")).unwrap()).unwrap();
    assert!(s4.recover_unlock_key(&old, &mut |_, _| {}).is_err());
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn a_relayed_code_needs_the_word_typed_even_with_yes() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    // The page was opened elsewhere (a documentation address).
    let elsewhere = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let (url, _, attempt) = site.open_page(elsewhere, None);
    let login = |url: &str| {
        Terminal::start(
            &env,
            &["login", url, "--yes", "--password-file", "password"],
        )
    };
    let terminal = login(&url);
    let screen = terminal.wait_for("type CONTINUE");
    assert!(
        screen.contains("it may be an attacker's login")
            && screen.contains("sign THEIR browser in as you"),
        "{screen}"
    );
    // A reflex "y" is no answer.
    terminal.type_line("y");
    assert_eq!(
        terminal.exit_status(),
        i32::from(ExitCode::Declined.code()),
        "{}",
        terminal.screen()
    );
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::Pending)
    );
    assert_eq!(site.server().account_count(), 0);
    drop(terminal);

    let (url, _, attempt) = site.open_page(elsewhere, None);
    let terminal = login(&url);
    terminal.wait_for("type CONTINUE");
    terminal.type_line("continue");
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    let screen = terminal.screen();
    assert!(screen.contains("Logged in to 127.0.0.1"), "{screen}");
    assert!(
        screen.contains("Identity fingerprint for 127.0.0.1"),
        "{screen}"
    );
    assert!(matches!(
        site.server().attempt(&attempt),
        Some(AttemptState::Confirmed(_))
    ));
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn login_shows_the_site_before_the_password_and_asks_again_after_a_wrong_one() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(crate::memory_site::LOOPBACK, None);
    let terminal = Terminal::start(&env, &["login", &url]);
    let screen = terminal.wait_for("Log in to 127.0.0.1");
    // The site, from the link alone, and no password asked yet.
    assert!(screen.contains("Site: 127.0.0.1\n"), "{screen}");
    assert!(
        screen.contains(&format!("requests go to http://127.0.0.1:{}", site.port)),
        "{screen}"
    );
    assert!(!screen.contains("Password for identity"), "{screen}");
    assert!(
        site.handled().is_empty(),
        "nothing is sent before the go-ahead"
    );
    terminal.type_line("y");

    terminal.wait_for("Password for identity \"me\"");
    terminal.type_secret("not the password");
    let screen = terminal.wait_for("Wrong password for identity \"me\"; 2 tries left.");
    assert!(site.handled().is_empty(), "{screen}");
    terminal.type_secret(PASSWORD);
    assert_eq!(terminal.exit_status(), 0, "{}", terminal.screen());
    let screen = terminal.screen();
    assert!(screen.contains("Logged in to 127.0.0.1"), "{screen}");
    assert!(
        screen.contains("The site does not know this identity"),
        "{screen}"
    );
    // The fingerprint in the site's own form (eight groups of four hex digits).
    let line = screen
        .lines()
        .find(|l| l.starts_with("Identity fingerprint for"))
        .unwrap_or_else(|| panic!("{screen}"));
    let fingerprint = line.split(": ").nth(1).unwrap().split(" (").next().unwrap();
    assert_eq!(fingerprint.split(' ').count(), 8, "{line}");
    assert!(matches!(
        site.server().attempt(&attempt),
        Some(AttemptState::Confirmed(_))
    ));
}

#[test]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn three_wrong_passwords_end_the_login_with_nothing_sent() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let terminal = Terminal::start(&env, &["login", &site.url(), "--yes"]);
    for left in ["2 tries left", "1 try left"] {
        terminal.wait_for_hidden_input();
        terminal.type_line("wrong");
        terminal.wait_for(left);
    }
    terminal.type_secret("still wrong");
    assert_eq!(
        terminal.exit_status(),
        i32::from(ExitCode::WrongSecret.code())
    );
    assert!(terminal.screen().contains("wrong password for identity"));
    assert!(site.handled().is_empty());
}

/// The EnScrypt budget of the test identity: a login that has to unlock it
/// itself runs that many iterations (their CPU time depends on the machine's
/// load when they were timed); one served by the agent must cost less than
/// [`AGENT_LOGIN_CPU`].
const SLOW_UNLOCK_MS: u64 = 3000;
/// The most CPU a login through the agent may use (no EnScrypt at all).
const AGENT_LOGIN_CPU: Duration = Duration::from_millis(100);

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(no_tmux, ignore = "needs tmux: run .ci/install-browser")]
fn the_agent_unlocks_once_then_serves_logins_without_enscrypt_until_locked() {
    let site = MemorySite::start();
    let env = Env::new();
    // A real cost, so that a login that derives the key shows in its CPU time.
    env.sqrl(&["identity", "create", "me", "--rescue-code-out", "me.rescue"])
        .password()
        .env("SQRL_ENSCRYPT_MS", &SLOW_UNLOCK_MS.to_string())
        .run()
        .success();

    // Without the agent: the password and its EnScrypt run.
    let (run, cpu) = env
        .sqrl(&["login", &site.url(), "--yes", "--json"])
        .password()
        .run_measuring_cpu();
    run.success();
    assert!(
        cpu > AGENT_LOGIN_CPU * 2,
        "a password login used only {cpu:?} of CPU: the measurement cannot tell"
    );

    let agent = Terminal::start(&env, &["agent", "--port", "0", "--yes"]);
    agent.wait_for("Password for identity \"me\"");
    agent.type_secret(PASSWORD);
    agent.wait_for("sqrl agent: socket ");

    // Three logins, each with no password source and no terminal: only the
    // agent can unlock them.
    for _ in 0..3 {
        let (run, cpu) = env
            .sqrl(&["login", &site.url(), "--yes", "--json"])
            .run_measuring_cpu();
        let run = run.success();
        assert!(run.stderr().contains("Unlocked by the running sqrl agent"));
        assert_eq!(run.json()["known"], "current", "{}", run.stdout());
        assert!(
            cpu < AGENT_LOGIN_CPU,
            "a login through the agent used {cpu:?} of CPU"
        );
    }
    assert_eq!(site.server().account_count(), 1);

    // Locked on demand: the keys are gone, and the next login asks again.
    let locked = env.run(&["agent", "lock"]).success();
    assert!(locked.stdout().contains("Locked"), "{}", locked.stdout());
    let status = env.run(&["agent", "status", "--json"]).success().json();
    assert_eq!(status["unlocked"], false, "{status}");
    let agent_screen = agent.screen();
    assert!(agent_screen.contains("locked on request"), "{agent_screen}");

    let login = Terminal::start(&env, &["login", &site.url(), "--yes"]);
    let screen = login.wait_for("Password for identity \"me\"");
    assert!(screen.contains("The sqrl agent is locked"), "{screen}");
    login.type_secret(PASSWORD);
    assert_eq!(login.exit_status(), 0, "{}", login.screen());
}
