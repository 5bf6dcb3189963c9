//! `sqrl agent`: the CPS localhost server, with a plain HTTP client playing the
//! browser (SPEC 7).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::Child;
use std::time::Duration;

use sqrl_core::base64url;
use sqrl_core::server::memory::AttemptState;

use crate::memory_site::{LOOPBACK, MemorySite, with_url};
use crate::support::Env;

/// A running agent; killed when dropped.
pub struct AgentProcess {
    pub child: Child,
    pub port: u16,
}

impl AgentProcess {
    pub fn start(env: &Env, extra: &[&str]) -> Self {
        let mut child = env
            .sqrl(&["agent", "--port", "0"])
            .yes()
            .password()
            .json()
            .args(extra)
            .spawn();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("agent did not start ({e}): {line:?}"));
        let port = value["listening"]
            .as_str()
            .unwrap()
            .strip_prefix("127.0.0.1:")
            .unwrap()
            .parse()
            .unwrap();
        Self { child, port }
    }

    /// Waits for the agent to exit by itself (after `--max-logins`); returns stderr.
    pub fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "agent failed: {stderr}");
        stderr
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser request: `(status, headers, body)`; status 0 if the agent closed
/// the connection without answering.
pub fn browser_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return (0, Vec::new(), Vec::new());
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The page script's path: `btoa()` output with only the first `+` and `/`
/// converted, as a widely copied script does (PITFALLS 33).
pub fn page_script_path(link: &str) -> String {
    let standard = base64url::encode(link).replace('-', "+").replace('_', "/");
    let converted = standard.replacen('+', "-", 1).replacen('/', "_", 1);
    let padding = "=".repeat((4 - converted.len() % 4) % 4);
    format!("/{converted}{padding}")
}

#[test]
fn cps_login_through_the_agent() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &["--max-logins", "1"]);
    let cancel = format!("http://127.0.0.1:{}/cancelled", site.port);
    let (_, link, attempt) = site.open_page(LOOPBACK, Some(&cancel));
    assert!(link.contains("can="));

    // The page's probe: any *.gif gets a 1x1 GIF.
    let (status, headers, body) = browser_get(agent.port, "/1712345678901.gif", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/gif"));
    assert!(body.starts_with(b"GIF89a"));

    // Script (any request with Origin) gets nothing at all, and no login runs.
    let path = page_script_path(&link);
    let (status, _, body) = browser_get(agent.port, &path, &[("Origin", "http://evil.example")]);
    assert_eq!((status, body.len()), (0, 0));
    assert!(site.handled().is_empty());

    // The navigation: the agent logs in with opt=cps and redirects the browser.
    let (status, headers, _) = browser_get(agent.port, &path, &[]);
    assert_eq!(status, 302);
    let location = header(&headers, "location").unwrap().to_owned();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{}/cps?token=", site.port)),
        "{location}"
    );
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(
        site.server().attempt(&attempt),
        Some(&AttemptState::ClientSession)
    );
    assert!(site.server().redeem_cps_url(&location).is_some());
    let stderr = agent.finish();
    assert!(stderr.contains("Logged in to 127.0.0.1"), "{stderr}");
}

#[test]
fn failed_login_goes_to_can_or_to_a_back_page() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &["--max-logins", "2"]);
    // The page was fetched from another address: same-device mode fails the IP test.
    let elsewhere = "192.0.2.9".parse().unwrap();
    let cancel = format!("http://127.0.0.1:{}/cancelled", site.port);
    let (_, link, _) = site.open_page(elsewhere, Some(&cancel));
    let (status, headers, _) = browser_get(agent.port, &page_script_path(&link), &[]);
    assert_eq!(status, 302);
    assert_eq!(header(&headers, "location"), Some(cancel.as_str()));

    // No cancel URL: a page asking the user to press Back.
    let (url, _, _) = site.open_page(elsewhere, None);
    let (status, headers, body) =
        browser_get(agent.port, &format!("/{}", base64url::encode(&url)), &[]);
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("Back"), "{page}");
    assert!(page.contains("network address"), "{page}");
    let stderr = agent.finish();
    assert!(stderr.contains("failed"), "{stderr}");
    assert_eq!(site.server().account_count(), 0);
}

#[test]
fn a_session_url_that_is_not_a_web_address_never_reaches_the_browser() {
    let site = MemorySite::start();
    site.rewrite_replies(|text| with_url(text, "undefined"));
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &["--max-logins", "1"]);
    let cancel = format!("http://127.0.0.1:{}/cancelled", site.port);
    let (_, link, _) = site.open_page(LOOPBACK, Some(&cancel));
    let (status, headers, _) = browser_get(agent.port, &page_script_path(&link), &[]);
    assert_eq!(status, 302);
    assert_eq!(header(&headers, "location"), Some(cancel.as_str()));
    let stderr = agent.finish();
    assert!(stderr.contains("unusable session address"), "{stderr}");
}

#[test]
fn unlocked_identity_is_kept_until_the_idle_timeout() {
    let site = MemorySite::start();
    let env = Env::with_identity("me");

    // Kept: after the agent unlocked at start, the password file no longer matters.
    let agent = AgentProcess::start(&env, &["--max-logins", "1", "--idle-timeout", "600"]);
    env.write("password", "changed after unlocking\n");
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let (status, _, _) = browser_get(agent.port, &format!("/{}", base64url::encode(&url)), &[]);
    assert_eq!(status, 302);
    agent.finish();

    // Forgotten: after a 1 s idle timeout the password is needed again, and the
    // (now wrong) file makes the login fail.
    env.write("password", format!("{}\n", crate::support::PASSWORD));
    let agent = AgentProcess::start(&env, &["--max-logins", "1", "--idle-timeout", "1"]);
    env.write("password", "changed after unlocking\n");
    std::thread::sleep(Duration::from_millis(1500));
    let (url, _, _) = site.open_page(LOOPBACK, None);
    let (status, _, body) = browser_get(agent.port, &format!("/{}", base64url::encode(&url)), &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("wrong password"));
    let stderr = agent.finish();
    assert!(stderr.contains("idle timeout"), "{stderr}");
}

#[test]
fn agent_binds_loopback_and_ignores_other_paths() {
    let env = Env::with_identity("me");
    let agent = AgentProcess::start(&env, &[]);
    let (status, _, _) = browser_get(agent.port, "/favicon.ico", &[]);
    assert_eq!(status, 404);
    let (status, _, _) = browser_get(agent.port, "/not-a-sqrl-url", &[]);
    assert_eq!(status, 404);
    // Only 127.0.0.1 listens: the kernel's socket table has the port on
    // 0100007F (127.0.0.1) and on no other local address.
    #[cfg(target_os = "linux")]
    {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap()
            + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
        let suffix = format!(":{:04X}", agent.port);
        let listening: Vec<&str> = table
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|local| local.ends_with(&suffix))
            .collect();
        assert!(!listening.is_empty());
        assert!(
            listening
                .iter()
                .all(|local| *local == format!("0100007F{suffix}")),
            "{listening:?}"
        );
    }
}
