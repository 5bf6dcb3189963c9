//! `sqrl login|disable|enable|remove` against sqrl-core's reference server.

use std::net::{IpAddr, Ipv4Addr};

use sqrl_client::ExitCode;
use sqrl_core::keys::IdentityKey;
use sqrl_core::msg::{Ask, AskButton, Button};
use sqrl_core::server::Policy;
use sqrl_core::server::memory::AttemptState;

use crate::memory_site::{LOOPBACK, MemorySite};
use crate::support::{Env, Run};

fn code(exit: ExitCode) -> i32 {
    i32::from(exit.code())
}

fn login(env: &Env, url: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "login",
        url,
        "--yes",
        "--password-file",
        "password",
        "--json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn site_command(env: &Env, command: &str, url: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        command,
        url,
        "--yes",
        "--password-file",
        "password",
        "--json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// The identity's key for the memory site, as `sqrl identity show --site` computes it.
fn idk(env: &Env, url: &str) -> IdentityKey {
    let shown = env
        .run(&[
            "identity",
            "show",
            "--site",
            url,
            "--password-file",
            "password",
            "--json",
        ])
        .success()
        .json();
    IdentityKey::from_base64url(shown["idk"].as_str().unwrap()).unwrap()
}

#[test]
fn new_user_then_returning_user() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let key = idk(&env, &url);

    let first = login(&env, &url, &[]).success().json();
    assert_eq!(first["known"], "unknown");
    assert_eq!(first["changed"], true);
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("new association"),
        "{first}"
    );
    assert_eq!(first["site"], "127.0.0.1");
    // The site key string and what the site knows are shown before confirming.
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::LoggedIn(key))
    );
    assert!(site.server().account(&key).is_some());
    // query then ident, both in cross-device mode (noiptest, no cps).
    let handled = site.handled();
    assert_eq!(handled.len(), 2);
    assert!(
        handled
            .iter()
            .all(|h| h.failure.is_none() && h.cps_url.is_none())
    );

    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let run = login(&env, &url, &[]).success();
    let second = run.json();
    assert_eq!(second["known"], "current");
    assert_eq!(second["tif"], "5", "{second}");
    assert!(
        second["tif_text"]
            .as_str()
            .unwrap()
            .contains("current identity"),
        "{second}"
    );
    assert!(
        run.stderr().contains("The site knows this identity."),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("Site: 127.0.0.1"), "{}", run.stderr());
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::LoggedIn(key))
    );
    assert_eq!(site.server().account_count(), 1);
}

#[test]
fn human_output_reports_the_outcome_in_words() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = env
        .run(&["login", &url, "--yes", "--password-file", "password"])
        .success();
    assert_eq!(
        run.stdout().trim(),
        "Logged in to 127.0.0.1: the site now knows this identity (new association)."
    );
}

#[test]
fn disable_enable_remove() {
    let site = MemorySite::start();
    let env = Env::new();
    let rescue = env.create("me");
    env.write("rescue", &rescue);
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let key = idk(&env, &url);
    login(&env, &url, &[]).success();

    let (url, _, _) = site.open_page(LOOPBACK, None);
    let disabled = site_command(&env, "disable", &url, &[]).success().json();
    assert_eq!(disabled["action"], "disable");
    assert!(site.server().account(&key).unwrap().disabled);

    // Logging in is refused, in words, with a distinct exit code.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = login(&env, &url, &[]).fails_with(code(ExitCode::Refused));
    assert!(
        run.error_line().contains("disabled"),
        "{}",
        run.error_line()
    );

    // Enable needs the rescue code: without it, a usage error and no change.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    site_command(&env, "enable", &url, &[]).fails_with(code(ExitCode::Usage));
    assert!(site.server().account(&key).unwrap().disabled);
    env.write("wrong-rescue", "1234-5678-9012-3456-7890-1234");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    site_command(
        &env,
        "enable",
        &url,
        &["--rescue-code-file", "wrong-rescue"],
    )
    .fails_with(code(ExitCode::WrongSecret));
    assert!(site.server().account(&key).unwrap().disabled);

    let (url, _, _) = site.open_page(LOOPBACK, None);
    let enabled = site_command(&env, "enable", &url, &["--rescue-code-file", "rescue"])
        .success()
        .json();
    assert!(
        enabled["message"].as_str().unwrap().contains("re-enabled"),
        "{enabled}"
    );
    assert!(!site.server().account(&key).unwrap().disabled);

    let (url, _, _) = site.open_page(LOOPBACK, None);
    login(&env, &url, &[]).success();

    let (url, _, _) = site.open_page(LOOPBACK, None);
    let removed = site_command(&env, "remove", &url, &["--rescue-code-file", "rescue"])
        .success()
        .json();
    assert!(
        removed["message"].as_str().unwrap().contains("removed"),
        "{removed}"
    );
    assert_eq!(site.server().account_count(), 0);

    // Removing again: the site no longer knows the identity.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    site_command(&env, "remove", &url, &["--rescue-code-file", "rescue"])
        .fails_with(code(ExitCode::Refused));
}

#[test]
fn rekey_then_login_replaces_the_identity() {
    let site = MemorySite::start();
    let env = Env::new();
    let rescue = env.create("me");
    env.write("rescue", &rescue);
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let old_key = idk(&env, &url);
    login(&env, &url, &[]).success();
    // Keep a copy of the old identity, as a second device would have it.
    env.run(&["identity", "export", "-f", "s4", "-o", "old.sqrl"])
        .success();

    env.run(&[
        "identity",
        "rekey",
        "--rescue-code-file",
        "rescue",
        "--password-file",
        "password",
        "--rescue-code-out",
        "new-rescue",
    ])
    .success();
    let new_key = idk(&env, &url);
    assert_ne!(new_key, old_key);

    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let replaced = login(&env, &url, &[]).success().json();
    assert_eq!(replaced["known"], "previous");
    assert!(
        replaced["message"]
            .as_str()
            .unwrap()
            .contains("previous identity #1"),
        "{replaced}"
    );
    assert!(site.server().is_superseded(&old_key));
    assert!(site.server().account(&old_key).is_none());
    assert!(site.server().account(&new_key).is_some());
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::LoggedIn(new_key))
    );

    // Now a plain returning user.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    assert_eq!(login(&env, &url, &[]).success().json()["known"], "current");

    // The stale copy is told to update, and creates no second account.
    env.run(&["identity", "import", "old.sqrl", "--name", "stale"])
        .success();
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = login(&env, &url, &["-i", "stale"]).fails_with(code(ExitCode::Refused));
    assert!(
        run.error_line().contains("replaced by a newer one"),
        "{}",
        run.error_line()
    );
    assert_eq!(site.server().account_count(), 1);
}

#[test]
fn ask_is_shown_and_answered() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    login(&env, &url, &[]).success();

    let ask = Ask::new("Accept the new terms?\x1b[2J")
        .with_button(AskButton::new("Accept", None).unwrap())
        .unwrap()
        .with_button(AskButton::new("Decline", Some("/declined".into())).unwrap())
        .unwrap();
    site.set_policy(Policy::new().with_ask(ask));

    // Without a terminal the question needs --button.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let before = site.handled().len();
    login(&env, &url, &[]).fails_with(code(ExitCode::Usage));
    assert_eq!(site.handled().len(), before + 1, "only the query was sent");

    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = login(&env, &url, &["--button", "2"]).success();
    assert_eq!(run.json()["button"], "2");
    let stderr = run.stderr();
    assert!(
        stderr.contains("The site asks: Accept the new terms?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[1] Accept") && stderr.contains("[2] Decline"),
        "{stderr}"
    );
    // The escape sequence is neutralised (plain text only).
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    let last = site.handled().last().cloned().unwrap();
    assert_eq!(last.button, Some(Button::Second));
}

#[test]
fn ip_mismatch_is_shown_or_refused() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    // The page was opened by a browser elsewhere (a documentation address; no
    // traffic goes there).
    let elsewhere = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let (url, link, _) = site.open_page(elsewhere, None);
    let run = login(&env, &url, &[]).success();
    assert!(
        run.stderr().contains("different network address"),
        "{}",
        run.stderr()
    );

    // Same-device mode does not send noiptest: the site refuses (tif 40).
    let _ = link;
    let (url, _, _) = site.open_page(elsewhere, None);
    let run = login(&env, &url, &["--same-device"]).fails_with(code(ExitCode::Refused));
    assert!(
        run.error_line().contains("network address"),
        "{}",
        run.error_line()
    );
}

#[test]
fn same_device_login_returns_the_session_url() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let key = idk(&env, &url);
    let outcome = login(&env, &url, &["--same-device"]).success().json();
    let cps = outcome["cps_url"].as_str().unwrap().to_owned();
    assert!(
        cps.starts_with(&format!("http://127.0.0.1:{}/", site.port)),
        "{cps}"
    );
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::HandedToClient)
    );
    assert_eq!(site.server().redeem_cps_url(&cps), Some(key));
}

#[test]
fn no_confirmation_means_no_change() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = env
        .run(&["login", &url, "--password-file", "password"])
        .fails_with(code(ExitCode::Usage));
    assert!(run.error_line().contains("--yes"), "{}", run.error_line());
    assert_eq!(site.server().account_count(), 0);
    assert_eq!(site.handled().len(), 1, "only the query");
}

#[test]
fn wrong_password_sends_nothing() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    env.write("wrong", "nope\n");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    env.run(&["login", &url, "--yes", "--password-file", "wrong"])
        .fails_with(code(ExitCode::WrongSecret));
    assert!(site.handled().is_empty());
}

#[test]
fn login_from_a_qr_image() {
    let site = MemorySite::start();
    let env = Env::new();
    env.create("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let png = sqrl_client::qr::render_png(url.as_bytes()).unwrap();
    let path = env.write("screenshot.png", png);
    login(&env, path.to_str().unwrap(), &[]).success();
    assert!(matches!(
        site.server().attempt(&attempt),
        Some(AttemptState::LoggedIn(_))
    ));
    // Not a link and not an image: a clear error.
    env.write("notes.txt", "hello");
    let run = login(&env, "notes.txt", &[]).fails_with(code(ExitCode::InvalidInput));
    assert!(run.error_line().contains("image"), "{}", run.error_line());
}

#[test]
fn unreachable_site_is_a_network_error() {
    let env = Env::new();
    env.create("me");
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("qrl://127.0.0.1:{port}/cli.sqrl?nut=abcdefgh");
    let run = login(&env, &url, &[]).fails_with(code(ExitCode::Network));
    assert!(
        run.error_line()
            .contains(&format!("http://127.0.0.1:{port}")),
        "{}",
        run.error_line()
    );
}

#[test]
fn site_key_string_includes_the_x_path() {
    let site = MemorySite::start_at("/shop/cli.sqrl", Some(5));
    let other = MemorySite::start_at("/blog/cli.sqrl", Some(5));
    let env = Env::new();
    env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    assert!(url.contains("x=5"), "{url}");
    let run = login(&env, &url, &[]).success();
    assert_eq!(run.json()["site"], "127.0.0.1/shop");
    assert!(
        run.stderr().contains("Site: 127.0.0.1/shop\n"),
        "{}",
        run.stderr()
    );
    // Another path on the same host is another site: another key.
    let (other_url, _, _) = other.open_page(LOOPBACK, None);
    assert_ne!(idk(&env, &url), idk(&env, &other_url));
    // An Alt-ID is shown with the site and selects yet another key.
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let run = login(&env, &url, &["--alt-id", "shopping"]).success();
    assert_eq!(run.json()["known"], "unknown");
    assert!(
        run.stderr()
            .contains("Site: 127.0.0.1/shop (Alt-ID shopping)"),
        "{}",
        run.stderr()
    );
    assert_eq!(site.server().account_count(), 2);
}

#[test]
fn non_ascii_password_and_spaced_rescue_code() {
    let site = MemorySite::start();
    let env = Env::new();
    // PITFALLS 18: EnScrypt sees the UTF-8 bytes in every mode.
    env.write("password", "pässwörd ✓ 密码\n");
    let rescue = env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    login(&env, &url, &[]).success();
    // PITFALLS 17: spaces and dashes are stripped wherever the code is used.
    env.write("rescue", rescue.replace('-', " "));
    let (url, _, _) = site.open_page(LOOPBACK, None);
    site_command(&env, "disable", &url, &[]).success();
    let (url, _, _) = site.open_page(LOOPBACK, None);
    site_command(&env, "enable", &url, &["--rescue-code-file", "rescue"]).success();
}

#[test]
fn secret_index_is_answered() {
    let site = MemorySite::start();
    site.set_policy(Policy::new().with_sin("0").unwrap());
    let env = Env::new();
    env.create("me");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    login(&env, &url, &[]).success();
    let handled = site.handled();
    // The query reply carried sin=0; the ident answered it with ins.
    assert!(handled[0].indexed_secrets.is_none());
    assert!(handled[1].indexed_secrets.is_some());
}
