//! `sqrl login|disable|enable|remove` against sqrl-core's reference server.

use std::net::{IpAddr, Ipv4Addr};

use sqrl_client::ExitCode;
use sqrl_core::keys::IdentityKey;
use sqrl_core::msg::{Ask, AskButton, Button};
use sqrl_core::server::memory::AttemptState;
use sqrl_core::server::{Failure, Policy};

use crate::memory_site::{LOOPBACK, MemorySite, with_url, without_ip_bit};
use crate::support::Env;

/// The identity's key for the memory site, as `sqrl identity show --site` computes it.
fn idk(env: &Env, url: &str) -> IdentityKey {
    IdentityKey::from_base64url(&env.idk("me", url, "password")).unwrap()
}

#[test]
fn new_user_then_returning_user() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let key = idk(&env, &url);

    let first = env.login(&url).run().success().json();
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
        Some(&AttemptState::Confirmed(key))
    );
    assert!(site.server().account(&key).is_some());
    // query then ident, no cps; the IP matched, so no noiptest was needed.
    let handled = site.handled();
    assert_eq!(handled.len(), 2);
    assert!(
        handled
            .iter()
            .all(|h| h.failure.is_none() && h.cps_url.is_none())
    );

    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let run = env
        .login(&url)
        .run()
        .success()
        .says("The site knows this identity.")
        .says("Site: 127.0.0.1");
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
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::Confirmed(key))
    );
    assert_eq!(site.server().account_count(), 1);
}

#[test]
fn human_output_reports_the_outcome_in_words() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let run = env
        .sqrl(&["login", &site.url()])
        .yes()
        .password()
        .run()
        .success();
    let key = idk(&env, &site.url());
    assert_eq!(
        run.stdout(),
        format!(
            "Logged in to 127.0.0.1: the site now knows this identity (new association).\n\
             Identity fingerprint for 127.0.0.1: {} (the site's page should show the same)\n",
            key.fingerprint()
        )
    );
}

#[test]
fn json_output_carries_the_fingerprint() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let url = site.url();
    let outcome = env.login(&url).run().success().json();
    let fingerprint = outcome["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint, idk(&env, &url).fingerprint());
    // Eight groups of four lower-case hex digits.
    let groups: Vec<&str> = fingerprint.split(' ').collect();
    assert_eq!(groups.len(), 8, "{fingerprint}");
    assert!(groups.iter().all(|g| {
        g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }));
    assert_eq!(outcome["ip_matched"], true);
}

#[test]
fn disable_enable_remove() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let url = site.url();
    let key = idk(&env, &url);
    env.login(&url).run().success();

    let disabled = env
        .site_command("disable", &site.url())
        .run()
        .success()
        .json();
    assert_eq!(disabled["action"], "disable");
    assert!(site.server().account(&key).unwrap().disabled);

    // Logging in is refused, in words, with a distinct exit code, and with
    // the reason and the site's TIF for a script.
    let (code, tif, _) = env
        .login(&site.url())
        .run()
        .fails_saying(ExitCode::Refused, "disabled")
        .refusal();
    assert_eq!(code, "sqrl_disabled");
    assert_eq!(
        tif & 0x009,
        0x009,
        "{tif:x}: disabled, current identity known"
    );

    // Enable needs the rescue code: without it, a usage error and no change.
    let enable = || env.site_command("enable", &site.url());
    enable().run().fails_with(ExitCode::Usage);
    assert!(site.server().account(&key).unwrap().disabled);
    env.write("wrong-rescue", "1234-5678-9012-3456-7890-1234");
    enable()
        .rescue_code_file("wrong-rescue")
        .run()
        .fails_with(ExitCode::WrongSecret);
    assert!(site.server().account(&key).unwrap().disabled);

    let enabled = enable()
        .rescue_code_file("me.rescue")
        .run()
        .success()
        .json();
    assert!(
        enabled["message"].as_str().unwrap().contains("re-enabled"),
        "{enabled}"
    );
    assert!(!site.server().account(&key).unwrap().disabled);

    env.login(&site.url()).run().success();

    let remove = || {
        env.site_command("remove", &site.url())
            .rescue_code_file("me.rescue")
            .run()
    };
    let removed = remove().success().json();
    assert!(
        removed["message"].as_str().unwrap().contains("removed"),
        "{removed}"
    );
    assert_eq!(site.server().account_count(), 0);

    // Removing again: the site no longer knows the identity.
    remove().fails_with(ExitCode::Refused);
}

#[test]
fn rekey_then_login_replaces_the_identity() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let url = site.url();
    let old_key = idk(&env, &url);
    env.login(&url).run().success();
    // Keep a copy of the old identity, as a second device would have it.
    env.export("s4", "old.sqrl");

    env.rekey("me.rescue")
        .args(&["--rescue-code-out", "new-rescue"])
        .run()
        .success();
    let new_key = idk(&env, &url);
    assert_ne!(new_key, old_key);

    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let replaced = env.login(&url).run().success().json();
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
        Some(&AttemptState::Confirmed(new_key))
    );

    // Now a plain returning user.
    assert_eq!(
        env.login(&site.url()).run().success().json()["known"],
        "current"
    );

    // The stale copy is told to update, and creates no second account.
    env.import("old.sqrl", "stale").run().success();
    let (code, tif, flags) = env
        .login(&site.url())
        .identity("stale")
        .run()
        .fails_saying(ExitCode::Refused, "replaced by a newer one")
        .refusal();
    assert_eq!(code, "identity_superseded");
    assert!(flags.iter().any(|f| f == "identity_superseded"), "{tif:x}");
    assert_eq!(site.server().account_count(), 1);
}

#[test]
fn ask_is_shown_and_answered() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    env.login(&site.url()).run().success();

    let ask = Ask::new("Accept the new terms?\x1b[2J")
        .with_button(AskButton::new("Accept", None).unwrap())
        .unwrap()
        .with_button(AskButton::new("Decline", Some("/declined".into())).unwrap())
        .unwrap();
    site.set_policy(Policy::new().with_ask(ask));

    // Without a terminal the question needs --button.
    let url = site.url();
    let before = site.handled().len();
    env.login(&url).run().fails_with(ExitCode::Usage);
    assert_eq!(site.handled().len(), before + 1, "only the query was sent");

    let run = env
        .login(&site.url())
        .args(&["--button", "2"])
        .run()
        .success()
        .says("The site asks: Accept the new terms?")
        .says("[1] Accept")
        .says("[2] Decline");
    assert_eq!(run.json()["button"], "2");
    // The escape sequence is neutralised (plain text only).
    assert!(!run.stderr().contains('\x1b'), "{:?}", run.stderr());
    let last = site.handled().last().cloned().unwrap();
    assert_eq!(last.button, Some(Button::Second));
}

/// A documentation address: no traffic goes there.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

#[test]
fn a_relayed_code_is_explained_and_refused_with_yes() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    // A browser elsewhere opened the page (an attacker relaying its code).
    let (url, _, attempt) = site.open_page(ELSEWHERE, None);
    let run = env
        .login(&url)
        .run()
        .fails_saying(ExitCode::AddressMismatch, "--allow-relayed-code")
        .says("different network address than the browser")
        .says("sign THEIR browser in as you");
    assert_eq!(run.json()["exit_code"], 10);
    let (code, tif, flags) = run.refusal();
    assert_eq!((code.as_str(), tif), ("ip_mismatch", 0x40));
    assert_eq!(flags, ["command_failed"]);
    // Only the query went out, without noiptest; the site refused it and
    // nobody was signed in.
    let handled = site.handled();
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].failure, Some(Failure::IpMismatch));
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::Pending)
    );
    assert_eq!(site.server().account_count(), 0);

    // Human output: the same explanation, nothing on stdout.
    let (url, _, _) = site.open_page(ELSEWHERE, None);
    let run = env
        .sqrl(&["login", &url])
        .yes()
        .password()
        .run()
        .fails_with(ExitCode::AddressMismatch)
        .says("it may be an attacker's login");
    assert_eq!(run.stdout(), "");
    assert_eq!(site.server().account_count(), 0);
}

#[test]
fn the_risk_flag_goes_on_without_the_ip_test() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(ELSEWHERE, None);
    let key = idk(&env, &url);
    let outcome = env
        .login(&url)
        .args(&["--allow-relayed-code"])
        .run()
        .success()
        .says("sign THEIR browser in as you")
        .says("--allow-relayed-code was given")
        .json();
    assert_eq!(outcome["ip_matched"], false);
    assert_eq!(outcome["known"], "unknown");
    // The refused query, the query again with noiptest (on the refusal's nut,
    // which kept the waiting browser), then the ident.
    let handled = site.handled();
    assert_eq!(handled.len(), 3, "{handled:?}");
    assert_eq!(handled[0].failure, Some(Failure::IpMismatch));
    assert!(handled[1..].iter().all(|h| h.failure.is_none()));
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::Confirmed(key))
    );
}

#[test]
fn same_device_refuses_an_ip_mismatch() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(ELSEWHERE, None);
    let (code, tif, _) = env
        .login(&url)
        .args(&["--same-device"])
        .run()
        .fails_saying(
            ExitCode::AddressMismatch,
            "--same-device requires the same address",
        )
        .refusal();
    assert_eq!((code.as_str(), tif), ("ip_mismatch", 0x40));
    assert_eq!(site.handled().len(), 1, "only the query");
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::Pending)
    );

    // No flag turns a same-device mismatch into a yes.
    let (url, _, _) = site.open_page(ELSEWHERE, None);
    let run = env
        .login(&url)
        .args(&["--same-device", "--allow-relayed-code"])
        .run();
    assert_eq!(
        run.code(),
        i32::from(ExitCode::Usage.code()),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("cannot be used with"),
        "{}",
        run.stderr()
    );
    assert_eq!(site.handled().len(), 1);
}

#[test]
fn same_device_requires_the_site_to_confirm_the_ip_match() {
    let site = MemorySite::start();
    // A site that answers without TIF 0x04 (it does not test the IP).
    site.rewrite_replies(without_ip_bit);
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let (code, tif, _) = env
        .login(&url)
        .args(&["--same-device"])
        .run()
        .fails_saying(ExitCode::AddressMismatch, "did not confirm")
        .refusal();
    assert_eq!(code, "ip_match_unconfirmed");
    assert_eq!(tif & 0x04, 0, "{tif:x}: the IP bit was taken out");
    assert_eq!(site.handled().len(), 1, "only the query");
    assert_eq!(site.server().account_count(), 0);
    assert_ne!(
        site.server().attempt(&attempt),
        Some(&AttemptState::ClientSession)
    );
}

#[test]
fn same_device_refuses_a_session_url_that_is_not_a_web_address() {
    let env = Env::with_identity("me");
    for bad in [
        "undefined",
        "/cps?token=abc",
        "javascript:alert(1)",
        "//evil.example/cps",
    ] {
        let site = MemorySite::start();
        site.rewrite_replies(move |text| with_url(text, bad));
        let url = site.url();
        let run = env
            .sqrl(&["login", &url, "--same-device"])
            .yes()
            .password()
            .run()
            .fails_saying(ExitCode::Network, "unusable session address");
        assert!(run.error_line().contains(bad), "{}", run.error_line());
        // Never printed as something to open.
        assert_eq!(run.stdout(), "", "{bad}");
        assert!(!run.stderr().contains("Open this address"), "{bad}");
    }
}

#[test]
fn same_device_login_returns_the_session_url() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let key = idk(&env, &url);
    let outcome = env
        .login(&url)
        .args(&["--same-device"])
        .run()
        .success()
        .json();
    let cps = outcome["cps_url"].as_str().unwrap().to_owned();
    assert!(
        cps.starts_with(&format!("http://127.0.0.1:{}/", site.port)),
        "{cps}"
    );
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::ClientSession)
    );
    assert_eq!(site.server().redeem_cps_url(&cps), Some(key));
}

#[test]
fn no_confirmation_means_no_change() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    env.sqrl(&["login", &site.url()])
        .password()
        .run()
        .fails_saying(ExitCode::Usage, "--yes")
        // The site was shown before the question that could not be asked.
        .says("Site: 127.0.0.1\n")
        .says(&format!("requests go to http://127.0.0.1:{}", site.port));
    assert_eq!(site.server().account_count(), 0);
    assert!(
        site.handled().is_empty(),
        "nothing is sent before the go-ahead"
    );
}

#[test]
fn wrong_password_sends_nothing() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    env.write("wrong", "nope\n");
    env.sqrl(&["login", &site.url()])
        .yes()
        .password_file("wrong")
        .run()
        .fails_with(ExitCode::WrongSecret);
    assert!(site.handled().is_empty());
}

#[test]
fn login_from_a_qr_image() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let (url, _, attempt) = site.open_page(LOOPBACK, None);
    let png = sqrl_client::qr::render_png(url.as_bytes()).unwrap();
    let path = env.write("screenshot.png", png);
    env.login(path.to_str().unwrap()).run().success();
    assert!(matches!(
        site.server().attempt(&attempt),
        Some(AttemptState::Confirmed(_))
    ));
    // Not a link and not an image: a clear error.
    env.write("notes.txt", "hello");
    env.login("notes.txt")
        .run()
        .fails_saying(ExitCode::InvalidInput, "image");
}

#[test]
fn unreachable_site_is_a_network_error() {
    let env = Env::with_identity("me");
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("qrl://127.0.0.1:{port}/cli.sqrl?nut=abcdefgh");
    env.login(&url)
        .run()
        .fails_saying(ExitCode::Network, &format!("http://127.0.0.1:{port}"));
}

#[test]
fn site_key_string_includes_the_x_path() {
    let site = MemorySite::start_at("/shop/cli.sqrl", Some(5));
    let other = MemorySite::start_at("/blog/cli.sqrl", Some(5));
    let env = Env::with_identity("me");
    let url = site.url();
    assert!(url.contains("x=5"), "{url}");
    let run = env
        .login(&url)
        .run()
        .success()
        .says("Site: 127.0.0.1/shop\n");
    assert_eq!(run.json()["site"], "127.0.0.1/shop");
    // Another path on the same host is another site: another key.
    assert_ne!(idk(&env, &url), idk(&env, &other.url()));
    // An Alt-ID is shown with the site and selects yet another key.
    let run = env
        .login(&site.url())
        .args(&["--alt-id", "shopping"])
        .run()
        .success()
        .says("Site: 127.0.0.1/shop (Alt-ID shopping)");
    assert_eq!(run.json()["known"], "unknown");
    assert_eq!(site.server().account_count(), 2);
}

#[test]
fn non_ascii_password_and_spaced_rescue_code() {
    let site = MemorySite::start();
    let env = Env::new();
    // PITFALLS 18: EnScrypt sees the UTF-8 bytes in every mode.
    env.write("password", "pässwörd ✓ 密码\n");
    let rescue = env.create("me");
    env.login(&site.url()).run().success();
    // PITFALLS 17: spaces and dashes are stripped wherever the code is used.
    env.write("rescue", rescue.replace('-', " "));
    env.site_command("disable", &site.url()).run().success();
    env.site_command("enable", &site.url())
        .rescue_code_file("rescue")
        .run()
        .success();
}

#[test]
fn secret_index_is_answered() {
    let site = MemorySite::start();
    site.set_policy(Policy::new().with_sin("0").unwrap());
    let env = Env::with_identity("me");
    env.login(&site.url()).run().success();
    let handled = site.handled();
    // The query reply carried sin=0; the ident answered it with ins.
    assert!(handled[0].indexed_secrets.is_none());
    assert!(handled[1].indexed_secrets.is_some());
}

/// The whole error line, compared as a snapshot would be (the ports vary).
fn error_line_is(run: &crate::support::Run, expected: &str) {
    assert_eq!(run.error_line(), format!("sqrl: error: {expected}"));
}

#[test]
fn an_unknown_or_expired_code_says_so_without_an_address_warning() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    // A nut the site never issued (a stale page, or one of another server).
    let url = format!(
        "qrl://127.0.0.1:{}/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA",
        site.port
    );
    for extra in [&[][..], &["--allow-relayed-code"][..]] {
        let run = env
            .login(&url)
            .args(extra)
            .run()
            .fails_with(ExitCode::Refused);
        error_line_is(
            &run,
            "127.0.0.1: the login page has expired; reload it and try again",
        );
        assert!(
            !run.stderr().contains("network address"),
            "{}",
            run.stderr()
        );
        assert_eq!(run.json()["code"], "page_expired");
    }
    // A live code of a page opened elsewhere still gets the warning.
    let (url, _, _) = site.open_page(ELSEWHERE, None);
    env.login(&url)
        .run()
        .fails_with(ExitCode::AddressMismatch)
        .says("different network address");
}

/// A plain-HTTP server that answers whatever it is sent (a TLS greeting
/// included) with `400 Bad Request`, as web servers do; one connection.
fn plain_http_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn a_sqrl_link_to_a_plain_http_port_says_so() {
    let port = plain_http_server();
    let env = Env::with_identity("me");
    let url = format!("sqrl://127.0.0.1:{port}/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA");
    let run = env.login(&url).run().fails_with(ExitCode::Network);
    error_line_is(
        &run,
        &format!(
            "https://127.0.0.1:{port} answered in plain HTTP, not HTTPS: a sqrl:// link means \
             HTTPS (if the site really serves SQRL over plain HTTP, its links start with qrl://)"
        ),
    );
    assert_eq!(run.json()["code"], "plain_http_site");
}

#[test]
fn an_exported_identity_qr_given_to_login_points_to_import() {
    let env = Env::with_identity("me");
    env.export("qr-png", "identity.png");
    let run = env
        .login("identity.png")
        .run()
        .fails_with(ExitCode::InvalidInput);
    error_line_is(
        &run,
        "the QR code in identity.png is an exported SQRL identity, not a login link; to add \
         it to this computer, use `sqrl identity import identity.png`",
    );
}
