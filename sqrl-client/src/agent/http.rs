//! Just enough HTTP/1.1 for the CPS agent: read one GET request head, write one
//! response, close. Written on `std::net` rather than a server library so that
//! "drop the request" (PITFALLS 29) means what it says: the connection is closed
//! without a single byte of response.

use std::io::{self, Read, Write};

/// Largest request head accepted; anything larger is not a browser navigating here.
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 64;

/// A transparent 1x1 GIF89a, the answer to every `*.gif` probe (SPEC 7).
pub const PROBE_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, // "GIF89a"
    0x01, 0x00, 0x01, 0x00, // 1 x 1
    0x80, 0x00, 0x00, // global colour table of 2 entries
    0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, // black, white
    0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, // graphic control: colour 0 transparent
    0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor
    0x02, 0x02, 0x44, 0x01, 0x00, // LZW min code size 2, one data sub-block
    0x3B, // trailer
];

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target as sent (path and any query).
    pub target: String,
    /// Header names (as sent) and values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Whether a header of this name (case-insensitive) is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Reads a request head. `Ok(None)` means the bytes were not an acceptable HTTP
/// request (the caller closes the connection without answering).
pub fn read_request(stream: &mut impl Read) -> io::Result<Option<Request>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let end = loop {
        if let Some(end) = find_head_end(&head) {
            break end;
        }
        if head.len() > MAX_HEAD_LEN {
            return Ok(None);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    };
    Ok(parse_head(&head[..end]))
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let version = request_line.next()?;
    if request_line.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The 1x1 probe GIF.
    Gif,
    /// `302 Found` to this URL: a navigation, never a cacheable 301 (PITFALLS 32).
    Redirect(String),
    /// A small HTML page with a status code.
    Html {
        /// HTTP status code.
        status: u16,
        /// The page.
        body: String,
    },
    /// `404 Not Found`, empty.
    NotFound,
    /// `405 Method Not Allowed`, empty.
    MethodNotAllowed,
}

/// The page served when a login ends and there is nowhere to send the browser
/// (SPEC 7, PITFALLS 30: never leave the browser hanging).
pub fn back_page(message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>SQRL</title></head><body><h1>SQRL</h1><p>{}</p>\
         <p>Press your browser's Back button to return to the site.</p></body></html>\n",
        html_escape(message)
    )
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Writes a complete response and flushes. Every response closes the connection
/// and forbids caching.
pub fn write_response(
    stream: &mut impl Write,
    response: &Response,
    head_only: bool,
) -> io::Result<()> {
    let (status, reason, content_type, body, location): (u16, &str, &str, &[u8], Option<&str>) =
        match response {
            Response::Gif => (200, "OK", "image/gif", PROBE_GIF, None),
            Response::Redirect(url) => (302, "Found", "text/plain; charset=utf-8", b"", Some(url)),
            Response::Html { status, body } => (
                *status,
                reason_phrase(*status),
                "text/html; charset=utf-8",
                body.as_bytes(),
                None,
            ),
            Response::NotFound => (404, "Not Found", "text/plain; charset=utf-8", b"", None),
            Response::MethodNotAllowed => (
                405,
                "Method Not Allowed",
                "text/plain; charset=utf-8",
                b"",
                None,
            ),
        };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(location) = location {
        head.push_str("Location: ");
        // A Location value cannot carry line breaks; the URL came from a server.
        head.push_str(&location.replace(['\r', '\n'], ""));
        head.push_str("\r\n");
    }
    if matches!(response, Response::MethodNotAllowed) {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_browser_request() {
        let raw = b"GET /1712345.gif HTTP/1.1\r\nHost: localhost:25519\r\nAccept: image/*\r\n\r\n";
        let request = read_request(&mut &raw[..]).unwrap().unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/1712345.gif");
        assert!(request.has_header("host"));
        assert!(!request.has_header("origin"));
    }

    #[test]
    fn rejects_garbage_and_oversized_heads() {
        assert_eq!(read_request(&mut &b"hello\r\n\r\n"[..]).unwrap(), None);
        assert_eq!(read_request(&mut &b"GET / HTTP/1.1\r\n"[..]).unwrap(), None);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN + 10));
        assert_eq!(read_request(&mut &big[..]).unwrap(), None);
    }

    #[test]
    fn redirect_is_302_with_location() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            &Response::Redirect("https://a.example/x".into()),
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 302 Found\r\n"));
        assert!(text.contains("\r\nLocation: https://a.example/x\r\n"));
        assert!(text.contains("Cache-Control: no-store"));
    }

    #[test]
    fn back_page_escapes_text() {
        let page = back_page("<script>x</script>");
        assert!(!page.contains("<script>"));
        assert!(page.contains("Back"));
    }

    #[test]
    fn probe_gif_decodes_as_one_pixel() {
        let image = image::load_from_memory(PROBE_GIF).unwrap();
        assert_eq!((image.width(), image.height()), (1, 1));
    }
}
