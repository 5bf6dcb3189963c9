//! The cookies the service sets and reads, all through `cookie`'s jar.
//!
//! Each one holds a bearer secret ([`Token`]) or is bound to one: the session
//! of a logged-in browser, the secret (`pag`) of a login page it opened, and
//! where that login returns to (`rd=`). So each is `HttpOnly` (no script
//! reads it), `SameSite=Lax`, and over https `Secure` with a name prefix the
//! browser enforces:
//!
//! * `__Host-` when the cookie is for the whole host (`Path=/`, no `Domain`):
//!   the browser refuses it unless it is `Secure`, for `Path=/` and set by
//!   this host itself, so a sibling subdomain can neither plant nor shadow it;
//! * `__Secure-` otherwise (a `Domain`, or a path prefix), the most a cookie
//!   with those attributes may carry: it must at least be `Secure`.
//!
//! The session cookie is for `Path=/` even when the service is mounted under
//! a prefix: a reverse proxy asks `/forward-auth` about requests to other
//! apps on the host, and passes on the cookies the browser sent *them*. With
//! `--cookie-domain` it goes to every host of the domain, for the same
//! reason. The login page's cookies stay under the prefix.
//!
//! Reading goes through the jar's parser: a pair it cannot parse is skipped,
//! and a value that is not a token is no token. Either way the request holds
//! no session or secret, never a made-up one.

use std::time::Duration;

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use sqrl_core::base64url;

use crate::app::AppState;
use crate::token::Token;

/// The session cookie's name over plain HTTP.
pub const SESSION: &str = "sqrl_session";

/// The session cookie's name over https, host-only (see the module's
/// documentation).
pub const SECURE_SESSION: &str = "__Host-sqrl_session";

/// The session cookie's name over https with `--cookie-domain`.
pub const DOMAIN_SESSION: &str = "__Secure-sqrl_session";

/// What every attempt cookie's name starts with, before the attempt's id.
const ATTEMPT_PREFIX: &str = "sqrl_pag_";

/// What every return cookie's name starts with, before the attempt's id.
const RETURN_PREFIX: &str = "sqrl_rd_";

/// The name prefix of an https cookie for the whole host.
const HOST_PREFIX: &str = "__Host-";

/// The name prefix of an https cookie with a `Domain` or a narrower `Path`.
const SECURE_PREFIX: &str = "__Secure-";

/// The most attempt cookies [`SiteCookies::held_attempts`] reads from one request.
const MAX_HELD_ATTEMPTS: usize = 32;

/// The cookies of one site: their names and attributes depend on whether it
/// is https, on the path it is mounted under, and on the session's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteCookies<'a> {
    secure: bool,
    /// The path prefix (empty, or `/auth`).
    prefix: &'a str,
    /// The session cookie's `Domain`, if any.
    domain: Option<&'a str>,
}

impl<'a> SiteCookies<'a> {
    /// The cookies of the service's public origin.
    pub fn of(state: &'a AppState) -> Self {
        Self {
            secure: state.origin.is_secure(),
            prefix: &state.config.path_prefix,
            domain: state.config.cookie_domain.as_deref(),
        }
    }

    /// The session cookie's name.
    pub fn session_name(self) -> &'static str {
        match (self.secure, self.domain) {
            (false, _) => SESSION,
            (true, None) => SECURE_SESSION,
            (true, Some(_)) => DOMAIN_SESSION,
        }
    }

    /// The name of the cookie holding `attempt`'s secret. One per attempt,
    /// so two tabs each keep their own.
    pub fn attempt_name(self, attempt: &str) -> String {
        format!("{}{ATTEMPT_PREFIX}{attempt}", self.page_name_prefix())
    }

    /// The name of the cookie holding where `attempt` returns to.
    pub fn return_name(self, attempt: &str) -> String {
        format!("{}{RETURN_PREFIX}{attempt}", self.page_name_prefix())
    }

    /// The name prefix of the login page's cookies.
    fn page_name_prefix(self) -> &'static str {
        match (self.secure, self.prefix.is_empty()) {
            (false, _) => "",
            (true, true) => HOST_PREFIX,
            (true, false) => SECURE_PREFIX,
        }
    }

    /// The cookie that makes a browser the holder of session `token`.
    pub fn session(self, token: &Token, lifetime: Duration) -> Cookie<'static> {
        let mut cookie = self.session_attributes(token.encode());
        set_lifetime(&mut cookie, lifetime);
        cookie
    }

    /// The cookie that makes the browser drop its session cookie.
    pub fn session_removal(self) -> Cookie<'static> {
        let mut cookie = self.session_attributes(String::new());
        cookie.make_removal();
        cookie
    }

    fn session_attributes(self, value: String) -> Cookie<'static> {
        let mut cookie = with_attributes(self.session_name().to_owned(), value, "/", self.secure);
        if let Some(domain) = self.domain {
            cookie.set_domain(domain.to_owned());
        }
        cookie
    }

    /// The cookie holding the secret of `attempt`, for the browser that
    /// started it.
    pub fn attempt(self, attempt: &str, pag: &Token, lifetime: Duration) -> Cookie<'static> {
        let mut cookie = self.page_cookie(self.attempt_name(attempt), pag.encode());
        set_lifetime(&mut cookie, lifetime);
        cookie
    }

    /// The cookie holding where the login of `attempt` returns the browser
    /// to, signed with the attempt's secret (HMAC-SHA-256 keyed with `pag`):
    /// whoever can plant a cookie but does not hold the secret cannot choose
    /// the destination, and the cookie is of no use for another attempt.
    pub fn return_to(
        self,
        attempt: &str,
        pag: &Token,
        url: &str,
        lifetime: Duration,
    ) -> Cookie<'static> {
        let tag = pag.sign(&return_message(attempt, url));
        let value = format!("{}.{}", base64url::encode(url), base64url::encode(tag));
        let mut cookie = self.page_cookie(self.return_name(attempt), value);
        set_lifetime(&mut cookie, lifetime);
        cookie
    }

    /// The return URL the request's cookie holds for `attempt`, if its
    /// signature is good for the attempt's secret `pag`.
    pub fn held_return(self, jar: &CookieJar, attempt: &str, pag: &Token) -> Option<String> {
        let value = jar.get(&self.return_name(attempt))?.value().to_owned();
        let (url, tag) = value.split_once('.')?;
        let url = String::from_utf8(base64url::decode(url).ok()?).ok()?;
        let tag = base64url::decode(tag).ok()?;
        pag.verify(&return_message(attempt, &url), &tag)
            .then_some(url)
    }

    /// The cookie that makes the browser drop page cookie `name`: empty,
    /// expired, and with the attributes it was set with (a `__Host-` cookie
    /// is only replaced by one that is `Secure` with `Path=/`).
    pub fn removal(self, name: String) -> Cookie<'static> {
        let mut cookie = self.page_cookie(name, String::new());
        cookie.make_removal();
        cookie
    }

    /// A cookie of the login page: host-only, under the path prefix.
    fn page_cookie(self, name: String, value: String) -> Cookie<'static> {
        let path = if self.prefix.is_empty() {
            "/".to_owned()
        } else {
            format!("{}/", self.prefix)
        };
        with_attributes(name, value, &path, self.secure)
    }

    /// The session token the request's cookie holds, if it holds one.
    pub fn session_token(self, jar: &CookieJar) -> Option<Token> {
        token_in(jar, self.session_name())
    }

    /// The secret of `attempt` the request's cookie holds, if it holds one.
    pub fn attempt_secret(self, jar: &CookieJar, attempt: &str) -> Option<Token> {
        token_in(jar, &self.attempt_name(attempt))
    }

    /// Every login attempt whose secret the request holds (one cookie per
    /// page the browser opened), at most 32: a browser holds one per open
    /// login tab, and more is not a browser.
    pub fn held_attempts(self, jar: &CookieJar) -> Vec<(String, Token)> {
        let prefix = self.attempt_name("");
        jar.iter()
            .filter_map(|cookie| {
                let attempt = cookie.name().strip_prefix(&prefix)?;
                let token = Token::parse(cookie.value())?;
                Some((attempt.to_owned(), token))
            })
            .take(MAX_HELD_ATTEMPTS)
            .collect()
    }
}

/// What the return cookie's signature covers: the attempt and the URL.
fn return_message(attempt: &str, url: &str) -> Vec<u8> {
    [attempt.as_bytes(), &[0], url.as_bytes()].concat()
}

fn set_lifetime(cookie: &mut Cookie<'static>, lifetime: Duration) {
    // Lifetimes come from the configuration; one past what `time` holds
    // is as good as forever.
    cookie.set_max_age(
        cookie::time::Duration::try_from(lifetime).unwrap_or(cookie::time::Duration::MAX),
    );
}

fn with_attributes(name: String, value: String, path: &str, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path.to_owned())
        .http_only(true)
        .secure(secure)
        // Lax, not Strict: a same-device login comes back through the
        // local SQRL client (a redirect from localhost), which browsers
        // that judge a navigation by its whole redirect chain treat as
        // cross-site and withhold Strict cookies from; the session link
        // is redeemed only with the attempt's cookie, and a person
        // following a link to the site arrives signed in.
        .same_site(SameSite::Lax)
        .build()
}

fn token_in(jar: &CookieJar, name: &str) -> Option<Token> {
    jar.get(name)
        .and_then(|cookie| Token::parse(cookie.value()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::*;

    const PLAIN: SiteCookies = SiteCookies {
        secure: false,
        prefix: "",
        domain: None,
    };
    const HTTPS: SiteCookies = SiteCookies {
        secure: true,
        prefix: "",
        domain: None,
    };
    /// Mounted under `/auth`, sessions for the whole of `example.com`.
    const MOUNTED: SiteCookies = SiteCookies {
        secure: true,
        prefix: "/auth",
        domain: Some("example.com"),
    };

    fn jar(cookie_header: &[u8]) -> CookieJar {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes(cookie_header).unwrap(),
        );
        CookieJar::from_headers(&headers)
    }

    /// A cookie as the browser reads it from `Set-Cookie`.
    fn as_sent(cookie: &Cookie<'_>) -> Cookie<'static> {
        Cookie::parse(cookie.encoded().to_string()).unwrap()
    }

    #[test]
    fn secrets_are_http_only_lax_for_the_whole_site() {
        let token = Token::generate(&mut rand_core::OsRng);
        let lifetime = Duration::from_secs(600);
        for site in [PLAIN, HTTPS] {
            for cookie in [
                site.session(&token, lifetime),
                site.attempt("abc", &token, lifetime),
            ] {
                let sent = as_sent(&cookie);
                assert_eq!(sent.value(), token.encode());
                assert_eq!(sent.http_only(), Some(true));
                assert_eq!(sent.same_site(), Some(SameSite::Lax));
                assert_eq!(sent.path(), Some("/"));
                assert_eq!(sent.domain(), None);
                assert_eq!(sent.max_age(), Some(cookie::time::Duration::seconds(600)));
                assert_eq!(sent.secure().unwrap_or(false), site == HTTPS);
                assert_eq!(sent.name().starts_with(HOST_PREFIX), site == HTTPS);
            }
        }
    }

    #[test]
    fn a_mounted_site_keeps_page_cookies_under_its_prefix_and_shares_the_session() {
        let token = Token::generate(&mut rand_core::OsRng);
        let lifetime = Duration::from_secs(600);
        let session = as_sent(&MOUNTED.session(&token, lifetime));
        // A Domain cookie cannot be __Host- (the browser would refuse it).
        assert_eq!(session.name(), DOMAIN_SESSION);
        assert_eq!(session.domain(), Some("example.com"));
        assert_eq!(session.path(), Some("/"));
        assert_eq!(session.secure(), Some(true));
        for cookie in [
            MOUNTED.attempt("abc", &token, lifetime),
            MOUNTED.return_to("abc", &token, "https://a.example.com/", lifetime),
            MOUNTED.removal(MOUNTED.attempt_name("abc")),
        ] {
            let sent = as_sent(&cookie);
            assert!(sent.name().starts_with(SECURE_PREFIX), "{sent}");
            assert_eq!(sent.path(), Some("/auth/"));
            assert_eq!(sent.domain(), None);
            assert_eq!(sent.secure(), Some(true));
            assert_eq!(sent.http_only(), Some(true));
        }
        let removal = as_sent(&MOUNTED.session_removal());
        assert_eq!(removal.name(), DOMAIN_SESSION);
        assert_eq!(removal.domain(), Some("example.com"));
        assert_eq!(removal.path(), Some("/"));
        assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    }

    #[test]
    fn a_return_url_is_read_back_only_with_its_attempt_and_secret() {
        let pag = Token::generate(&mut rand_core::OsRng);
        let other = Token::generate(&mut rand_core::OsRng);
        let url = "https://app.example.com/x?y=1";
        let cookie = PLAIN.return_to("one", &pag, url, Duration::from_secs(60));
        let header = format!("{}={}", cookie.name(), cookie.value());
        let held = jar(header.as_bytes());
        assert_eq!(PLAIN.held_return(&held, "one", &pag).as_deref(), Some(url));
        assert_eq!(PLAIN.held_return(&held, "one", &other), None);
        // Copied to another attempt's name, the signature does not hold.
        let moved = format!("{}={}", PLAIN.return_name("two"), cookie.value());
        assert_eq!(PLAIN.held_return(&jar(moved.as_bytes()), "two", &pag), None);
        // Another URL under the same signature does not either.
        let (_, tag) = cookie.value().split_once('.').unwrap();
        let forged = format!(
            "{}={}.{tag}",
            cookie.name(),
            base64url::encode("https://evil.example/")
        );
        assert_eq!(
            PLAIN.held_return(&jar(forged.as_bytes()), "one", &pag),
            None
        );
        for garbage in ["", ".", "x.y", "a"] {
            let header = format!("{}={garbage}", cookie.name());
            assert_eq!(
                PLAIN.held_return(&jar(header.as_bytes()), "one", &pag),
                None
            );
        }
    }

    #[test]
    fn removals_keep_the_attributes_the_browser_matches_on() {
        let sent = as_sent(&HTTPS.session_removal());
        assert_eq!(sent.name(), SECURE_SESSION);
        assert_eq!(sent.value(), "");
        assert_eq!(sent.max_age(), Some(cookie::time::Duration::ZERO));
        assert_eq!(sent.secure(), Some(true));
        assert_eq!(sent.path(), Some("/"));
    }

    #[test]
    fn a_malformed_or_foreign_cookie_is_no_token() {
        let token = Token::generate(&mut rand_core::OsRng).encode();
        let cases: [&[u8]; 5] = [
            b"sqrl_session=not-a-token",
            b"sqrl_session=",
            b"sqrl_session",
            b"=; ;;",
            b"sqrl_session=\xff\xfe",
        ];
        for case in cases {
            assert!(PLAIN.session_token(&jar(case)).is_none(), "{case:?}");
        }
        // The session of the other scheme's name is not this one's.
        let other_scheme = format!("{SECURE_SESSION}={token}");
        assert!(PLAIN.session_token(&jar(other_scheme.as_bytes())).is_none());
        // Garbage around a good pair does not hide it.
        let mixed = format!("junk; =x; {SESSION}={token}; other=1");
        let found = PLAIN.session_token(&jar(mixed.as_bytes())).unwrap();
        assert_eq!(found.encode(), token);
    }

    #[test]
    fn held_attempts_are_the_prefixed_cookies_with_tokens() {
        let token = Token::generate(&mut rand_core::OsRng).encode();
        let header = format!(
            "sqrl_pag_one={token}; sqrl_pag_two=garbage; __Host-sqrl_pag_three={token}; {SESSION}={token}"
        );
        let held = PLAIN.held_attempts(&jar(header.as_bytes()));
        let names: Vec<&str> = held.iter().map(|(attempt, _)| attempt.as_str()).collect();
        assert_eq!(names, ["one"]);

        let many: Vec<String> = (0..40).map(|i| format!("sqrl_pag_{i}={token}")).collect();
        let held = PLAIN.held_attempts(&jar(many.join("; ").as_bytes()));
        assert_eq!(held.len(), MAX_HELD_ATTEMPTS);
    }
}
