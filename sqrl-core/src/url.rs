//! `sqrl://` and `qrl://` URLs (SPEC 1): the address to POST to, and the site key
//! string that selects the per-site key.
//!
//! Parsing is done here by hand, not with a general URL library, because SQRL needs
//! the exact original bytes: the whole URL is signed as the first `server=` value,
//! the host's case and the path's case are treated differently, and a general
//! parser would normalise both.

use crate::base64url;

/// Longest URL accepted. Real SQRL URLs are around 100 characters; the bound keeps
/// hostile input cheap to reject.
pub const MAX_URL_LEN: usize = 4096;

/// Why a SQRL URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("URL longer than {MAX_URL_LEN} characters")]
    TooLong,
    /// The scheme is neither `sqrl://` nor `qrl://`.
    #[error("not a sqrl:// or qrl:// URL")]
    UnsupportedScheme,
    /// Whitespace, a control character or a non-ASCII character appears.
    #[error("URL contains a character that is not printable ASCII")]
    InvalidCharacter,
    /// The host is missing or malformed.
    #[error("URL has no valid host")]
    InvalidHost,
    /// The port is not a number in 1..=65535.
    #[error("URL has an invalid port")]
    InvalidPort,
    /// No `nut=` parameter, or it is empty or malformed.
    #[error("URL has no valid nut= parameter")]
    MissingNut,
    /// `x=` is not a plain decimal number.
    #[error("URL has an invalid x= path extension")]
    InvalidPathExtension,
    /// A SQRL parameter (`nut`, `x`, `can`) appears twice.
    #[error("URL repeats the {0}= parameter")]
    DuplicateParameter(&'static str),
    /// `can=` does not decode to a URL.
    #[error("URL has an invalid can= parameter")]
    InvalidCancelUrl,
    /// A `qry=` from a server reply is not a root-anchored path.
    #[error("qry is not a root-anchored path")]
    InvalidQuery,
}

/// The transport a SQRL URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sqrl://`: HTTPS, default port 443.
    Sqrl,
    /// `qrl://`: plain HTTP, default port 80.
    Qrl,
}

impl Scheme {
    /// The HTTP scheme the client POSTs with.
    pub fn http_scheme(self) -> &'static str {
        match self {
            Scheme::Sqrl => "https",
            Scheme::Qrl => "http",
        }
    }

    /// The scheme as written in a SQRL URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sqrl => "sqrl",
            Scheme::Qrl => "qrl",
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Sqrl => 443,
            Scheme::Qrl => 80,
        }
    }
}

/// The bytes HMACed with the IMK to make a per-site key: the lower-cased host, the
/// `x=` path extension, and optionally `0x00` followed by an Alt-ID (SPEC 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteKeyString {
    domain: String,
    alt_id: Option<String>,
}

impl SiteKeyString {
    /// A site key string from its domain part (host plus any path extension), taken
    /// as given. Use [`SqrlUrl::site_key_string`] to derive it from a URL.
    pub fn new(domain: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            alt_id: None,
        }
    }

    /// Selects an Alt-ID: a different identity at the same site. An empty Alt-ID is
    /// the same as none.
    pub fn with_alt_id(mut self, alt_id: &str) -> Self {
        self.alt_id = (!alt_id.is_empty()).then(|| alt_id.to_owned());
        self
    }

    /// The domain part: host plus path extension, as a user should see it.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The Alt-ID, if any.
    pub fn alt_id(&self) -> Option<&str> {
        self.alt_id.as_deref()
    }

    /// The exact bytes HMACed: `domain` or `domain || 0x00 || alt_id`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.domain.as_bytes().to_vec();
        if let Some(alt_id) = &self.alt_id {
            bytes.push(0);
            bytes.extend_from_slice(alt_id.as_bytes());
        }
        bytes
    }
}

impl core::fmt::Display for SiteKeyString {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.domain)?;
        if let Some(alt_id) = &self.alt_id {
            write!(f, " (Alt-ID {alt_id})")?;
        }
        Ok(())
    }
}

/// A parsed SQRL URL. The original text is kept byte for byte: it is what the
/// client signs as the first `server=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqrlUrl {
    original: String,
    scheme: Scheme,
    host: String,
    port: Option<u16>,
    path_and_query: String,
    nut: String,
    can: Option<String>,
    site_key: SiteKeyString,
}

impl SqrlUrl {
    /// Parses and validates a SQRL URL.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        if text.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::InvalidCharacter);
        }
        let (scheme, rest) = split_scheme(text)?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after_authority) = rest.split_at(authority_end);
        // Everything up to the last '@' is userinfo (SPEC 1.2 rule 2).
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = split_host_port(host_port)?;

        let without_fragment = after_authority
            .split_once('#')
            .map_or(after_authority, |(before, _)| before);
        let (path, query) = match without_fragment.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (without_fragment, None),
        };

        let params = QueryParams::parse(query.unwrap_or(""))?;
        let nut = params.nut.ok_or(UrlError::MissingNut)?;
        let extension_len = params.x.unwrap_or(0).min(path.len());
        let mut domain = host.to_ascii_lowercase();
        domain.push_str(&path[..extension_len]);

        let path = if path.is_empty() { "/" } else { path };
        let path_and_query = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        Ok(Self {
            original: text.to_owned(),
            scheme,
            host: host.to_owned(),
            port,
            path_and_query,
            nut: nut.to_owned(),
            can: params.can.map(str::to_owned),
            site_key: SiteKeyString::new(domain),
        })
    }

    /// The URL exactly as received.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// `sqrl` or `qrl`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as written (case kept, for the connection).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if the URL names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The nut this URL carries.
    pub fn nut(&self) -> &str {
        &self.nut
    }

    /// The raw `can=` value (base64url of the cancel URL), if present.
    pub fn can(&self) -> Option<&str> {
        self.can.as_deref()
    }

    /// The decoded cancel URL of a same-device login, if present.
    pub fn cancel_url(&self) -> Result<Option<String>, UrlError> {
        self.can
            .as_deref()
            .map(|can| {
                let bytes = base64url::decode(can).map_err(|_| UrlError::InvalidCancelUrl)?;
                let url = String::from_utf8(bytes).map_err(|_| UrlError::InvalidCancelUrl)?;
                if url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/')
                {
                    Ok(url)
                } else {
                    Err(UrlError::InvalidCancelUrl)
                }
            })
            .transpose()
    }

    /// The site key string (no Alt-ID).
    pub fn site_key_string(&self) -> &SiteKeyString {
        &self.site_key
    }

    /// `https://host[:port]` (or `http://` for `qrl://`): userinfo dropped,
    /// explicit port kept.
    pub fn origin(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme.http_scheme(), self.host),
            None => format!("{}://{}", self.scheme.http_scheme(), self.host),
        }
    }

    /// Where the first request is POSTed: the same URL with the scheme swapped.
    pub fn post_url(&self) -> String {
        format!("{}{}", self.origin(), self.path_and_query)
    }

    /// Where a later request is POSTed: this URL's origin and a server's `qry=`.
    /// The site key never changes with `qry` (PITFALLS 12).
    pub fn post_url_for_query(&self, qry: &str) -> Result<String, UrlError> {
        if !qry.starts_with('/')
            || qry.starts_with("//")
            || !qry.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(UrlError::InvalidQuery);
        }
        Ok(format!("{}{qry}", self.origin()))
    }
}

impl core::fmt::Display for SqrlUrl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.original)
    }
}

impl core::str::FromStr for SqrlUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn split_scheme(text: &str) -> Result<(Scheme, &str), UrlError> {
    let (scheme, rest) = text.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("sqrl") {
        Scheme::Sqrl
    } else if scheme.eq_ignore_ascii_case("qrl") {
        Scheme::Qrl
    } else {
        return Err(UrlError::UnsupportedScheme);
    };
    Ok((scheme, rest))
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<u16>), UrlError> {
    let (host, port) = if host_port.starts_with('[') {
        // IPv6 literal: `[addr]` or `[addr]:port`.
        let close = host_port.find(']').ok_or(UrlError::InvalidHost)?;
        let (host, rest) = host_port.split_at(close + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(UrlError::InvalidHost);
        }
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or(UrlError::InvalidPort)?),
            ),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if !host.starts_with('[') && !is_valid_hostname(host) {
        return Err(UrlError::InvalidHost);
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn is_valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            // A single trailing dot (fully qualified name) is allowed.
            (label.is_empty() && i > 0 && host.ends_with('.') && host.len() > 1)
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

fn parse_port(text: &str) -> Result<u16, UrlError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// The query parameters SQRL itself reads; all others are carried along untouched.
struct QueryParams<'a> {
    nut: Option<&'a str>,
    x: Option<usize>,
    can: Option<&'a str>,
}

impl<'a> QueryParams<'a> {
    fn parse(query: &'a str) -> Result<Self, UrlError> {
        let mut params = Self {
            nut: None,
            x: None,
            can: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "nut" => {
                    if params.nut.is_some() {
                        return Err(UrlError::DuplicateParameter("nut"));
                    }
                    if value.is_empty() || !value.bytes().all(is_nut_byte) {
                        return Err(UrlError::MissingNut);
                    }
                    params.nut = Some(value);
                }
                "x" => {
                    if params.x.is_some() {
                        return Err(UrlError::DuplicateParameter("x"));
                    }
                    if value.is_empty()
                        || value.len() > 5
                        || !value.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(UrlError::InvalidPathExtension);
                    }
                    params.x = Some(value.parse().map_err(|_| UrlError::InvalidPathExtension)?);
                }
                "can" => {
                    if params.can.is_some() {
                        return Err(UrlError::DuplicateParameter("can"));
                    }
                    params.can = Some(value);
                }
                _ => {}
            }
        }
        Ok(params)
    }
}

/// Nuts are opaque but must be URL-safe without escaping.
fn is_nut_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(url: &str) -> String {
        SqrlUrl::parse(url)
            .unwrap()
            .site_key_string()
            .domain()
            .to_owned()
    }

    #[test]
    fn grc_site_key_examples() {
        assert_eq!(site("sqrl://ExAmPlE.cOm/?nut=a"), "example.com");
        assert_eq!(site("sqrl://example.com:44344/?nut=a"), "example.com");
        assert_eq!(
            site("sqrl://Jonny:Secret@example.com/?nut=a"),
            "example.com"
        );
        assert_eq!(
            site("sqrl://example.com/jimbo/?x=6&nut=a"),
            "example.com/jimbo"
        );
        assert_eq!(
            site("sqrl://EXAMPLE.COM/JIMBO?x=16&nut=a"),
            "example.com/JIMBO"
        );
        assert_eq!(
            site("sqrl://example.com/joey?x=10&nut=a"),
            "example.com/joey"
        );
        assert_eq!(
            site("sqrl://sqrl.steve.com/cli.sqrl?x=1&nut=a"),
            "sqrl.steve.com/"
        );
    }

    #[test]
    fn post_url_keeps_port_and_drops_userinfo() {
        let url =
            SqrlUrl::parse("sqrl://steve:pw@SQRL.grc.com:8080/demo/cli.sqrl?x=5&nut=oOB4").unwrap();
        assert_eq!(
            url.post_url(),
            "https://SQRL.grc.com:8080/demo/cli.sqrl?x=5&nut=oOB4"
        );
        assert_eq!(url.effective_port(), 8080);
        let url = SqrlUrl::parse("qrl://localhost:8080/cli.sqrl?nut=abc").unwrap();
        assert_eq!(url.post_url(), "http://localhost:8080/cli.sqrl?nut=abc");
        assert_eq!(
            url.post_url_for_query("/cli.sqrl?nut=def").unwrap(),
            "http://localhost:8080/cli.sqrl?nut=def"
        );
        assert!(url.post_url_for_query("//evil.example/x").is_err());
        assert!(url.post_url_for_query("https://evil.example/x").is_err());
    }

    #[test]
    fn sfn_is_accepted_and_ignored() {
        // PITFALLS 8: old libsqrl required sfn=; GRC v1 dropped it. Neither
        // requiring nor rejecting it.
        let with = SqrlUrl::parse("sqrl://sqrlid.com/login?nut=blah&sfn=U1FSTGlk").unwrap();
        let without = SqrlUrl::parse("sqrl://sqrlid.com/login?nut=blah").unwrap();
        assert_eq!(with.site_key_string(), without.site_key_string());
        assert!(
            with.post_url().ends_with("&sfn=U1FSTGlk"),
            "carried along unchanged"
        );
    }

    #[test]
    fn only_the_host_is_lower_cased() {
        // PITFALLS 10: host case folds, path-extension case does not.
        assert_eq!(
            site("sqrl://DomainsAreLowercase.net/?nut=a"),
            "domainsarelowercase.net"
        );
        assert_eq!(
            site("sqrl://example.com/CaseSensitive?x=14&nut=a"),
            "example.com/CaseSensitive"
        );
    }

    #[test]
    fn alt_id_is_joined_by_a_zero_byte() {
        // PITFALLS 11: one 0x00 byte, the Alt-ID's bytes kept as typed.
        let s = SiteKeyString::new("example.com").with_alt_id("Personal");
        assert_eq!(s.to_bytes(), b"example.com\0Personal");
        let s = SiteKeyString::new("example.com").with_alt_id("work-2 ü");
        assert_eq!(s.to_bytes(), "example.com\0work-2 ü".as_bytes());
        assert_eq!(SiteKeyString::new("a").with_alt_id("").to_bytes(), b"a");
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(
            SqrlUrl::parse("http://google.com"),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://example.com/"),
            Err(UrlError::MissingNut)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://example.com/?nut="),
            Err(UrlError::MissingNut)
        );
        assert_eq!(SqrlUrl::parse("sqrl:///?nut=a"), Err(UrlError::InvalidHost));
        assert_eq!(
            SqrlUrl::parse("sqrl://a:0/?nut=a"),
            Err(UrlError::InvalidPort)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://a:99999/?nut=a"),
            Err(UrlError::InvalidPort)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://a/?x=+1&nut=a"),
            Err(UrlError::InvalidPathExtension)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://a/?nut=a&nut=b"),
            Err(UrlError::DuplicateParameter("nut"))
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://a b/?nut=a"),
            Err(UrlError::InvalidCharacter)
        );
        assert_eq!(
            SqrlUrl::parse("sqrl://ä/?nut=a"),
            Err(UrlError::InvalidCharacter)
        );
    }

    #[test]
    fn ipv6_host_with_port() {
        let url = SqrlUrl::parse("qrl://[::1]:8080/cli.sqrl?nut=abc").unwrap();
        assert_eq!(url.post_url(), "http://[::1]:8080/cli.sqrl?nut=abc");
        assert_eq!(url.site_key_string().domain(), "[::1]");
    }

    #[test]
    fn cancel_url_decodes() {
        let url = SqrlUrl::parse(
            "sqrl://sqrl.grc.com/cli.sqrl?nut=fXkb4MBToCm7&can=aHR0cHM6Ly9zcXJsLmdyYy5jb20vZGVtbw",
        )
        .unwrap();
        assert_eq!(
            url.cancel_url().unwrap().as_deref(),
            Some("https://sqrl.grc.com/demo")
        );
    }
}
