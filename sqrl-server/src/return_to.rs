//! Where a login sends the browser back to (`rd=`): the page of a protected
//! app the reverse proxy turned the visitor away from.
//!
//! A return URL is a redirect target the visitor's request names, so it is an
//! open redirect unless it is checked: it must be an absolute `http(s)` URL,
//! without user information, whose host is the service's own or one the
//! operator allowed (`--allowed-return-domains`). The check runs when the
//! login page is opened (a bad one is refused with 400) and again when the
//! login completes, against the configuration of that moment.
//!
//! URLs are read by the `url` crate, which follows the WHATWG URL standard
//! browsers use, so the host checked is the host the browser will go to.
//! Text a browser would read differently from a lenient parser is refused
//! before parsing: control characters (a browser drops tabs and line breaks
//! inside URLs, a header splitter would not), spaces and backslashes (which
//! browsers take for `/` in `http(s)` URLs).

use url::{Host, Url};

/// Why a return URL was refused. The message is shown to the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReturnRefused {
    /// Not an absolute `http://` or `https://` URL.
    NotAbsolute,
    /// Control characters, spaces or backslashes.
    BadCharacters,
    /// `user:password@` before the host.
    UserInfo,
    /// A host that is neither the service's nor allowed.
    ForeignHost,
    /// Longer than any page address needs to be.
    TooLong,
}

impl ReturnRefused {
    /// What the visitor is told.
    pub fn message(self) -> &'static str {
        match self {
            ReturnRefused::NotAbsolute => "rd= must be an absolute http:// or https:// URL",
            ReturnRefused::BadCharacters => "rd= holds characters a URL may not",
            ReturnRefused::UserInfo => "rd= may not carry a user name or password",
            ReturnRefused::ForeignHost => "rd= names a host this service does not return to",
            ReturnRefused::TooLong => "rd= is too long",
        }
    }
}

impl std::fmt::Display for ReturnRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ReturnRefused {}

/// The longest return URL accepted: it travels in a cookie, and browsers
/// keep cookies of up to 4096 bytes.
pub const MAX_RETURN_URL: usize = 2048;

/// The hosts, besides the service's own, a login may return to: exact hosts,
/// and domains any subdomain of which is allowed (written `.example.com`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnDomains {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl ReturnDomains {
    /// Reads the operator's list (`app.example.com`, `.example.com`),
    /// lower-cased; an entry that is not a host name is refused.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut domains = Self::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let (suffix, name) = match entry.strip_prefix('.') {
                Some(name) => (true, name),
                None => (false, entry),
            };
            let valid = !name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(format!("{entry:?} is not a host name or .domain"));
            }
            let name = name.to_ascii_lowercase();
            if suffix {
                domains.suffixes.push(name);
            } else {
                domains.exact.push(name);
            }
        }
        Ok(domains)
    }

    /// Whether `host` (lower-case, as the URL parser gives it) is allowed.
    fn allows(&self, host: &str) -> bool {
        self.exact.iter().any(|exact| exact == host)
            || self.suffixes.iter().any(|domain| {
                host.strip_suffix(domain.as_str())
                    .and_then(|sub| sub.strip_suffix('.'))
                    .is_some_and(|sub| !sub.is_empty())
            })
    }
}

/// A return URL that passed the check: absolute, `http(s)`, no user
/// information, an allowed host. Its text is the parser's serialization
/// (what the browser will be sent to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(String);

impl ReturnTo {
    /// Checks `text` against the service's own host (`own_host`, without
    /// port) and the operator's allow-list.
    pub fn parse(
        text: &str,
        own_host: &str,
        allowed: &ReturnDomains,
    ) -> Result<Self, ReturnRefused> {
        if text.len() > MAX_RETURN_URL {
            return Err(ReturnRefused::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(ReturnRefused::BadCharacters);
        }
        // Only `scheme://` here: `https:evil.com` is a valid URL the parser
        // reads as `https://evil.com/`, but no page address is written so.
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(ReturnRefused::NotAbsolute);
        }
        let url = Url::parse(text).map_err(|_| ReturnRefused::NotAbsolute)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ReturnRefused::NotAbsolute);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ReturnRefused::UserInfo);
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(ReturnRefused::NotAbsolute),
        };
        if !host.eq_ignore_ascii_case(own_host) && !allowed.allows(&host) {
            return Err(ReturnRefused::ForeignHost);
        }
        let serialized = String::from(url);
        if serialized.len() > MAX_RETURN_URL {
            return Err(ReturnRefused::TooLong);
        }
        Ok(Self(serialized))
    }

    /// Checks `text` against the service `state` runs.
    pub fn for_service(text: &str, state: &crate::app::AppState) -> Result<Self, ReturnRefused> {
        Self::parse(text, state.origin.host(), &state.config.return_domains)
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn allowed() -> ReturnDomains {
        ReturnDomains::parse(["app.example.org", ".example.com"]).unwrap()
    }

    fn check(text: &str) -> Result<String, ReturnRefused> {
        ReturnTo::parse(text, "login.example.net", &allowed()).map(|r| r.0)
    }

    #[test]
    fn accepts_the_own_host_and_the_allowed_ones() {
        for (given, sent) in [
            (
                "https://login.example.net/account",
                "https://login.example.net/account",
            ),
            (
                "HTTP://Login.Example.NET:8080/x?y=1#z",
                "http://login.example.net:8080/x?y=1#z",
            ),
            ("https://app.example.org/", "https://app.example.org/"),
            (
                "https://wiki.example.com/page?q=%2F",
                "https://wiki.example.com/page?q=%2F",
            ),
            ("https://a.b.example.com", "https://a.b.example.com/"),
        ] {
            assert_eq!(check(given).as_deref(), Ok(sent), "{given}");
        }
    }

    #[test]
    fn refuses_everything_that_could_lead_elsewhere() {
        use ReturnRefused::*;
        for (given, why) in [
            ("//evil.com", NotAbsolute),
            ("/relative", NotAbsolute),
            ("https:evil.com", NotAbsolute),
            ("https:/evil.com", NotAbsolute),
            ("javascript:alert(1)", NotAbsolute),
            ("JavaScript://app.example.org/%0aalert(1)", NotAbsolute),
            ("data:text/html,x", NotAbsolute),
            ("ftp://app.example.org/", NotAbsolute),
            ("https://evil.com", ForeignHost),
            ("https://example.com", ForeignHost),
            ("https://example.com.evil.com/", ForeignHost),
            ("https://evilexample.com/", ForeignHost),
            ("https://login.example.net.evil.com/", ForeignHost),
            ("https://app.example.org.evil.com/", ForeignHost),
            ("https://example.com@evil.com/", UserInfo),
            ("https://login.example.net@evil.com/", UserInfo),
            ("https://user:pw@login.example.net/", UserInfo),
            ("https://login.example.net\\@evil.com/", BadCharacters),
            ("https:\\\\evil.com", BadCharacters),
            (
                "https://login.example.net/\r\nSet-Cookie:x=1",
                BadCharacters,
            ),
            ("https://login.exa\nmple.net/", BadCharacters),
            ("https://evil.com\t/", BadCharacters),
            ("https://login.example.net/ x", BadCharacters),
            ("", NotAbsolute),
        ] {
            assert_eq!(check(given), Err(why), "{given:?}");
        }
        let long = format!("https://login.example.net/{}", "a".repeat(MAX_RETURN_URL));
        assert_eq!(check(&long), Err(TooLong));
    }

    #[test]
    fn the_allow_list_is_checked_when_read() {
        assert!(ReturnDomains::parse(["*.example.com"]).is_err());
        assert!(ReturnDomains::parse(["."]).is_err());
        assert!(ReturnDomains::parse(["a..b"]).is_err());
        assert!(ReturnDomains::parse(["https://a.com"]).is_err());
        let none = ReturnDomains::parse(["", " "]).unwrap();
        assert_eq!(none, ReturnDomains::default());
        // Without an allow-list only the own host is accepted.
        assert!(ReturnTo::parse("http://127.0.0.1:8080/", "127.0.0.1", &none).is_ok());
        assert!(ReturnTo::parse("http://127.0.0.2/", "127.0.0.1", &none).is_err());
    }
}
