//! The site's client endpoint, and the SQRL URLs a login page shows (SPEC 1.1).

use super::conversation::{Conversation, WaitingBrowser};
use super::nut::Nut;
use crate::base64url;
use crate::url::{Scheme, SqrlUrl, UrlError};

/// Where clients POST: scheme, authority (`host[:port]`), path, and the `x=`
/// path extension that makes the path part of the site key (SPEC 1.2 rule 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    authority: String,
    path: String,
    path_extension: Option<usize>,
}

impl Endpoint {
    /// An endpoint at `authority` (`host` or `host:port`, no userinfo) and
    /// `path` (root-anchored, e.g. `/cli.sqrl`). `Scheme::Sqrl` makes clients
    /// use HTTPS, `Scheme::Qrl` plain HTTP.
    pub fn new(scheme: Scheme, authority: &str, path: &str) -> Result<Self, UrlError> {
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(UrlError::InvalidHost);
        }
        if !path.starts_with('/') || path.starts_with("//") || path.contains(['?', '#']) {
            return Err(UrlError::InvalidQuery);
        }
        let endpoint = Self {
            scheme,
            authority: authority.to_owned(),
            path: path.to_owned(),
            path_extension: None,
        };
        // Whatever this builds must be a URL a client accepts.
        SqrlUrl::parse(&endpoint.url(&Nut::parse("probe").map_err(|_| UrlError::MissingNut)?))?;
        Ok(endpoint)
    }

    /// An endpoint from the site's public origin (`https://host[:port]` gives
    /// `sqrl://`, `http://host[:port]` gives `qrl://`) and `path`.
    pub fn from_origin(origin: &str, path: &str) -> Result<Self, UrlError> {
        let origin = origin.trim_end_matches('/');
        if let Some(authority) = origin.strip_prefix("https://") {
            Self::new(Scheme::Sqrl, authority, path)
        } else if let Some(authority) = origin.strip_prefix("http://") {
            Self::new(Scheme::Qrl, authority, path)
        } else {
            Err(UrlError::UnsupportedScheme)
        }
    }

    /// Makes the first `chars` characters of the path (from its leading `/`)
    /// part of the site key, so sites sharing a host get distinct identities
    /// (SPEC 1.2 rule 5). Replies keep `x=` in `qry` (PITFALLS 12).
    pub fn with_path_extension(mut self, chars: usize) -> Self {
        self.path_extension = Some(chars);
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The endpoint path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The SQRL URL for `nut`, as shown in a QR code:
    /// `sqrl://host[:port]/path?[x=N&]nut=...`.
    pub fn url(&self, nut: &Nut) -> String {
        let scheme = self.scheme.as_str();
        match self.path_extension {
            Some(x) => format!("{scheme}://{}{}?x={x}&nut={nut}", self.authority, self.path),
            None => format!("{scheme}://{}{}?nut={nut}", self.authority, self.path),
        }
    }

    /// The same-device link for `nut`: the URL plus `can=b64u(cancel_url)`
    /// (SPEC 1.1: `can=` goes in the link, never in the QR code).
    pub fn link(&self, nut: &Nut, cancel_url: &str) -> String {
        format!("{}&can={}", self.url(nut), base64url::encode(cancel_url))
    }

    /// Starts a login attempt: the URLs a page shows for `nut` and the
    /// conversation record to store under it, which accepts the first request
    /// from either URL.
    pub fn invite(
        &self,
        nut: Nut,
        cancel_url: Option<&str>,
        browser: WaitingBrowser,
        expires_at: u64,
    ) -> Invitation {
        let url = self.url(&nut);
        let link = match cancel_url {
            Some(cancel) => self.link(&nut, cancel),
            None => url.clone(),
        };
        let conversation =
            Conversation::for_urls([url.as_str(), link.as_str()], Some(browser), expires_at);
        Invitation {
            nut,
            url,
            link,
            conversation,
        }
    }
}

/// A started login attempt.
#[derive(Debug, Clone)]
#[must_use = "the conversation must be stored under the nut"]
pub struct Invitation {
    /// The nut: the key to store `conversation` under.
    pub nut: Nut,
    /// The SQRL URL for the QR code (no `can=`).
    pub url: String,
    /// The same-device link (with `can=` when a cancel URL was given).
    pub link: String,
    /// The record to store under `nut`.
    pub conversation: Conversation,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_back_with_the_intended_site_key() {
        let endpoint = Endpoint::from_origin("https://Example.com:8443/", "/jimbo/cli.sqrl")
            .unwrap()
            .with_path_extension(6);
        let nut = Nut::parse("abc").unwrap();
        let url = SqrlUrl::parse(&endpoint.url(&nut)).unwrap();
        assert_eq!(
            url.as_str(),
            "sqrl://Example.com:8443/jimbo/cli.sqrl?x=6&nut=abc"
        );
        assert_eq!(url.site_key_string().domain(), "example.com/jimbo");
        assert_eq!(
            url.post_url(),
            "https://Example.com:8443/jimbo/cli.sqrl?x=6&nut=abc"
        );
        let link = SqrlUrl::parse(&endpoint.link(&nut, "https://example.com/")).unwrap();
        assert_eq!(
            link.cancel_url().unwrap().as_deref(),
            Some("https://example.com/")
        );
    }

    #[test]
    fn qrl_for_plain_http() {
        let endpoint = Endpoint::from_origin("http://127.0.0.1:8080", "/cli.sqrl").unwrap();
        assert_eq!(endpoint.scheme(), Scheme::Qrl);
        assert_eq!(
            endpoint.url(&Nut::parse("n").unwrap()),
            "qrl://127.0.0.1:8080/cli.sqrl?nut=n"
        );
    }

    #[test]
    fn rejects_bad_endpoints() {
        assert_eq!(
            Endpoint::from_origin("ftp://example.com", "/cli.sqrl").err(),
            Some(UrlError::UnsupportedScheme)
        );
        // Credentials in the authority would be shown to the user as the site.
        assert_eq!(
            Endpoint::new(Scheme::Sqrl, "user@example.com", "/cli.sqrl").err(),
            Some(UrlError::InvalidHost)
        );
        // A path that is not absolute, or carries its own query, cannot take
        // the `?nut=` the endpoint appends.
        assert_eq!(
            Endpoint::new(Scheme::Sqrl, "example.com", "cli.sqrl").err(),
            Some(UrlError::InvalidQuery)
        );
        assert_eq!(
            Endpoint::new(Scheme::Sqrl, "example.com", "/cli.sqrl?a=b").err(),
            Some(UrlError::InvalidQuery)
        );
        assert_eq!(
            Endpoint::new(Scheme::Sqrl, "exa mple.com", "/cli.sqrl").err(),
            Some(UrlError::InvalidCharacter)
        );
    }

    #[test]
    fn invitation_accepts_both_url_forms() {
        let endpoint = Endpoint::from_origin("https://example.com", "/cli.sqrl").unwrap();
        let browser = WaitingBrowser {
            ip: "192.0.2.1".parse().unwrap(),
            attempt: "page".into(),
        };
        let invitation = endpoint.invite(Nut::parse("n1").unwrap(), Some("/"), browser, 60);
        assert_ne!(invitation.url, invitation.link);
        assert!(
            invitation
                .conversation
                .echoes(&base64url::encode(&invitation.url))
        );
        assert!(
            invitation
                .conversation
                .echoes(&base64url::encode(&invitation.link))
        );
    }
}
