//! Entry points for the fuzz targets in `fuzz/` (one per parser). Each takes
//! arbitrary bytes, must never panic, and checks the parser's own promises:
//! what parses writes back to something that parses to the same value.
//!
//! The same functions replay the committed corpus in an ordinary test
//! (`tests/fuzz_corpus.rs`), so CI exercises every saved input.

use std::net::{IpAddr, Ipv4Addr};

use crate::msg::{ClientRequest, RequestBody, ServerReply};
use crate::params::ParamList;
use crate::server::{Conversation, Incoming, Policy, Records, WaitingBrowser};
use crate::storage::S4;
use crate::url::SqrlUrl;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the directory names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("url", url),
    ("params", params),
    ("client_request", client_request),
    ("server_reply", server_reply),
    ("server_request", server_request),
    ("s4", s4),
    ("base56", base56),
];

/// `sqrl://` / `qrl://` URL parsing.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = SqrlUrl::parse(text) {
        let again = SqrlUrl::parse(url.as_str());
        assert_eq!(
            again.as_ref(),
            Ok(&url),
            "a parsed URL must parse again identically"
        );
        let domain = url.site_key_string().domain();
        let host_end = domain.find('/').unwrap_or(domain.len());
        assert!(
            !domain[..host_end].bytes().any(|b| b.is_ascii_uppercase()),
            "host must be lower-cased"
        );
        let _ = url.cancel_url();
        let _ = url.post_url_for_query(text);
    }
}

/// CRLF `name=value` lists, plain and base64url.
pub fn params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = ParamList::parse(text) {
        assert_eq!(
            ParamList::parse(&list.to_text()).as_ref(),
            Ok(&list),
            "canonical text must reparse"
        );
    }
    if let Ok(list) = ParamList::from_base64url(text) {
        assert_eq!(
            ParamList::from_base64url(&list.to_base64url()).as_ref(),
            Ok(&list)
        );
    }
}

/// The `client=` value and the whole POST form.
pub fn client_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = ClientRequest::parse(text) {
        assert_eq!(
            request.as_str(),
            text,
            "the received string is kept verbatim"
        );
    }
    if let Ok(body) = RequestBody::parse(text) {
        let _ = body.client_request();
        let _ = body.signed_message();
    }
}

/// Server replies, as a client reads them.
pub fn server_reply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reply) = ServerReply::parse(text) {
        assert_eq!(
            reply.as_str(),
            text,
            "the body is kept verbatim for the next server= value"
        );
        let _ = reply.tif().check_defined();
    }
}

/// A whole `/cli.sqrl` request through the server's validator: never a panic,
/// always a TIF.
pub fn server_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (target, body) = text
        .split_once('\n')
        .unwrap_or(("/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA", &text));
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let incoming = Incoming::parse(target, body, ip);
    let conversation = incoming.nut().map(|_| {
        Conversation::for_urls(
            ["qrl://localhost/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA"],
            Some(WaitingBrowser {
                ip,
                attempt: "fuzz".into(),
            }),
            u64::MAX,
        )
    });
    let decision = incoming.decide(&Policy::new(), conversation, Records::default(), 0);
    assert!(!decision.tif().is_empty() || decision.is_success());
}

/// S4 identity files in every form.
pub fn s4(data: &[u8]) {
    if let Ok(s4) = S4::parse(data) {
        let written = s4.to_original_form();
        let again = S4::parse(&written).map(|s| s.to_original_form());
        assert_eq!(
            again.as_ref(),
            Ok(&written),
            "written identity must reparse identically"
        );
    }
    let _ = S4::import(data);
}

/// base56 textual identities.
pub fn base56(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = crate::base56::decode(text) {
            let encoded = crate::base56::encode(&bytes);
            assert_eq!(crate::base56::decode(&encoded).as_ref(), Ok(&bytes));
        }
    }
    if data.len() <= crate::base56::MAX_DECODED_LEN {
        let encoded = crate::base56::encode(data);
        assert_eq!(
            crate::base56::decode(&encoded).as_deref(),
            Ok(data),
            "encode then decode"
        );
    }
}
