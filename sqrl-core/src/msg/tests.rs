//! Round trips, malformed input and signatures across the message types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::base64url;
use crate::keys::{IdentityUnlockKey, IndexedSecret, KeyError, RandomLockKey, SiteKey};
use crate::params::ParamError;
use crate::url::{SiteKeyString, SqrlUrl};

const URL: &str = "sqrl://example.com/cli.sqrl?nut=oOB4QOFJux5Z&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8";

fn iuk(n: u8) -> IdentityUnlockKey {
    IdentityUnlockKey::from_bytes([n; 32])
}

fn site_key(n: u8) -> SiteKey {
    iuk(n)
        .master_key()
        .site_key(&SiteKeyString::new("example.com"))
}

fn client_value(lines: &str) -> String {
    base64url::encode(lines)
}

/// A full request: every optional field present.
fn full_request() -> (ClientRequest, SiteKey, SiteKey) {
    let (current, previous) = (site_key(1), site_key(2));
    let (suk, vuk) = RandomLockKey::from_bytes([3; 32])
        .lock(&iuk(1).lock_key())
        .unwrap();
    let request = ClientRequest::builder(Command::Ident, current.public_key())
        .previous_identity(previous.public_key())
        .indexed_secret(current.indexed_secret("0"))
        .previous_indexed_secret(previous.indexed_secret("0"))
        .lock(suk, vuk)
        .options(ClientOptions::CPS | ClientOptions::SUK)
        .button(Button::First)
        .build()
        .unwrap();
    (request, current, previous)
}

// --- client= ---------------------------------------------------------------

#[test]
fn client_request_writes_grc_order_with_crlf() {
    let (request, current, previous) = full_request();
    let text = String::from_utf8(base64url::decode(request.as_str()).unwrap()).unwrap();
    let names: Vec<&str> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        names,
        [
            "ver", "cmd", "idk", "pidk", "ins", "pins", "suk", "vuk", "opt", "btn"
        ]
    );
    assert!(text.starts_with(&format!(
        "ver=1\r\ncmd=ident\r\nidk={}\r\npidk={}\r\n",
        current.public_key().to_base64url(),
        previous.public_key().to_base64url()
    )));
    assert!(text.ends_with("opt=cps~suk\r\nbtn=1\r\n"));
    assert!(!request.as_str().contains('='));
}

#[test]
fn client_request_round_trips() {
    let (request, ..) = full_request();
    let parsed = ClientRequest::parse(request.as_str()).unwrap();
    assert_eq!(parsed, request);
    assert_eq!(parsed.button(), Some(Button::First));
    assert_eq!(parsed.options(), ClientOptions::CPS | ClientOptions::SUK);

    // A minimal query omits opt= entirely.
    let minimal = ClientRequest::builder(Command::Query, site_key(1).public_key())
        .build()
        .unwrap();
    let text = String::from_utf8(base64url::decode(minimal.as_str()).unwrap()).unwrap();
    assert_eq!(
        text,
        format!(
            "ver=1\r\ncmd=query\r\nidk={}\r\n",
            site_key(1).public_key().to_base64url()
        )
    );
    assert_eq!(ClientRequest::parse(minimal.as_str()).unwrap(), minimal);
}

#[test]
fn client_request_keeps_the_received_string() {
    let idk = site_key(1).public_key().to_base64url();
    // Non-canonical but valid: padding, bare LF, no final newline, odd order,
    // an unknown name. The received text is kept exactly.
    let mut text = format!("ver=1\nidk={idk}\nfuture=x\ncmd=query");
    while text.len() % 3 != 1 {
        text.push('\n');
    }
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, &text);
    assert!(encoded.ends_with("=="));
    let parsed = ClientRequest::parse(&encoded).unwrap();
    assert_eq!(parsed.as_str(), encoded);
    assert_eq!(parsed.command(), Command::Query);
    assert_eq!(
        parsed.unknown_params().collect::<Vec<_>>(),
        [("future", "x")]
    );
}

#[test]
fn client_request_rejects_malformed_input() {
    let idk = site_key(1).public_key().to_base64url();
    let suk = base64url::encode([9u8; 32]);
    let vuk = site_key(4).public_key().to_base64url();
    let ins = base64url::encode([5u8; 32]);
    let field_missing = |name| MessageError::Missing {
        field: "client",
        name,
    };
    let cases: Vec<(String, MessageError)> = vec![
        (
            "not*base64".into(),
            MessageError::Base64 {
                field: "client",
                source: base64url::decode("not*base64").unwrap_err(),
            },
        ),
        (
            base64url::encode([0xc3, 0x28, b'\r', b'\n']),
            MessageError::NotUtf8 { field: "client" },
        ),
        (client_value(""), field_missing("ver")),
        (
            client_value(&format!("cmd=query\r\nver=1\r\nidk={idk}\r\n")),
            MessageError::VersionNotFirst { field: "client" },
        ),
        (
            client_value(&format!("ver=1\r\ncmd=query\r\ncmd=ident\r\nidk={idk}\r\n")),
            MessageError::Params {
                field: "client",
                source: ParamError::Duplicate { name: "cmd".into() },
            },
        ),
        (
            client_value(&format!("ver=1\r\nidk={idk}\r\n")),
            field_missing("cmd"),
        ),
        (client_value("ver=1\r\ncmd=query\r\n"), field_missing("idk")),
        (
            client_value(&format!("ver=1\r\ncmd=login\r\nidk={idk}\r\n")),
            MessageError::UnknownCommand,
        ),
        (
            client_value(&format!("ver=01\r\ncmd=query\r\nidk={idk}\r\n")),
            MessageError::Version(VersionError::Malformed),
        ),
        (
            client_value(&format!("ver=1\r\ncmd=ident\r\nidk={idk}\r\nsuk={suk}\r\n")),
            MessageError::Requires {
                present: "suk",
                required: "vuk",
            },
        ),
        (
            client_value(&format!("ver=1\r\ncmd=ident\r\nidk={idk}\r\nvuk={vuk}\r\n")),
            MessageError::Requires {
                present: "vuk",
                required: "suk",
            },
        ),
        (
            client_value(&format!(
                "ver=1\r\ncmd=ident\r\nidk={idk}\r\nins={ins}\r\npins={ins}\r\n"
            )),
            MessageError::Requires {
                present: "pins",
                required: "pidk",
            },
        ),
        (
            client_value(&format!("ver=1\r\ncmd=ident\r\nidk={idk}\r\nbtn=3\r\n")),
            MessageError::InvalidValue {
                name: "btn",
                reason: "not 0, 1 or 2",
            },
        ),
        (
            client_value(&format!(
                "ver=1\r\ncmd=query\r\nidk={idk}\r\nopt=cps~~suk\r\n"
            )),
            MessageError::InvalidValue {
                name: "opt",
                reason: "empty option or invalid character",
            },
        ),
    ];
    for (encoded, error) in cases {
        assert_eq!(ClientRequest::parse(&encoded), Err(error), "{encoded}");
    }

    // Wrong key lengths: each names its field.
    for (name, value) in [
        ("idk", base64url::encode([1u8; 31])),
        ("pidk", base64url::encode([1u8; 33])),
        ("ins", base64url::encode([1u8; 16])),
        ("suk", base64url::encode(base64url::encode([1u8; 32]))), // PITFALLS 4
    ] {
        let lines = if name == "idk" {
            format!("ver=1\r\ncmd=query\r\nidk={value}\r\n")
        } else {
            format!("ver=1\r\ncmd=query\r\nidk={idk}\r\n{name}={value}\r\nvuk={vuk}\r\n")
        };
        match ClientRequest::parse(&client_value(&lines)) {
            Err(MessageError::Key { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: {other:?}"),
        }
    }

    // Hostile sizes are refused before decoding.
    let huge = "A".repeat(1 << 20);
    assert_eq!(
        ClientRequest::parse(&huge),
        Err(MessageError::TooLong {
            field: "client",
            max: MAX_CLIENT_VALUE_LEN
        })
    );
    let long_value = client_value(&format!(
        "ver=1\r\ncmd=query\r\nidk={idk}\r\nx={}\r\n",
        "a".repeat(4000)
    ));
    assert!(matches!(
        ClientRequest::parse(&long_value),
        Err(MessageError::TooLong { .. })
    ));
}

#[test]
fn errors_map_to_the_tif_a_server_sends() {
    assert_eq!(MessageError::UnknownCommand.tif().to_hex(), "50");
    assert_eq!(MessageError::MalformedForm.tif().to_hex(), "c0");
    assert_eq!(
        MessageError::Version(VersionError::NoCommonVersion)
            .tif()
            .to_hex(),
        "50"
    );
}

#[test]
fn builder_enforces_pairing_rules() {
    let request = ClientRequest::builder(Command::Ident, site_key(1).public_key())
        .indexed_secret(IndexedSecret::from_bytes([1; 32]))
        .previous_indexed_secret(IndexedSecret::from_bytes([2; 32]))
        .build();
    assert_eq!(
        request,
        Err(MessageError::Requires {
            present: "pins",
            required: "pidk"
        })
    );
}

// --- server reply ----------------------------------------------------------

fn reply() -> ServerReply {
    ServerReply::builder(
        "1WM9lfF1ST-z",
        Tif::CURRENT_ID_MATCH | Tif::IP_MATCHED,
        "/cli.sqrl?nut=1WM9lfF1ST-z",
    )
    .url("https://example.com/session?t=abc")
    .can("https://example.com/cancel")
    .sin("0")
    .suk(crate::keys::ServerUnlockKey::from_bytes([7; 32]))
    .ask(
        Ask::new("Hello")
            .with_button(AskButton::new("OK", None).unwrap())
            .unwrap(),
    )
    .extra("mac", "Zm9v")
    .build()
    .unwrap()
}

#[test]
fn server_reply_writes_canonical_body() {
    let reply = reply();
    let text = String::from_utf8(base64url::decode(reply.as_str()).unwrap()).unwrap();
    assert_eq!(
        text,
        format!(
            "ver=1\r\nnut=1WM9lfF1ST-z\r\ntif=5\r\nqry=/cli.sqrl?nut=1WM9lfF1ST-z\r\n\
             url=https://example.com/session?t=abc\r\ncan=https://example.com/cancel\r\n\
             sin=0\r\nsuk={}\r\nask={}\r\nmac=Zm9v\r\n",
            base64url::encode([7u8; 32]),
            Ask::new("Hello")
                .with_button(AskButton::new("OK", None).unwrap())
                .unwrap()
                .to_wire()
        )
    );
    assert!(!reply.as_str().contains('='), "whole body b64u, no padding");
    let parsed = ServerReply::parse(reply.as_str()).unwrap();
    assert_eq!(parsed, reply);
    assert_eq!(parsed.extra().collect::<Vec<_>>(), [("mac", "Zm9v")]);
}

#[test]
fn server_reply_keeps_exact_body_and_extras_in_order() {
    // Uppercase TIF, no final CRLF, extras interleaved: accepted, kept verbatim.
    let text = "ver=1\r\nz=1\r\nnut=abc\r\ntif=1C4\r\na=2\r\nqry=/sqrl?nut=abc";
    let body = base64url::encode(text);
    let parsed = ServerReply::parse(&body).unwrap();
    assert_eq!(parsed.as_str(), body);
    assert_eq!(parsed.tif().bits(), 0x1c4);
    assert_eq!(parsed.extra().collect::<Vec<_>>(), [("z", "1"), ("a", "2")]);
    assert_eq!(ServerValue::for_reply(&parsed), body);
}

#[test]
fn server_reply_rejects_malformed_bodies() {
    let ok = "ver=1\r\nnut=abc\r\ntif=5\r\nqry=/sqrl?nut=abc\r\n";
    // PITFALLS 1: a plain-text reply is not base64url.
    assert!(matches!(
        ServerReply::parse(ok),
        Err(MessageError::Base64 { .. })
    ));
    let missing = |name| MessageError::Missing {
        field: "reply",
        name,
    };
    let cases: Vec<(String, MessageError)> = vec![
        (
            "nut=abc\r\nver=1\r\ntif=5\r\nqry=/\r\n".into(),
            MessageError::VersionNotFirst { field: "reply" },
        ),
        ("ver=1\r\ntif=5\r\nqry=/\r\n".into(), missing("nut")),
        ("ver=1\r\nnut=abc\r\nqry=/\r\n".into(), missing("tif")),
        ("ver=1\r\nnut=abc\r\ntif=5\r\n".into(), missing("qry")),
        (
            "ver=1\r\nnut=abc\r\ntif=0x5\r\nqry=/\r\n".into(),
            MessageError::Tif(TifError::NotHex),
        ),
        (
            "ver=1\r\nnut=abc\r\ntif=\r\nqry=/\r\n".into(),
            MessageError::Tif(TifError::Empty),
        ),
        (
            format!("{ok}tif=5\r\n"),
            MessageError::Params {
                field: "reply",
                source: ParamError::Duplicate { name: "tif".into() },
            },
        ),
        (
            "ver=1\r\nnut=a b\r\ntif=5\r\nqry=/\r\n".into(),
            MessageError::InvalidValue {
                name: "nut",
                reason: "empty, too long or not base64url text",
            },
        ),
        (
            "ver=1\r\nnut=abc\r\ntif=5\r\nqry=https://evil.example/\r\n".into(),
            MessageError::InvalidValue {
                name: "qry",
                reason: "not a root-anchored path",
            },
        ),
        (
            "ver=1\r\nnut=abc\r\ntif=5\r\nqry=//evil.example/\r\n".into(),
            MessageError::InvalidValue {
                name: "qry",
                reason: "not a root-anchored path",
            },
        ),
        (
            format!("{ok}url=\r\n"),
            MessageError::InvalidValue {
                name: "url",
                reason: "empty or not printable ASCII",
            },
        ),
        (
            format!("{ok}sin=\r\n"),
            MessageError::InvalidValue {
                name: "sin",
                reason: "empty",
            },
        ),
    ];
    for (text, error) in cases {
        assert_eq!(
            ServerReply::parse(&base64url::encode(&text)),
            Err(error),
            "{text:?}"
        );
    }
    // PITFALLS 4: a double-encoded SUK has the wrong length.
    let double = format!(
        "{ok}suk={}\r\n",
        base64url::encode(base64url::encode([1u8; 32]))
    );
    assert!(matches!(
        ServerReply::parse(&base64url::encode(double)),
        Err(MessageError::Key { name: "suk", .. })
    ));
    assert!(matches!(
        ServerReply::parse(&base64url::encode([0xffu8, 0xfe])),
        Err(MessageError::NotUtf8 { field: "reply" })
    ));
    let huge = base64url::encode(format!("{ok}x={}\r\n", "a".repeat(1 << 20)));
    assert_eq!(
        ServerReply::parse(&huge),
        Err(MessageError::TooLong {
            field: "reply",
            max: MAX_REPLY_LEN
        })
    );
    // A writer cannot produce what a reader would refuse.
    assert!(ServerReply::builder("", Tif::NONE, "/").build().is_err());
    assert!(
        ServerReply::builder("n", Tif::NONE, "/")
            .extra("tif", "1")
            .build()
            .is_err()
    );
}

// --- server= ---------------------------------------------------------------

#[test]
fn server_value_decodes_url_or_reply() {
    let url = SqrlUrl::parse(URL).unwrap();
    let first = ServerValue::for_url(&url);
    assert_eq!(first, base64url::encode(URL));
    assert_eq!(ServerValue::parse(&first), Ok(ServerValue::Url(url)));
    let reply = reply();
    assert_eq!(
        ServerValue::parse(reply.as_str()),
        Ok(ServerValue::Reply(reply.clone()))
    );
    assert!(ServerValue::parse(&base64url::encode("https://example.com/")).is_err());
    assert!(ServerValue::parse(&base64url::encode("sqrl://example.com/")).is_err());
    assert!(matches!(
        ServerValue::parse(&"A".repeat(1 << 20)),
        Err(MessageError::TooLong {
            field: "server",
            ..
        })
    ));
}

// --- POST body and signatures ----------------------------------------------

fn signed_body() -> (RequestBody, ClientRequest, crate::keys::VerifyUnlockKey) {
    let (request, current, previous) = full_request();
    let server = ServerValue::for_url(&SqrlUrl::parse(URL).unwrap());
    // urs as for enable/remove: URSK from the IUK and the server's SUK,
    // checked with the VUK made at association time from the RLK and ILK.
    let rlk = RandomLockKey::from_bytes([8; 32]);
    let ilk = iuk(1).lock_key();
    let (suk, vuk) = rlk.lock(&ilk).unwrap();
    let ursk = iuk(1).unlock_request_signing_key(&suk).unwrap();
    let body =
        RequestBody::sign(&request, &server, &current, Some(&previous), Some(&ursk)).unwrap();
    (body, request, vuk)
}

#[test]
fn signatures_cover_client_then_server_as_encoded() {
    let (body, request, vuk) = signed_body();
    let message = [
        body.client_value().as_bytes(),
        body.server_value().as_bytes(),
    ]
    .concat();
    assert_eq!(body.signed_message(), message);
    assert_eq!(
        signed_message(body.client_value(), body.server_value()),
        message
    );
    request
        .idk()
        .verify(&message, body.ids())
        .expect("ids over client||server");
    body.verify_identity_signatures(&request).unwrap();
    body.verify_urs(&vuk).unwrap();
}

#[test]
fn one_changed_byte_breaks_every_signature() {
    let (body, _, vuk) = signed_body();
    let form = body.to_form();
    for part in ["client=", "server="] {
        // Flip one base64url character inside the value.
        let start = form.find(part).unwrap() + part.len() + 5;
        let mut bytes = form.clone().into_bytes();
        bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
        let tampered = RequestBody::parse(&String::from_utf8(bytes).unwrap()).unwrap();
        // The tampered client value may no longer even parse; verify against the
        // original request's keys directly.
        let (_, request, _) = signed_body();
        let message = tampered.signed_message();
        // Each refused as a bad signature, not as anything else.
        assert_eq!(
            request.idk().verify(&message, tampered.ids()),
            Err(KeyError::BadSignature),
            "{part} ids"
        );
        assert_eq!(
            request
                .pidk()
                .unwrap()
                .verify(&message, tampered.pids().unwrap()),
            Err(KeyError::BadSignature),
            "{part} pids"
        );
        assert_eq!(
            tampered.verify_urs(&vuk),
            Err(MessageError::Key {
                name: "urs",
                source: KeyError::BadSignature
            }),
            "{part} urs"
        );
    }
}

#[test]
fn form_round_trips_and_parses_strictly() {
    let (body, request, _) = signed_body();
    let form = body.to_form();
    assert!(form.starts_with(&format!("client={}&server=", request.as_str())));
    assert!(form.contains("&pids=") && form.contains("&urs="));
    let parsed = RequestBody::parse(&form).unwrap();
    assert_eq!(parsed, body);
    assert_eq!(parsed.client_request().unwrap(), request);
    assert!(matches!(parsed.server().unwrap(), ServerValue::Url(_)));

    // Unknown fields and empty items are ignored; escapes of base64url
    // characters are decoded.
    assert_eq!(
        RequestBody::parse(&format!("&x=1&{form}&&sfn=abc")).unwrap(),
        body
    );
    let ids = body.ids().to_base64url();
    let first = &ids[..1];
    let escaped = form.replace(
        &format!("ids={first}"),
        &format!("ids=%{:02X}", first.as_bytes()[0]),
    );
    assert_ne!(escaped, form);
    assert_eq!(RequestBody::parse(&escaped).unwrap(), body);

    let missing = |name| MessageError::Missing {
        field: "body",
        name,
    };
    let without = |name: &str| {
        form.split('&')
            .filter(|item| !item.starts_with(&format!("{name}=")))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(
        RequestBody::parse(&without("client")),
        Err(missing("client"))
    );
    assert_eq!(
        RequestBody::parse(&without("server")),
        Err(missing("server"))
    );
    assert_eq!(RequestBody::parse(&without("ids")), Err(missing("ids")));
    assert_eq!(
        RequestBody::parse(&format!("{form}&ids={ids}")),
        Err(MessageError::DuplicateField("ids"))
    );
    assert_eq!(
        RequestBody::parse(&format!("{form}&junk")),
        Err(MessageError::MalformedForm)
    );
    for bad in [
        form.replace("client=", "client=a+b"),
        form.replace("&server=", "%4&server="),
        form.replace("client=", "client=%zz"),
        form.replace("client=", "client=%C3%A9"),
        form.replace("ids=", "ids=="),
    ] {
        assert!(
            matches!(
                RequestBody::parse(&bad),
                Err(MessageError::InvalidValue { .. } | MessageError::Key { .. })
            ),
            "{bad}"
        );
    }
    let short_sig = form.replace(&ids, &ids[..80]);
    assert!(matches!(
        RequestBody::parse(&short_sig),
        Err(MessageError::Key { name: "ids", .. })
    ));
    assert!(matches!(
        RequestBody::parse(&"a".repeat(1 << 20)),
        Err(MessageError::TooLong { field: "body", .. })
    ));

    // pidk without pids, and pids without pidk, fail verification.
    let no_pids = RequestBody::parse(&without("pids")).unwrap();
    assert_eq!(
        no_pids.verify_identity_signatures(&request),
        Err(missing("pids"))
    );
    let query = ClientRequest::builder(Command::Query, site_key(1).public_key())
        .build()
        .unwrap();
    let with_pids = RequestBody::parse(&form.replace(request.as_str(), query.as_str())).unwrap();
    assert_eq!(
        with_pids.verify_identity_signatures(&query),
        Err(MessageError::Key {
            name: "ids",
            source: KeyError::BadSignature
        })
    );
}

#[test]
fn signing_checks_keys_against_the_request() {
    let (request, current, previous) = full_request();
    let server = base64url::encode(URL);
    assert_eq!(
        RequestBody::sign(&request, &server, &previous, Some(&previous), None),
        Err(MessageError::KeyMismatch("idk"))
    );
    assert_eq!(
        RequestBody::sign(&request, &server, &current, Some(&current), None),
        Err(MessageError::KeyMismatch("pidk"))
    );
    assert_eq!(
        RequestBody::sign(&request, &server, &current, None, None),
        Err(MessageError::Requires {
            present: "pidk",
            required: "pids"
        })
    );
    let body = RequestBody::sign(&request, &server, &current, Some(&previous), None).unwrap();
    assert_eq!(
        body.verify_urs(&current_vuk()),
        Err(MessageError::Missing {
            field: "body",
            name: "urs"
        })
    );
}

fn current_vuk() -> crate::keys::VerifyUnlockKey {
    RandomLockKey::from_bytes([8; 32])
        .lock(&iuk(1).lock_key())
        .unwrap()
        .1
}
