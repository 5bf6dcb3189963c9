//! The cookies the service sets and reads, all through `cookie`'s jar.
//!
//! Each one holds a bearer secret ([`Token`]): the session of a logged-in
//! browser, or the secret (`pag`) of a login page it opened. So each is
//! `HttpOnly` (no script reads it), `Path=/`, `SameSite=Lax`, and over https
//! `Secure` with the `__Host-` prefix, which makes the browser refuse it
//! unless it is `Secure`, for `Path=/` and set by this host itself (no
//! `Domain`): a sibling subdomain can neither plant nor shadow it.
//!
//! Reading goes through the jar's parser: a pair it cannot parse is skipped,
//! and a value that is not a token is no token. Either way the request holds
//! no session or secret, never a made-up one.

use std::time::Duration;

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::app::AppState;
use crate::token::Token;

/// The session cookie's name over plain HTTP.
pub const SESSION: &str = "sqrl_session";

/// The session cookie's name over https (see the module's documentation).
pub const SECURE_SESSION: &str = "__Host-sqrl_session";

/// What every attempt cookie's name starts with, before the attempt's id.
const ATTEMPT_PREFIX: &str = "sqrl_pag_";

/// What the name of every cookie set over https starts with.
const HOST_PREFIX: &str = "__Host-";

/// The most attempt cookies [`SiteCookies::held_attempts`] reads from one request.
const MAX_HELD_ATTEMPTS: usize = 32;

/// The cookies of one origin: their names and attributes depend only on
/// whether it is https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteCookies {
    secure: bool,
}

impl SiteCookies {
    /// The cookies of the service's public origin.
    pub fn of(state: &AppState) -> Self {
        Self {
            secure: state.origin.is_secure(),
        }
    }

    /// The session cookie's name.
    pub fn session_name(self) -> &'static str {
        if self.secure { SECURE_SESSION } else { SESSION }
    }

    /// The name of the cookie holding `attempt`'s secret. One per attempt,
    /// so two tabs each keep their own.
    pub fn attempt_name(self, attempt: &str) -> String {
        format!("{}{ATTEMPT_PREFIX}{attempt}", self.name_prefix())
    }

    fn name_prefix(self) -> &'static str {
        if self.secure { HOST_PREFIX } else { "" }
    }

    /// The cookie that makes a browser the holder of session `token`.
    pub fn session(self, token: &Token, lifetime: Duration) -> Cookie<'static> {
        self.secret(self.session_name().to_owned(), token, lifetime)
    }

    /// The cookie holding the secret of `attempt`, for the browser that
    /// started it.
    pub fn attempt(self, attempt: &str, pag: &Token, lifetime: Duration) -> Cookie<'static> {
        self.secret(self.attempt_name(attempt), pag, lifetime)
    }

    /// The cookie that makes the browser drop cookie `name`: empty, expired,
    /// and with the attributes it was set with (a `__Host-` cookie is only
    /// replaced by one that is `Secure` with `Path=/`).
    pub fn removal(self, name: String) -> Cookie<'static> {
        let mut cookie = self.with_attributes(name, String::new());
        cookie.make_removal();
        cookie
    }

    fn secret(self, name: String, token: &Token, lifetime: Duration) -> Cookie<'static> {
        let mut cookie = self.with_attributes(name, token.encode());
        // Lifetimes come from the configuration; one past what `time` holds
        // is as good as forever.
        cookie.set_max_age(
            cookie::time::Duration::try_from(lifetime).unwrap_or(cookie::time::Duration::MAX),
        );
        cookie
    }

    fn with_attributes(self, name: String, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            // Lax, not Strict: a same-device login comes back through the
            // local SQRL client (a redirect from localhost), which browsers
            // that judge a navigation by its whole redirect chain treat as
            // cross-site and withhold Strict cookies from; the session link
            // is redeemed only with the attempt's cookie, and a person
            // following a link to the site arrives signed in.
            .same_site(SameSite::Lax)
            .build()
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

fn token_in(jar: &CookieJar, name: &str) -> Option<Token> {
    jar.get(name)
        .and_then(|cookie| Token::parse(cookie.value()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::*;

    const PLAIN: SiteCookies = SiteCookies { secure: false };
    const HTTPS: SiteCookies = SiteCookies { secure: true };

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
    fn removals_keep_the_attributes_the_browser_matches_on() {
        let sent = as_sent(&HTTPS.removal(HTTPS.session_name().to_owned()));
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
