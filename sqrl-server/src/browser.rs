//! What the person at the signing device is told about the browser a login
//! would sign in: enough to notice "that is not my computer" when a code was
//! relayed from someone else's screen (QRLJacking).

use std::net::IpAddr;

/// A short human name for a `User-Agent`: browser family and operating
/// system ("Firefox on Linux"), or "an unknown browser".
///
/// Deliberately coarse: the header is the browser's own claim, shown only to
/// help a person recognise their own machine, never trusted for anything.
pub fn describe_user_agent(user_agent: &str) -> String {
    // Order matters: Edge and Opera also say "Chrome", Chrome also says
    // "Safari", and every one of them says "Mozilla".
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Chrome (headless)"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("ureq/", "ureq"),
    ];
    const SYSTEMS: &[(&str, &str)] = &[
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(token, _)| user_agent.contains(token))
            .map(|(_, name)| *name)
    };
    match (find(BROWSERS), find(SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("a browser on {system}"),
        (None, None) => "an unknown browser".to_owned(),
    }
}

/// How long ago, in words a person reads at a glance.
fn ago(seconds: u64) -> String {
    match seconds {
        0..=1 => "just now".to_owned(),
        2..=119 => format!("{seconds} seconds ago"),
        _ => format!("{} minutes ago", seconds / 60),
    }
}

/// The notice put in front of the site's question when the device is on
/// another network than the browser (see
/// `sqrl_core::server::Decision::describe_waiting_browser`).
pub fn waiting_browser_notice(ip: IpAddr, user_agent: &str, opened_secs_ago: u64) -> String {
    format!(
        "You are signing in {browser} at {ip}, whose sign-in page opened {when}. \
         If that is not a browser you are using right now, someone may have sent you \
         their code: do not continue.",
        browser = describe_user_agent(user_agent),
        ip = ip.to_canonical(),
        when = ago(opened_secs_ago),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_common_browsers() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("curl/8.5.0", "curl"),
            ("", "an unknown browser"),
        ];
        for (agent, expected) in cases {
            assert_eq!(describe_user_agent(agent), expected, "{agent}");
        }
    }

    #[test]
    fn notice_names_address_browser_and_age() {
        let notice = waiting_browser_notice(
            "::ffff:203.0.113.7"
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            12,
        );
        assert!(
            notice.contains("Firefox on Linux at 203.0.113.7"),
            "{notice}"
        );
        assert!(notice.contains("12 seconds ago"), "{notice}");
        assert_eq!(ago(600), "10 minutes ago");
    }
}
