//! The POST body (SPEC 2.1): `client=..&server=..&ids=..[&pids=..][&urs=..]`.

use super::signing::signed_message;
use super::{ClientRequest, MAX_CLIENT_VALUE_LEN, MAX_SERVER_VALUE_LEN, MessageError, ServerValue};
use crate::keys::{
    IdentityKey, KeyError, RequestSigner, Signature, SiteKey, SiteSigner, UnlockRequestSigningKey,
    VerifyUnlockKey,
};

/// Longest POST body accepted, checked before any parsing.
pub const MAX_BODY_LEN: usize = MAX_CLIENT_VALUE_LEN + MAX_SERVER_VALUE_LEN + 1024;

/// The media type of the POST body.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A signed request as POSTed.
///
/// `client` and `server` are kept as the encoded strings the signatures cover;
/// they are parsed on demand ([`RequestBody::client_request`],
/// [`RequestBody::server`]).
///
/// Form parsing policy: fields are split on `&` and the first `=`; empty items
/// are skipped; `client`, `server`, `ids`, `pids`, `urs` may each appear once
/// (a repeat is an error, never "last wins"); other field names are ignored,
/// because no signature covers them and so they can carry no meaning. Values
/// are base64url, which needs no percent-encoding, but `%XX` escapes are
/// decoded for clients that escape anyway; after decoding, a value must be
/// base64url characters with at most trailing `=` padding, so `+` (a form space)
/// and stray escapes are rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBody {
    client: String,
    server: String,
    ids: Signature,
    pids: Option<Signature>,
    urs: Option<Signature>,
}

impl RequestBody {
    /// Signs `client` with `server_value` (SPEC 2.4) and assembles the body.
    ///
    /// `ids_key` must be the key of `client.idk()`; `pids_key` is required
    /// exactly when the request carries `pidk` and must match it. `urs_key`
    /// adds `urs` (for `enable`, `remove`, and an `ident` that replaces a
    /// previous identity).
    pub fn sign(
        client: &ClientRequest,
        server_value: &str,
        ids_key: &SiteKey,
        pids_key: Option<&SiteKey>,
        urs_key: Option<&UnlockRequestSigningKey>,
    ) -> Result<Self, MessageError> {
        Self::sign_with(
            client,
            server_value,
            ids_key,
            pids_key.map(|key| key as &dyn SiteSigner),
            urs_key.map(|key| key as &dyn RequestSigner),
        )
    }

    /// As [`RequestBody::sign`], with signers that may keep their keys in
    /// another process; a signer that fails gives [`MessageError::Signer`].
    pub fn sign_with(
        client: &ClientRequest,
        server_value: &str,
        ids: &dyn SiteSigner,
        pids: Option<&dyn SiteSigner>,
        urs: Option<&dyn RequestSigner>,
    ) -> Result<Self, MessageError> {
        if ids.public_key() != *client.idk() {
            return Err(MessageError::KeyMismatch("idk"));
        }
        match (client.pidk(), pids) {
            (Some(pidk), Some(key)) if key.public_key() == *pidk => {}
            (None, None) => {}
            (Some(_), None) => {
                return Err(MessageError::Requires {
                    present: "pidk",
                    required: "pids",
                });
            }
            (None, Some(_)) => {
                return Err(MessageError::Requires {
                    present: "pids",
                    required: "pidk",
                });
            }
            (Some(_), Some(_)) => return Err(MessageError::KeyMismatch("pidk")),
        }
        check_value("server", server_value, MAX_SERVER_VALUE_LEN)?;
        let message = signed_message(client.as_str(), server_value);
        Ok(Self {
            client: client.as_str().to_owned(),
            server: server_value.to_owned(),
            ids: ids.sign(&message)?,
            pids: pids.map(|key| key.sign(&message)).transpose()?,
            urs: urs.map(|key| key.sign(&message)).transpose()?,
        })
    }

    /// Parses a received form body (see the type's documentation for the policy).
    pub fn parse(form: &str) -> Result<Self, MessageError> {
        if form.len() > MAX_BODY_LEN {
            return Err(MessageError::TooLong {
                field: "body",
                max: MAX_BODY_LEN,
            });
        }
        let mut client = None;
        let mut server = None;
        let mut ids = None;
        let mut pids = None;
        let mut urs = None;
        for item in form.split('&').filter(|item| !item.is_empty()) {
            let (name, raw) = item.split_once('=').ok_or(MessageError::MalformedForm)?;
            let (slot, name, max): (&mut Option<String>, &'static str, usize) = match name {
                "client" => (&mut client, "client", MAX_CLIENT_VALUE_LEN),
                "server" => (&mut server, "server", MAX_SERVER_VALUE_LEN),
                "ids" => (&mut ids, "ids", SIGNATURE_TEXT_MAX),
                "pids" => (&mut pids, "pids", SIGNATURE_TEXT_MAX),
                "urs" => (&mut urs, "urs", SIGNATURE_TEXT_MAX),
                _ => continue,
            };
            if slot.is_some() {
                return Err(MessageError::DuplicateField(name));
            }
            let value = percent_decode(raw, name)?;
            check_value(name, &value, max)?;
            *slot = Some(value);
        }
        let missing = |name| MessageError::Missing {
            field: "body",
            name,
        };
        let signature = |name, text: Option<String>| {
            text.map(|text| {
                Signature::from_base64url(&text, name)
                    .map_err(|source| MessageError::Key { name, source })
            })
            .transpose()
        };
        Ok(Self {
            client: client.ok_or(missing("client"))?,
            server: server.ok_or(missing("server"))?,
            ids: signature("ids", ids)?.ok_or(missing("ids"))?,
            pids: signature("pids", pids)?,
            urs: signature("urs", urs)?,
        })
    }

    /// The canonical form body.
    pub fn to_form(&self) -> String {
        let mut out = format!(
            "client={}&server={}&ids={}",
            self.client,
            self.server,
            self.ids.to_base64url()
        );
        if let Some(pids) = &self.pids {
            out.push_str("&pids=");
            out.push_str(&pids.to_base64url());
        }
        if let Some(urs) = &self.urs {
            out.push_str("&urs=");
            out.push_str(&urs.to_base64url());
        }
        out
    }

    /// The encoded `client=` value as sent.
    pub fn client_value(&self) -> &str {
        &self.client
    }

    /// The encoded `server=` value as sent.
    pub fn server_value(&self) -> &str {
        &self.server
    }

    /// `ids`.
    pub fn ids(&self) -> &Signature {
        &self.ids
    }

    /// `pids`, if sent.
    pub fn pids(&self) -> Option<&Signature> {
        self.pids.as_ref()
    }

    /// `urs`, if sent.
    pub fn urs(&self) -> Option<&Signature> {
        self.urs.as_ref()
    }

    /// The bytes every signature covers: `client_value || server_value`.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.client, &self.server)
    }

    /// Parses the `client=` value.
    pub fn client_request(&self) -> Result<ClientRequest, MessageError> {
        ClientRequest::parse(&self.client)
    }

    /// Parses the `server=` value.
    pub fn server(&self) -> Result<ServerValue, MessageError> {
        ServerValue::parse(&self.server)
    }

    /// Verifies `ids` against `idk`, and `pids` against `pidk` (present together
    /// or not at all) with strict Ed25519 rules (SPEC 2.4). `request` must be
    /// this body's parsed client value.
    ///
    /// `urs` is checked by [`RequestBody::verify_urs`] once the server has the
    /// stored VUK; an `urs` the server has no VUK for is left unverified, so a
    /// server should reject a command that sends one where none is expected.
    pub fn verify_identity_signatures(&self, request: &ClientRequest) -> Result<(), MessageError> {
        if request.as_str() != self.client {
            return Err(MessageError::KeyMismatch("client"));
        }
        let message = self.signed_message();
        verify(request.idk(), &message, &self.ids, "ids")?;
        match (request.pidk(), &self.pids) {
            (Some(pidk), Some(pids)) => verify(pidk, &message, pids, "pids"),
            (None, None) => Ok(()),
            (Some(_), None) => Err(MessageError::Missing {
                field: "body",
                name: "pids",
            }),
            (None, Some(_)) => Err(MessageError::Requires {
                present: "pids",
                required: "pidk",
            }),
        }
    }

    /// Verifies `urs` against a stored VUK (strict Ed25519 rules).
    pub fn verify_urs(&self, vuk: &VerifyUnlockKey) -> Result<(), MessageError> {
        let urs = self.urs.as_ref().ok_or(MessageError::Missing {
            field: "body",
            name: "urs",
        })?;
        vuk.verify(&self.signed_message(), urs)
            .map_err(|source| MessageError::Key {
                name: "urs",
                source,
            })
    }
}

/// 86 characters, or 88 with padding.
const SIGNATURE_TEXT_MAX: usize = 88;

fn verify(
    key: &IdentityKey,
    message: &[u8],
    signature: &Signature,
    name: &'static str,
) -> Result<(), MessageError> {
    key.verify(message, signature)
        .map_err(|source: KeyError| MessageError::Key { name, source })
}

/// A field value: non-empty, bounded, base64url characters then at most two `=`.
fn check_value(name: &'static str, value: &str, max: usize) -> Result<(), MessageError> {
    if value.len() > max {
        return Err(MessageError::TooLong { field: name, max });
    }
    let body = value.trim_end_matches('=');
    let valid = !body.is_empty()
        && value.len() - body.len() <= 2
        && body.bytes().all(crate::base64url::is_alphabet);
    if valid {
        Ok(())
    } else {
        Err(MessageError::InvalidValue {
            name,
            reason: "not base64url text",
        })
    }
}

/// Decodes `%XX` escapes. Anything else passes through unchanged and is judged
/// by [`check_value`]; a decoded byte outside ASCII fails there too.
fn percent_decode(raw: &str, name: &'static str) -> Result<String, MessageError> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bad = MessageError::InvalidValue {
        name,
        reason: "malformed percent escape",
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or(bad.clone())?;
            let hex = core::str::from_utf8(hex).map_err(|_| bad.clone())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad.clone())?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MessageError::InvalidValue {
        name,
        reason: "not base64url text",
    })
}
