//! The site under test: where each endpoint is, and the SQRL URL a phone
//! would scan for a nut.

use url::Url;

/// Why a `--url` (or SQRL link option) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// Not a URL at all.
    #[error("--url {0:?} is not a URL")]
    NotUrl(String),
    /// `https://` or another scheme: the bench speaks plain HTTP only.
    #[error("--url must be http:// (the bench speaks plain HTTP only), got {0:?}")]
    Scheme(String),
    /// No host, or a query or fragment where only an origin and path belong.
    #[error("--url must be http://HOST[:PORT][/PATH] with no query or fragment")]
    Shape,
    /// A path option that is not root-anchored.
    #[error("{0} must start with '/'")]
    Path(&'static str),
}

/// The scheme of the SQRL links the bench builds for `/nut.sqrl` nuts
/// (SPEC 1.1). Only the link changes: requests always go to `--url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkScheme {
    /// `qrl://`: what a plain-HTTP site hands out (our server over http://).
    Qrl,
    /// `sqrl://`: what a site behind TLS hands out (GRC's SSP servers always do).
    Sqrl,
}

impl LinkScheme {
    fn as_str(self) -> &'static str {
        match self {
            LinkScheme::Qrl => "qrl",
            LinkScheme::Sqrl => "sqrl",
        }
    }
}

/// The site: an HTTP origin with an optional path prefix under which the
/// SSP endpoints live (GRC's servers may run under a root path).
#[derive(Debug, Clone)]
pub struct Site {
    /// `http://host:port`, no trailing slash.
    origin: String,
    /// The path prefix, no trailing slash (empty for the root).
    prefix: String,
    /// `host[:port]` put into SQRL links.
    authority: String,
    cli_path: String,
    link_scheme: LinkScheme,
    path_extension: Option<usize>,
}

impl Site {
    /// A site at `url` (`http://host[:port][/prefix]`).
    pub fn parse(url: &str) -> Result<Self, SiteError> {
        let parsed = Url::parse(url).map_err(|_| SiteError::NotUrl(url.to_owned()))?;
        if parsed.scheme() != "http" {
            return Err(SiteError::Scheme(url.to_owned()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(SiteError::Shape);
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(SiteError::Shape),
        };
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Ok(Self {
            origin: format!("http://{authority}"),
            prefix: parsed.path().trim_end_matches('/').to_owned(),
            authority,
            cli_path: "/cli.sqrl".to_owned(),
            link_scheme: LinkScheme::Qrl,
            path_extension: None,
        })
    }

    /// The SQRL client endpoint (`--cli-path`, under the prefix).
    pub fn with_cli_path(mut self, path: &str) -> Result<Self, SiteError> {
        if !path.starts_with('/') {
            return Err(SiteError::Path("--cli-path"));
        }
        self.cli_path = path.to_owned();
        Ok(self)
    }

    /// The scheme of built SQRL links.
    pub fn with_link_scheme(mut self, scheme: LinkScheme) -> Self {
        self.link_scheme = scheme;
        self
    }

    /// The `host[:port]` of built SQRL links, when the site names itself
    /// differently from `--url` (it is part of the site key, SPEC 1.2, and a
    /// server may check the first `server=` against its own URL).
    pub fn with_link_authority(mut self, authority: &str) -> Result<Self, SiteError> {
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(SiteError::Shape);
        }
        self.authority = authority.to_owned();
        Ok(self)
    }

    /// Adds `x=N` to built SQRL links (SPEC 1.1), for sites whose identities
    /// are per path.
    pub fn with_path_extension(mut self, chars: Option<usize>) -> Self {
        self.path_extension = chars;
        self
    }

    /// `http://host:port`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The absolute URL of `path` (root-anchored) under the prefix.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin, self.prefix)
    }

    /// The SQRL URL for a nut minted by `/nut.sqrl`, as the site's QR code
    /// would show it: `qrl://host:port/prefix/cli.sqrl?[x=N&]nut=NUT` (no
    /// `can=`: that belongs only in a same-device link, SPEC 1.1).
    pub fn sqrl_url(&self, nut: &str) -> String {
        let scheme = self.link_scheme.as_str();
        let extension = self
            .path_extension
            .map(|x| format!("x={x}&"))
            .unwrap_or_default();
        format!(
            "{scheme}://{}{}{}?{extension}nut={nut}",
            self.authority, self.prefix, self.cli_path
        )
    }

    /// Where to send a request the client state machine addressed to `url`:
    /// the same path and query at `--url`'s origin. The state machine turns
    /// `sqrl://` into `https://`, and a link may name another host than the
    /// one under test; the bench always talks plain HTTP to `--url`.
    pub fn transport_url(&self, url: &str) -> String {
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("/", |start| &after_scheme[start..]);
        format!("{}{path}", self.origin)
    }

    /// Resolves a URL the site handed the browser (absolute, or a path).
    pub fn resolve(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            format!("{}{}/{url}", self.origin, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_links_and_endpoints_under_a_prefix() {
        let site = Site::parse("http://127.0.0.1:8080/sqrl/")
            .unwrap()
            .with_path_extension(Some(5));
        assert_eq!(
            site.endpoint("/nut.sqrl"),
            "http://127.0.0.1:8080/sqrl/nut.sqrl"
        );
        assert_eq!(
            site.sqrl_url("abc"),
            "qrl://127.0.0.1:8080/sqrl/cli.sqrl?x=5&nut=abc"
        );
    }

    #[test]
    fn sends_every_request_to_the_site_under_test() {
        let site = Site::parse("http://localhost:9000").unwrap();
        assert_eq!(
            site.transport_url("https://example.com/cli.sqrl?nut=x"),
            "http://localhost:9000/cli.sqrl?nut=x"
        );
        assert_eq!(
            site.resolve("/login/collect?nut=1"),
            "http://localhost:9000/login/collect?nut=1"
        );
        assert_eq!(site.resolve("https://a.example/b"), "https://a.example/b");
    }

    #[test]
    fn refuses_what_it_cannot_drive() {
        assert!(matches!(
            Site::parse("https://example.com"),
            Err(SiteError::Scheme(_))
        ));
        assert!(Site::parse("not a url").is_err());
        assert!(Site::parse("http://example.com/?a=b").is_err());
        let site = Site::parse("http://[::1]:1234").unwrap();
        assert_eq!(site.sqrl_url("n"), "qrl://[::1]:1234/cli.sqrl?nut=n");
        assert!(site.with_cli_path("cli.sqrl").is_err());
    }
}
