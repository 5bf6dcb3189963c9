//! The `sqrl` binary against the real `sqrl-server` over HTTP (and HTTPS).

use sqrl_client::ExitCode;
use sqrl_core::base64url;
use sqrl_server::config::{AskButtonConfig, AskConfig, TlsFiles};

use crate::agent::{AgentProcess, browser_get, header, page_script_path};
use crate::real_site::{RealSite, browser, get};
use crate::support::Env;

/// `name=value` of the first `Set-Cookie` headers.
fn cookies(reply: &crate::real_site::Reply) -> String {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .filter(|pair| !pair.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Follows a single-use login URL as the browser and checks the account page;
/// returns that page.
fn browser_completes(site: &RealSite, agent: &ureq::Agent, url: &str) -> String {
    browser_completes_as(site, agent, url, &[])
}

/// The same, for a browser sending `headers` (the cookie of its login page).
fn browser_completes_as(
    site: &RealSite,
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, &str)],
) -> String {
    let url = if url.starts_with('/') {
        format!("{}{url}", site.base())
    } else {
        url.to_owned()
    };
    let complete = get(agent, &url, headers);
    assert!(
        matches!(complete.status, 302 | 303),
        "{} {}",
        complete.status,
        complete.text()
    );
    assert_eq!(complete.header("location"), Some("/account"));
    let cookie = cookies(&complete);
    assert!(!cookie.is_empty());
    let account = get(
        agent,
        &format!("{}/account", site.base()),
        &[("Cookie", &cookie)],
    );
    assert_eq!(account.status, 200);
    assert!(
        account.text().contains("Your account"),
        "{}",
        account.text()
    );
    account.text()
}

#[test]
fn new_user_returning_user_and_the_waiting_page() {
    let site = RealSite::start();
    let web = browser();
    let env = Env::with_identity("me");

    let page = site.open_page(&web);
    assert_eq!(site.poll(&web, &page).0, "pending");
    let first = env.login(&page.url).run().success().json();
    assert_eq!(first["known"], "unknown");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("new association")
    );
    // The page (polling, cross-device) learns the login and gets its link.
    let (state, url) = site.poll(&web, &page);
    assert_eq!(state, "confirmed");
    browser_completes(&site, &web, &url);

    let page = site.open_page(&web);
    let second = env.login(&page.url).run().success().json();
    assert_eq!(second["known"], "current");
    assert_eq!(second["tif"], "5");
    let (state, url) = site.poll(&web, &page);
    assert_eq!(state, "confirmed");
    browser_completes(&site, &web, &url);
}

#[test]
fn disable_enable_remove_over_http() {
    let site = RealSite::start();
    let web = browser();
    let env = Env::with_identity("me");
    let command = |name| env.site_command(name, &site.url(&web));
    let known = || command("login").run().success().json()["known"].clone();
    command("login").run().success();

    command("disable").run().success();
    let (code, _, flags) = command("login")
        .run()
        .fails_saying(ExitCode::Refused, "disabled")
        .refusal();
    assert_eq!(code, "sqrl_disabled");
    assert!(flags.iter().any(|f| f == "sqrl_disabled"), "{flags:?}");
    // Disabling twice is reported, not sent.
    let again = command("disable").run().success().json();
    assert_eq!(again["changed"], false);

    command("enable")
        .rescue_code_file("me.rescue")
        .run()
        .success();
    assert_eq!(known(), "current");

    command("remove")
        .rescue_code_file("me.rescue")
        .run()
        .success();
    // The site no longer knows the identity: the next login is a new association.
    assert_eq!(known(), "unknown");
}

#[test]
fn rekey_then_login_replaces_the_identity_over_http() {
    let site = RealSite::start();
    let web = browser();
    let env = Env::with_identity("me");
    let command = |name| env.site_command(name, &site.url(&web));
    command("login").run().success();
    env.export("s4", "old.sqrl");
    env.rekey("me.rescue")
        .args(&["--rescue-code-out", "new-rescue"])
        .run()
        .success();

    let page = site.open_page(&web);
    let replaced = env.login(&page.url).run().success().json();
    assert_eq!(replaced["known"], "previous", "{replaced}");
    let (state, url) = site.poll(&web, &page);
    assert_eq!(state, "confirmed");
    browser_completes(&site, &web, &url);
    assert_eq!(command("login").run().success().json()["known"], "current");

    // The old identity, still on another device, is superseded (TIF 0x200).
    env.import("old.sqrl", "stale").run().success();
    command("login")
        .identity("stale")
        .run()
        .fails_saying(ExitCode::Refused, "replaced by a newer one");

    // The new rescue code re-enables after a disable; the old one cannot.
    command("disable").run().success();
    command("enable")
        .rescue_code_file("me.rescue")
        .run()
        .fails_with(ExitCode::WrongSecret);
    command("enable")
        .rescue_code_file("new-rescue")
        .run()
        .success();
}

#[test]
fn ask_over_http() {
    let site = RealSite::start_with(|config, _| {
        config.ask = Some(AskConfig {
            message: "Link this identity to your existing account?".into(),
            buttons: vec![AskButtonConfig::label("Yes"), AskButtonConfig::label("No")],
        });
    });
    let web = browser();
    let env = Env::with_identity("me");
    env.login(&site.url(&web)).run().success();
    let run = env
        .login(&site.url(&web))
        .args(&["--button", "1"])
        .run()
        .success()
        .says("The site asks: Link this identity")
        .says("[2] No");
    assert_eq!(run.json()["button"], "1");
}

#[test]
fn disable_enable_remove_answer_a_site_that_asks_on_every_query() {
    let site = RealSite::start_with(|config, _| {
        config.ask = Some(AskConfig {
            message: "Is this really you?".into(),
            buttons: vec![AskButtonConfig::label("Yes"), AskButtonConfig::label("No")],
        });
    });
    let web = browser();
    let env = Env::with_identity("me");
    let command = |name| env.site_command(name, &site.url(&web));
    // A new user is asked nothing; from then on every query asks.
    command("login").run().success();

    // Without a terminal the question needs --button, and --yes is no answer.
    command("disable")
        .run()
        .fails_saying(ExitCode::Usage, "--button")
        .says("The site asks: Is this really you?");
    let disabled = command("disable")
        .args(&["--button", "1"])
        .run()
        .success()
        .says("[2] No")
        .json();
    assert_eq!(disabled["button"], "1");
    assert_eq!(disabled["action"], "disable");

    // A disabled identity is asked nothing, but --button is accepted all the same.
    let enabled = command("enable")
        .rescue_code_file("me.rescue")
        .args(&["--button", "1"])
        .run()
        .success()
        .json();
    assert_eq!(enabled["action"], "enable");

    command("remove")
        .rescue_code_file("me.rescue")
        .run()
        .fails_saying(ExitCode::Usage, "--button");
    let removed = command("remove")
        .rescue_code_file("me.rescue")
        .args(&["--button", "2"])
        .run()
        .success()
        .json();
    assert_eq!(removed["button"], "2");
    // The site no longer knows the identity.
    assert_eq!(command("login").run().success().json()["known"], "unknown");
}

#[test]
fn a_relayed_code_is_refused_and_the_page_elsewhere_stays_signed_out() {
    let site = RealSite::start_behind_proxy();
    // The attacker's browser, elsewhere, shows the site's code to the victim.
    let attacker = browser();
    let env = Env::with_identity("me");
    let page = site.open_page_from(&attacker, "203.0.113.7");
    let refused = env
        .login(&page.url)
        .run()
        .fails_saying(ExitCode::AddressMismatch, "--allow-relayed-code")
        .says("sign THEIR browser in as you");
    assert_eq!(refused.json()["exit_code"], 10);
    let (code, tif, _) = refused.refusal();
    assert_eq!((code.as_str(), tif), ("ip_mismatch", 0x40));
    let (state, url) = site.poll(&attacker, &page);
    assert_ne!(state, "confirmed");
    assert!(url.is_empty(), "{url}");

    // A page at this machine's own address asks nothing.
    let web = browser();
    let page = site.open_page(&web);
    let outcome = env.login(&page.url).run().success().json();
    assert_eq!(outcome["ip_matched"], true);
    assert_eq!(site.poll(&web, &page).0, "confirmed");

    // Accepted on purpose: the browser elsewhere is signed in, and its account
    // page shows the fingerprint the CLI printed. The identity is known now,
    // so the site's reply names the browser being signed in, and the CLI
    // shows it.
    let page = site.open_page_from(&attacker, "203.0.113.7");
    let outcome = env
        .login(&page.url)
        .args(&["--allow-relayed-code"])
        .run()
        .success()
        .says("at 203.0.113.7, whose sign-in page opened")
        .json();
    assert_eq!(outcome["ip_matched"], false);
    let (state, url) = site.poll(&attacker, &page);
    assert_eq!(state, "confirmed");
    let account = browser_completes(&site, &attacker, &url);
    let fingerprint = outcome["fingerprint"].as_str().unwrap();
    assert!(
        account.contains(fingerprint),
        "{fingerprint} not in {account}"
    );
}

#[test]
fn cps_through_the_agent_with_the_real_server() {
    let site = RealSite::start();
    let web = browser();
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &["--max-logins", "1"]);
    let page = site.open_page(&web);
    assert!(page.link.contains("can="), "{}", page.link);

    let (status, _, _) = browser_get(agent.port, &format!("/{}.gif", page.nut), &[]);
    assert_eq!(status, 200);
    let (status, headers, _) = browser_get(agent.port, &page_script_path(&page.link), &[]);
    assert_eq!(status, 302);
    let location = header(&headers, "location").unwrap().to_owned();
    assert!(location.starts_with(&site.base()), "{location}");
    // Only the browser that opened the page (its cookie) can use the link.
    let elsewhere = get(&web, &location, &[]);
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text());
    browser_completes_as(&site, &web, &location, &[("Cookie", &page.cookie())]);
    // The page's own login was abandoned in favour of the client's.
    assert_ne!(site.poll(&web, &page).0, "confirmed");
    agent.finish();
}

#[test]
fn agent_cancel_goes_back_to_the_login_page() {
    let site = RealSite::start();
    let web = browser();
    let env = Env::with_identity("me");
    env.login(&site.url(&web)).run().success();
    env.site_command("disable", &site.url(&web)).run().success();
    let agent = AgentProcess::start(&env, &["--max-logins", "1"]);
    let page = site.open_page(&web);
    let (status, headers, _) = browser_get(
        agent.port,
        &format!("/{}", base64url::encode(&page.link)),
        &[],
    );
    assert_eq!(status, 302);
    assert_eq!(
        header(&headers, "location"),
        Some(format!("{}/", site.base()).as_str())
    );
    agent.finish();
}

#[test]
fn png_sqrl_decodes_to_the_exact_url() {
    let site = RealSite::start();
    let web = browser();
    let page = site.open_page(&web);
    let png = get(
        &web,
        &format!("{}/png.sqrl?nut={}", site.base(), page.nut),
        &[],
    );
    assert_eq!(png.status, 200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(
        sqrl_client::qr::decode_sqrl_url(&png.body).unwrap(),
        page.url
    );

    // Without a nut the server mints one and names it in a header.
    let minted = get(&web, &format!("{}/png.sqrl", site.base()), &[]);
    let nut = minted.header("sqrl-nut").unwrap().to_owned();
    let url = sqrl_client::qr::decode_sqrl_url(&minted.body).unwrap();
    assert!(url.ends_with(&format!("nut={nut}")), "{url}");

    // And the CLI logs in from the saved image.
    let env = Env::with_identity("me");
    let path = env.write("code.png", &png.body);
    env.login(path.to_str().unwrap()).run().success();
    assert_eq!(site.poll(&web, &page).0, "confirmed");
}

#[test]
fn https_verifies_certificates_and_accepts_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();

    let site = RealSite::start_with(|config, dir| {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        config.tls = Some(TlsFiles { cert, key });
    });
    assert!(
        site.base().starts_with("https://127.0.0.1:"),
        "{}",
        site.base()
    );
    let env = Env::with_identity("me");
    env.write("ca.pem", ca.pem());

    // The browser side (no verification needed for the test's own page fetch).
    let page_url = {
        let port = site.base().rsplit(':').next().unwrap().to_owned();
        // Mint the attempt through the server's own state: same as a page load.
        let web = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[
                        ureq::tls::Certificate::from_pem(ca.pem().as_bytes()).unwrap(),
                    ]))
                    .build(),
            )
            .http_status_as_error(false)
            .build()
            .new_agent();
        let page = site.open_page(&web);
        assert!(
            page.url.starts_with(&format!("sqrl://127.0.0.1:{port}/")),
            "{}",
            page.url
        );
        page.url
    };

    // Public roots only: the private certificate is refused.
    env.login(&page_url)
        .run()
        .fails_saying(ExitCode::Network, "https://127.0.0.1");
    // With --ca-cert the same login works over HTTPS, on the explicit port.
    let outcome = env
        .login(&page_url)
        .args(&["--ca-cert", "ca.pem"])
        .run()
        .success()
        .json();
    assert_eq!(outcome["known"], "unknown");
}
