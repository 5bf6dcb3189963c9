//! Entry points for the fuzz targets in `fuzz/` (one per parser). Each takes
//! arbitrary bytes, must never panic, and checks the parser's own promises:
//! what parses writes back to something that parses to the same value, and a
//! server decision keeps the failure table and changes nothing when it refuses.
//!
//! The same functions replay the committed corpus in an ordinary test
//! (`tests/fuzz_corpus.rs`), so CI exercises every saved input.

// A fuzz entry point reports a broken promise by panicking: that is what the
// fuzzer and the corpus replay look for.
#![allow(clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use crate::msg::Tif;
use crate::msg::{ClientRequest, RequestBody, ServerReply};
use crate::params::ParamList;
use crate::server::{Conversation, Failure, Incoming, Nut, Policy, Records, WaitingBrowser};
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

/// A whole `/cli.sqrl` request through the server's validator, under both
/// policies of [`server_policies`]. See [`server_request_outcome`] for what
/// it checks.
pub fn server_request(data: &[u8]) {
    for policy in server_policies() {
        let _ = server_request_outcome(data, &policy);
    }
}

/// The policies a request is decided under: none, and a `sin`, under which a
/// state-changing command that answers none is refused after its mutation
/// was decided (so "a refused request changes nothing" is put to the test).
pub fn server_policies() -> [Policy; 2] {
    let with_sin = Policy::new().with_sin("fuzz").expect("a fixed valid sin");
    [Policy::new(), with_sin]
}

/// The URL every server-request input continues: its `server=` is what a
/// valid request signs.
pub const SERVER_REQUEST_URL: &str = "qrl://localhost/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA";

/// The state bits a failure reply may add to the failure's own (SPEC 3.2).
const STATE_BITS: Tif = Tif::CURRENT_ID_MATCH
    .union(Tif::PREVIOUS_ID_MATCH)
    .union(Tif::IP_MATCHED)
    .union(Tif::SQRL_DISABLED);

/// Decides one request (first line the target, the rest the body) under
/// `policy` against a live conversation and no stored accounts, and checks what must hold for
/// every input:
///
/// - the TIF sets only v1 bits, and 0x40 exactly when there is a failure;
/// - a failure's TIF is the failure table's bits ([`crate::server::Failure::tif`])
///   plus state bits only (none at all for an IP mismatch);
/// - a refused request changes nothing: no account mutation, no secret kept;
/// - the reply built from the decision parses back with the same TIF and nut.
///
/// Returns the failure, so the corpus replay can tell what it exercised.
pub fn server_request_outcome(data: &[u8], policy: &Policy) -> Option<Failure> {
    let text = String::from_utf8_lossy(data);
    let (target, body) = text
        .split_once('\n')
        .unwrap_or(("/cli.sqrl?nut=AAAAAAAAAAAAAAAAAAAAAA", &text));
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let incoming = Incoming::parse(target, body, ip);
    let conversation = incoming.nut().map(|_| {
        Conversation::for_urls(
            [SERVER_REQUEST_URL],
            Some(WaitingBrowser {
                ip,
                attempt: "fuzz".into(),
            }),
            u64::MAX,
        )
    });
    let decision = incoming.decide(policy, conversation, Records::default(), 0);
    let tif = decision.tif();
    assert_eq!(tif.check_defined(), Ok(tif), "only v1 bits");
    assert_eq!(
        decision.failure().is_some(),
        tif.is_failure(),
        "0x40 exactly when the request failed: {tif:?}"
    );
    if let Some(failure) = decision.failure() {
        assert_eq!(
            tif.without(STATE_BITS),
            failure.tif().without(STATE_BITS),
            "{failure:?}: the table's bits, plus state only"
        );
        assert!(tif.contains(failure.tif()), "{failure:?}: {tif:?}");
        if *failure == Failure::IpMismatch {
            assert_eq!(tif, Tif::COMMAND_FAILED, "an IP mismatch is exactly 0x40");
        }
        assert!(
            decision.mutation().is_none(),
            "a refused request changes no account: {failure:?}"
        );
        assert!(
            decision.secret_write().is_none(),
            "a refused request keeps no secret: {failure:?}"
        );
    }
    let failure = decision.failure().cloned();
    let nut = Nut::parse("BBBBBBBBBBBBBBBBBBBBBB").expect("a fixed valid nut");
    let issued = decision
        .finish(nut.clone(), None)
        .expect("a reply from server-supplied values builds");
    let reply = ServerReply::parse(issued.body()).expect("the server's reply parses");
    assert_eq!(reply.tif(), tif, "the reply carries the decided TIF");
    assert_eq!(
        reply.nut(),
        nut.as_str(),
        "the reply hands out the next nut"
    );
    failure
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
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = crate::base56::decode(text)
    {
        let encoded = crate::base56::encode(&bytes);
        assert_eq!(crate::base56::decode(&encoded).as_ref(), Ok(&bytes));
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
