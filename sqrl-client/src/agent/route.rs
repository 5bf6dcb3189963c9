//! What the agent does with each request (SPEC 7), decided without I/O.

use sqrl_core::base64url;
use sqrl_core::url::SqrlUrl;

use super::http::Request;

/// Paths GRC reserves on the local client; answered with 404 and never read as
/// a SQRL URL.
const RESERVED_PATHS: [&str; 3] = ["/favicon.ico", "/sqrl.ico", "/stop.bmp"];

/// The agent's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Close the connection without answering: the request came from page
    /// script (it carries `Origin`), so nothing it could read may be sent
    /// (PITFALLS 29).
    Drop,
    /// Answer the presence probe with the 1x1 GIF.
    Probe,
    /// Run a same-device login for this URL and answer with a redirect.
    Login(Box<SqrlUrl>),
    /// A reserved path, or one that is not a SQRL URL: 404.
    NotFound,
    /// Not `GET`/`HEAD`: 405.
    MethodNotAllowed,
}

/// Routes a request.
pub fn route(request: &Request) -> Route {
    // Checked first: whatever else the request is, script must not learn anything.
    if request.has_header("origin") {
        return Route::Drop;
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = request
        .target
        .split_once(['?', '#'])
        .map_or(request.target.as_str(), |(path, _)| path);
    if !path.starts_with('/') {
        return Route::NotFound;
    }
    if path.to_ascii_lowercase().ends_with(".gif") {
        return Route::Probe;
    }
    if RESERVED_PATHS.contains(&path) {
        return Route::NotFound;
    }
    match decode_login_path(path) {
        // Only a navigation (GET) starts a login; a HEAD must not have effects.
        Some(_) if request.method != "GET" => Route::MethodNotAllowed,
        Some(url) => Route::Login(Box::new(url)),
        None => Route::NotFound,
    }
}

/// Decodes `/<b64u(sqrl://...)>`. Standard-alphabet `+` and `/` are accepted as
/// well, since a widely copied page script converted only the first of each
/// (PITFALLS 33); a browser may also have percent-encoded `=`, `+` or `/`.
pub fn decode_login_path(path: &str) -> Option<SqrlUrl> {
    let encoded = path.strip_prefix('/')?;
    if encoded.is_empty() || encoded.len() > 2 * sqrl_core::url::MAX_URL_LEN {
        return None;
    }
    let unescaped = percent_decode_b64(encoded)?;
    let bytes = base64url::decode_lenient(&unescaped).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    SqrlUrl::parse(&text).ok()
}

/// Undoes percent-encoding of the three characters base64 can produce that a
/// browser might escape; any other escape means the path is not base64.
fn percent_decode_b64(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('%') {
        out.push_str(&rest[..index]);
        let escape = rest.get(index..index + 3)?;
        out.push(match escape.to_ascii_uppercase().as_str() {
            "%2B" => '+',
            "%2F" => '/',
            "%3D" => '=',
            _ => return None,
        });
        rest = &rest[index + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn get(target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const URL: &str =
        "sqrl://example.com/cli.sqrl?nut=oOB4QOFJux5Z&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8";

    #[test]
    fn any_gif_is_a_probe() {
        assert_eq!(route(&get("/1712345678901.gif", &[])), Route::Probe);
        assert_eq!(route(&get("/x.GIF?t=1", &[])), Route::Probe);
    }

    #[test]
    fn origin_header_drops_everything() {
        for target in ["/1.gif", &format!("/{}", base64url::encode(URL))] {
            assert_eq!(
                route(&get(target, &[("Origin", "https://evil.example")])),
                Route::Drop
            );
            assert_eq!(route(&get(target, &[("origin", "null")])), Route::Drop);
        }
    }

    #[test]
    fn login_path_decodes_url_safe_and_standard_alphabets() {
        let encoded = base64url::encode(URL);
        match route(&get(&format!("/{encoded}"), &[])) {
            Route::Login(url) => assert_eq!(url.as_str(), URL),
            other => panic!("{other:?}"),
        }
        // PITFALLS 33: btoa() output with only some '+'/'/' converted, and padding.
        let standard = encoded.replace('-', "+").replace('_', "/");
        let mixed = standard.replacen('/', "_", 1);
        let padded = format!("{mixed}{}", "=".repeat((4 - mixed.len() % 4) % 4));
        for variant in [standard, mixed, padded.clone(), padded.replace('=', "%3D")] {
            match route(&get(&format!("/{variant}"), &[])) {
                Route::Login(url) => assert_eq!(url.as_str(), URL, "{variant}"),
                other => panic!("{variant}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_paths_are_not_found() {
        assert_eq!(route(&get("/favicon.ico", &[])), Route::NotFound);
        assert_eq!(route(&get("/", &[])), Route::NotFound);
        assert_eq!(route(&get("/not-base64!", &[])), Route::NotFound);
        let not_sqrl = base64url::encode("https://example.com/");
        assert_eq!(route(&get(&format!("/{not_sqrl}"), &[])), Route::NotFound);
        let mut post = get("/1.gif", &[]);
        post.method = "POST".into();
        assert_eq!(route(&post), Route::MethodNotAllowed);
        let mut head = get(&format!("/{}", base64url::encode(URL)), &[]);
        head.method = "HEAD".into();
        assert_eq!(route(&head), Route::MethodNotAllowed);
        head.target = "/1.gif".into();
        assert_eq!(route(&head), Route::Probe);
    }
}
