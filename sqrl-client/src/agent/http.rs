//! Just enough HTTP/1.1 for the CPS agent: read one GET request head (parsed by
//! `httparse`), write one response, close. The sockets are `std::net` rather
//! than a server library's so that "drop the request" (PITFALLS 29) means what
//! it says: the connection is closed without a single byte of response.

use std::io::{self, Read, Write};

/// Largest request head accepted; anything larger is not a browser navigating here.
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 64;

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

/// Why no request could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed the connection (or it failed) before a whole head
    /// arrived: there is nobody left to answer.
    Incomplete,
    /// The bytes are not an HTTP/1.x request head: answered with 400.
    Malformed,
    /// More than [`MAX_HEAD_LEN`] bytes or [`MAX_HEADERS`] header lines:
    /// answered with 431.
    TooLarge,
}

impl HeadError {
    /// The answer to send, if any.
    pub fn response(self) -> Option<Response> {
        match self {
            HeadError::Incomplete => None,
            HeadError::Malformed => Some(Response::BadRequest),
            HeadError::TooLarge => Some(Response::HeadTooLarge),
        }
    }
}

/// Reads one request head, however the bytes are split across reads. Nothing
/// past [`MAX_HEAD_LEN`] is read.
pub fn read_request(stream: &mut impl Read) -> Result<Request, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let room = MAX_HEAD_LEN - head.len();
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let chunk = room.min(buf.len());
        let n = match stream.read(&mut buf[..chunk]) {
            Ok(0) | Err(_) => return Err(HeadError::Incomplete),
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        if let Some(request) = parse_head(&head)? {
            return Ok(request);
        }
    }
}

/// `Ok(None)`: the head is not complete yet.
fn parse_head(bytes: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(HeadError::Malformed);
    };
    // Methods are upper case in every request this agent has a use for.
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HeadError::Malformed);
    }
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| HeadError::Malformed)?;
        headers.push((header.name.to_owned(), value.trim().to_owned()));
    }
    Ok(Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    }))
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
    /// `400 Bad Request`, empty: the request head was not HTTP.
    BadRequest,
    /// `431 Request Header Fields Too Large`, empty.
    HeadTooLarge,
}

/// The page served when a login ends and there is nowhere to send the browser
/// (SPEC 7, PITFALLS 30: never leave the browser hanging). The message may
/// quote the site; maud escapes it.
pub fn back_page(message: &str) -> String {
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "SQRL" }
            }
            body {
                h1 { "SQRL" }
                p { (message) }
                p { "Press your browser's Back button to return to the site." }
            }
        }
    }
    .into_string()
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
            Response::BadRequest => (400, "Bad Request", "text/plain; charset=utf-8", b"", None),
            Response::HeadTooLarge => (
                431,
                "Request Header Fields Too Large",
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
        let request = read_request(&mut &raw[..]).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/1712345.gif");
        assert!(request.has_header("host"));
        assert!(!request.has_header("origin"));
    }

    /// Hands out its bytes a few at a time, as a slow network would.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_head_split_across_reads_is_read_whole() {
        let raw = b"GET /abc HTTP/1.1\r\nHost: localhost\r\nOrigin: https://x.example\r\n\r\n";
        for step in [1, 2, 3, 7] {
            let request = read_request(&mut Trickle { bytes: raw, step }).unwrap();
            assert_eq!(request.target, "/abc", "step {step}");
            assert!(request.has_header("origin"), "step {step}");
        }
    }

    #[test]
    fn a_malformed_head_gets_a_400() {
        for raw in [
            &b"hello\r\n\r\n"[..],
            b"GET / SPDY/3\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n",
        ] {
            let error = read_request(&mut &raw[..]).unwrap_err();
            assert_eq!(error, HeadError::Malformed, "{}", raw.escape_ascii());
            assert_eq!(error.response(), Some(Response::BadRequest));
        }
    }

    #[test]
    fn an_unfinished_head_gets_no_answer() {
        let error = read_request(&mut &b"GET / HTTP/1.1\r\n"[..]).unwrap_err();
        assert_eq!(error, HeadError::Incomplete);
        assert_eq!(error.response(), None);
    }

    #[test]
    fn an_oversized_head_gets_a_431_without_being_read_whole() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN + 10));
        let mut rest = &big[..];
        assert_eq!(read_request(&mut rest), Err(HeadError::TooLarge));
        assert!(!rest.is_empty(), "read past the limit");

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend(format!("X-{i}: y\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert!(many.len() < MAX_HEAD_LEN);
        let error = read_request(&mut &many[..]).unwrap_err();
        assert_eq!(error, HeadError::TooLarge);
        assert_eq!(error.response(), Some(Response::HeadTooLarge));
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
        let page = back_page("<script>x</script> & \"quotes\"");
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("<p>&lt;script&gt;x&lt;/script&gt; &amp; &quot;quotes&quot;</p>"),
            "{page}"
        );
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("Back"));
    }

    #[test]
    fn probe_gif_decodes_as_one_pixel() {
        let image = image::load_from_memory(PROBE_GIF).unwrap();
        assert_eq!((image.width(), image.height()), (1, 1));
    }
}
