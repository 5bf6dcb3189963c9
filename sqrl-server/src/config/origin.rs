//! The public origin: the scheme and authority visitors and identity
//! clients reach the service at, and whether a request's `Host` names it.

use std::net::SocketAddr;

use super::{ConfigError, invalid};

/// Whether SQRL links use `sqrl://` (HTTPS) or `qrl://` (plain HTTP) (SPEC 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicScheme {
    /// `http://` origin, `qrl://` links.
    Http,
    /// `https://` origin, `sqrl://` links.
    Https,
}

/// The origin visitors and identity clients reach the service at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: PublicScheme,
    /// `host[:port]`, lower-cased, as it appears after `scheme://`.
    authority: String,
}

impl PublicOrigin {
    /// Parses `http[s]://host[:port]` (a trailing `/` is tolerated; no path,
    /// query, userinfo or fragment).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim_end_matches('/');
        let (scheme, authority) = if let Some(rest) = text.strip_prefix("https://") {
            (PublicScheme::Https, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (PublicScheme::Http, rest)
        } else {
            return Err(invalid(
                "public-origin",
                "must start with http:// or https://",
            ));
        };
        let valid = !authority.is_empty()
            && authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !valid {
            return Err(invalid(
                "public-origin",
                "must be scheme://host[:port] with no path, query or userinfo",
            ));
        }
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
        })
    }

    /// The origin for a listener address when none is configured.
    pub fn for_addr(addr: SocketAddr, scheme: PublicScheme) -> Self {
        Self {
            scheme,
            authority: addr.to_string(),
        }
    }

    /// HTTP or HTTPS.
    pub fn scheme(&self) -> PublicScheme {
        self.scheme
    }

    /// `http://host[:port]` or `https://host[:port]`.
    pub fn http_origin(&self) -> String {
        match self.scheme {
            PublicScheme::Http => format!("http://{}", self.authority),
            PublicScheme::Https => format!("https://{}", self.authority),
        }
    }

    /// `qrl://host[:port]` or `sqrl://host[:port]`.
    pub fn sqrl_origin(&self) -> String {
        match self.scheme {
            PublicScheme::Http => format!("qrl://{}", self.authority),
            PublicScheme::Https => format!("sqrl://{}", self.authority),
        }
    }

    /// The host, without the port (an IPv6 address in brackets), lower-case.
    pub fn host(&self) -> &str {
        if self.authority.starts_with('[') {
            return match self.authority.find(']') {
                Some(end) => &self.authority[..=end],
                None => &self.authority,
            };
        }
        self.authority
            .split_once(':')
            .map_or(self.authority.as_str(), |(host, _)| host)
    }

    /// Whether cookies get the `Secure` attribute.
    pub fn is_secure(&self) -> bool {
        self.scheme == PublicScheme::Https
    }

    /// Whether the host is one only this machine reaches: `localhost` (and
    /// names under it) or a loopback address. A phone cannot follow a QR
    /// code's link to such a host.
    pub fn is_loopback(&self) -> bool {
        let Some((host, _)) = split_authority(&self.authority, "0") else {
            return false;
        };
        host == "localhost"
            || host.ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether the host is the unspecified address (`0.0.0.0`, `[::]`),
    /// which a listener binds to but no browser can reach.
    pub fn is_unspecified(&self) -> bool {
        split_authority(&self.authority, "0").is_some_and(|(host, _)| {
            host.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
        })
    }

    /// Why visitors may not reach the links this origin makes, given the
    /// address the service listens on: `None` when nothing looks wrong.
    pub fn reachability_warning(&self, bound: SocketAddr) -> Option<String> {
        if self.is_unspecified() {
            return Some(format!(
                "the public origin {} is the unspecified address, which no browser or phone \
                 can reach: set --public-origin to the name visitors use",
                self.http_origin()
            ));
        }
        if self.is_loopback() && !bound.ip().is_loopback() {
            return Some(format!(
                "the public origin {} is a loopback address but the service listens on {bound}: \
                 other machines can connect, yet the QR codes send their phones to themselves; \
                 set --public-origin to the name visitors use",
                self.http_origin()
            ));
        }
        None
    }

    /// Whether a request's `Host` (or `:authority`) names this origin: the
    /// same host, case-insensitively, and the same port, where an absent port
    /// is the scheme's default.
    pub fn matches_host(&self, host: &str) -> bool {
        let default_port = match self.scheme {
            PublicScheme::Http => "80",
            PublicScheme::Https => "443",
        };
        match (
            split_authority(&self.authority, default_port),
            split_authority(host, default_port),
        ) {
            (Some((ours, our_port)), Some((theirs, their_port))) => {
                ours.eq_ignore_ascii_case(theirs) && our_port == their_port
            }
            _ => false,
        }
    }
}

/// `host[:port]` or `[v6]:port` into host and port (the default when absent).
/// `None` for a malformed authority.
fn split_authority<'a>(authority: &'a str, default_port: &'a str) -> Option<(&'a str, &'a str)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // Brackets hold an IPv6 address and nothing else.
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.contains(['[', ']']) {
            return None;
        }
        (host, port)
    };
    let port = port.unwrap_or(default_port);
    let valid = !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    valid.then_some((host, port))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn origin_scheme_picks_link_scheme() {
        let http = PublicOrigin::parse("http://Example.COM:8080/").unwrap();
        assert_eq!(http.sqrl_origin(), "qrl://example.com:8080");
        assert_eq!(http.http_origin(), "http://example.com:8080");
        assert!(!http.is_secure());
        let https = PublicOrigin::parse("https://login.example.com").unwrap();
        assert_eq!(https.sqrl_origin(), "sqrl://login.example.com");
        assert!(https.is_secure());
        assert!(PublicOrigin::parse("ftp://x").is_err());
        assert!(PublicOrigin::parse("https://a/b").is_err());
        assert!(PublicOrigin::parse("https://u:p@a").is_err());
    }

    #[test]
    fn loopback_and_unspecified_hosts_are_recognised() {
        for loopback in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://localhost:8080",
            "https://LOGIN.localhost",
        ] {
            assert!(
                PublicOrigin::parse(loopback).unwrap().is_loopback(),
                "{loopback}"
            );
        }
        for reachable in [
            "https://login.example.com",
            "http://192.168.1.20:8080",
            "http://localhost.example.com",
            "http://0.0.0.0:8080",
        ] {
            assert!(
                !PublicOrigin::parse(reachable).unwrap().is_loopback(),
                "{reachable}"
            );
        }
        assert!(
            PublicOrigin::parse("http://0.0.0.0:8080")
                .unwrap()
                .is_unspecified()
        );
        assert!(
            PublicOrigin::parse("http://[::]:8080")
                .unwrap()
                .is_unspecified()
        );
        assert!(
            !PublicOrigin::parse("http://127.0.0.1")
                .unwrap()
                .is_unspecified()
        );
    }

    #[test]
    fn warns_when_visitors_cannot_follow_the_links() {
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let loopback = PublicOrigin::parse("http://127.0.0.1:8080").unwrap();
        let warning = loopback.reachability_warning(everywhere).unwrap();
        assert!(warning.contains("loopback"), "{warning}");
        assert!(warning.contains("0.0.0.0:8080"), "{warning}");
        assert_eq!(loopback.reachability_warning(local), None);
        let public = PublicOrigin::parse("https://login.example.com").unwrap();
        assert_eq!(public.reachability_warning(everywhere), None);
        let derived = PublicOrigin::for_addr(everywhere, PublicScheme::Http);
        assert!(
            derived
                .reachability_warning(everywhere)
                .unwrap()
                .contains("unspecified")
        );
    }

    #[test]
    fn host_matches_origin_with_default_ports() {
        let https = PublicOrigin::parse("https://Login.Example.com").unwrap();
        assert!(https.matches_host("login.example.com"));
        assert!(https.matches_host("LOGIN.example.com:443"));
        assert!(!https.matches_host("login.example.com:8443"));
        assert!(!https.matches_host("evil.example"));
        assert!(!https.matches_host("login.example.com.evil.example"));
        assert!(!https.matches_host(""));
        assert!(!https.matches_host("login.example.com:"));
        assert_eq!(https.host(), "login.example.com");
        let http = PublicOrigin::parse("http://127.0.0.1:8080").unwrap();
        assert!(http.matches_host("127.0.0.1:8080"));
        assert!(!http.matches_host("127.0.0.1"));
        assert!(!http.matches_host("localhost:8080"));
        let v6 = PublicOrigin::parse("http://[::1]:8080").unwrap();
        assert!(v6.matches_host("[::1]:8080"));
        assert!(!v6.matches_host("[::1]"));
        assert!(!v6.matches_host("[::1]x8080"));
        assert_eq!(v6.host(), "[::1]");
        assert_eq!(http.host(), "127.0.0.1");
    }

    #[test]
    fn host_matching_never_panics_and_matches_only_the_origin() {
        // Every string of up to four characters from an alphabet of the
        // characters that matter to the parser.
        let alphabet = ['[', ']', ':', 'a', '1', '.', 'é'];
        let origins = [
            PublicOrigin::parse("http://a:1").unwrap(),
            PublicOrigin::parse("https://a").unwrap(),
            PublicOrigin::parse("http://[::1]:1").unwrap(),
        ];
        let mut hosts = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = hosts
                .iter()
                .flat_map(|host| alphabet.iter().map(move |c| format!("{host}{c}")))
                .collect();
            hosts.extend(longer);
        }
        for host in &hosts {
            for origin in &origins {
                let expected: &[&str] = match origin.authority.as_str() {
                    "a:1" => &["a:1"],
                    "a" => &["a"],
                    // "[::1]:1" is longer than four characters.
                    _ => &[],
                };
                assert_eq!(
                    origin.matches_host(host),
                    expected.contains(&host.as_str()),
                    "{host:?} against {origin:?}"
                );
            }
        }
    }
}
