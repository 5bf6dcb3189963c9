//! The server's reply body (SPEC 3).

use super::wire::{check_ascii, decode_list, push};
use super::{Ask, MessageError, Tif, VersionSet};
use crate::base64url;
use crate::keys::ServerUnlockKey;
use crate::params::ParamList;

/// Longest reply body accepted. Typical replies are 100–300 characters; the
/// bound leaves room for an `ask` and server-private fields.
pub const MAX_REPLY_LEN: usize = 8192;

/// Longest `nut=` accepted (GRC's are 11 or 22 characters).
pub const MAX_NUT_LEN: usize = 256;

const FIELD: &str = "reply";

/// A typed server reply.
///
/// The body is base64url as a whole (PITFALLS 1) of CRLF `name=value` lines,
/// `ver=` first. Parsing requires `ver`, `nut`, `tif` and `qry`, checks every
/// known field, and keeps other fields (e.g. a server's `mac=`) in order. The
/// exact body is kept too: the client echoes it verbatim as its next `server=`
/// value (SPEC 2.3, PITFALLS 2), so it is never re-encoded.
///
/// Whether the TIF holds bits undefined for the agreed version is not judged
/// here (a reply with them still parses, so it can be shown); a client checks
/// with [`Tif::check_defined`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    encoded: String,
    fields: Fields,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    version: VersionSet,
    nut: String,
    tif: Tif,
    qry: String,
    url: Option<String>,
    can: Option<String>,
    sin: Option<String>,
    suk: Option<ServerUnlockKey>,
    ask: Option<Ask>,
    extra: Vec<(String, String)>,
}

/// The names [`ServerReply`] understands.
const KNOWN: [&str; 9] = [
    "ver", "nut", "tif", "qry", "url", "can", "sin", "suk", "ask",
];

impl Fields {
    fn check(&self) -> Result<(), MessageError> {
        check_nut(&self.nut)?;
        check_qry(&self.qry)?;
        if let Some(url) = &self.url {
            check_ascii("url", url)?;
        }
        if let Some(can) = &self.can {
            check_ascii("can", can)?;
        }
        if let Some(sin) = &self.sin
            && sin.is_empty()
        {
            return Err(MessageError::InvalidValue {
                name: "sin",
                reason: "empty",
            });
        }
        Ok(())
    }

    /// The canonical order: `ver, nut, tif, qry, [url], [can], [sin], [suk],
    /// [ask]`, then the extra fields in the order given.
    fn to_list(&self) -> Result<ParamList, MessageError> {
        let mut list = ParamList::new();
        push(&mut list, FIELD, "ver", &self.version.to_string())?;
        push(&mut list, FIELD, "nut", &self.nut)?;
        push(&mut list, FIELD, "tif", &self.tif.to_hex())?;
        push(&mut list, FIELD, "qry", &self.qry)?;
        if let Some(url) = &self.url {
            push(&mut list, FIELD, "url", url)?;
        }
        if let Some(can) = &self.can {
            push(&mut list, FIELD, "can", can)?;
        }
        if let Some(sin) = &self.sin {
            push(&mut list, FIELD, "sin", sin)?;
        }
        if let Some(suk) = &self.suk {
            push(&mut list, FIELD, "suk", &suk.to_base64url())?;
        }
        if let Some(ask) = &self.ask {
            push(&mut list, FIELD, "ask", &ask.to_wire())?;
        }
        for (name, value) in &self.extra {
            push(&mut list, FIELD, name, value)?;
        }
        Ok(list)
    }
}

impl ServerReply {
    /// Starts a reply. Version defaults to [`VersionSet::current`].
    pub fn builder(nut: impl Into<String>, tif: Tif, qry: impl Into<String>) -> ServerReplyBuilder {
        ServerReplyBuilder {
            fields: Fields {
                version: VersionSet::current(),
                nut: nut.into(),
                tif,
                qry: qry.into(),
                url: None,
                can: None,
                sin: None,
                suk: None,
                ask: None,
                extra: Vec::new(),
            },
        }
    }

    /// Parses a reply body as received (see the type's documentation).
    pub fn parse(body: &str) -> Result<Self, MessageError> {
        let list = decode_list(body, FIELD, MAX_REPLY_LEN)?;
        let required = |name| {
            list.get(name)
                .ok_or(MessageError::Missing { field: FIELD, name })
        };
        let fields = Fields {
            version: VersionSet::parse(required("ver")?)?,
            nut: required("nut")?.to_owned(),
            tif: Tif::parse_hex(required("tif")?)?,
            qry: required("qry")?.to_owned(),
            url: list.get("url").map(str::to_owned),
            can: list.get("can").map(str::to_owned),
            sin: list.get("sin").map(str::to_owned),
            suk: list
                .get("suk")
                .map(|v| {
                    ServerUnlockKey::from_base64url(v).map_err(|source| MessageError::Key {
                        name: "suk",
                        source,
                    })
                })
                .transpose()?,
            ask: list.get("ask").map(Ask::parse).transpose()?,
            extra: list
                .iter()
                .filter(|(name, _)| !KNOWN.contains(name))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        };
        fields.check()?;
        Ok(Self {
            encoded: body.to_owned(),
            fields,
        })
    }

    /// The body exactly as received or written: the next `server=` value.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// `ver=`: the versions the server supports.
    pub fn version(&self) -> &VersionSet {
        &self.fields.version
    }

    /// `nut=`: the nonce for the next request.
    pub fn nut(&self) -> &str {
        &self.fields.nut
    }

    /// `tif=`.
    pub fn tif(&self) -> Tif {
        self.fields.tif
    }

    /// `qry=`: the root-anchored path and query of the next POST.
    pub fn qry(&self) -> &str {
        &self.fields.qry
    }

    /// `url=`: where a CPS client sends the browser (SPEC 7).
    pub fn url(&self) -> Option<&str> {
        self.fields.url.as_deref()
    }

    /// `can=`: a replacement cancel URL.
    pub fn can(&self) -> Option<&str> {
        self.fields.can.as_deref()
    }

    /// `sin=`: the secret index the next request must answer with `ins=`.
    pub fn sin(&self) -> Option<&str> {
        self.fields.sin.as_deref()
    }

    /// `suk=`: the stored Server Unlock Key.
    pub fn suk(&self) -> Option<&ServerUnlockKey> {
        self.fields.suk.as_ref()
    }

    /// `ask=`: a question for the user.
    pub fn ask(&self) -> Option<&Ask> {
        self.fields.ask.as_ref()
    }

    /// Fields this crate does not know, in received order.
    pub fn extra(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .extra
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Builds a [`ServerReply`] in canonical form.
#[derive(Debug, Clone)]
pub struct ServerReplyBuilder {
    fields: Fields,
}

impl ServerReplyBuilder {
    /// Sets `ver=` (default: [`VersionSet::current`]).
    pub fn version(mut self, version: VersionSet) -> Self {
        self.fields.version = version;
        self
    }

    /// Sets `url=` (the CPS session URL).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.fields.url = Some(url.into());
        self
    }

    /// Sets `can=`.
    pub fn can(mut self, can: impl Into<String>) -> Self {
        self.fields.can = Some(can.into());
        self
    }

    /// Sets `sin=`.
    pub fn sin(mut self, sin: impl Into<String>) -> Self {
        self.fields.sin = Some(sin.into());
        self
    }

    /// Sets `suk=`.
    pub fn suk(mut self, suk: ServerUnlockKey) -> Self {
        self.fields.suk = Some(suk);
        self
    }

    /// Sets `ask=`.
    pub fn ask(mut self, ask: Ask) -> Self {
        self.fields.ask = Some(ask);
        self
    }

    /// Appends a server-private field (e.g. `mac=`), written after the known
    /// fields in the order added. Names of known fields are rejected.
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.extra.push((name.into(), value.into()));
        self
    }

    /// Checks every field and encodes the canonical body: CRLF after every line,
    /// base64url without padding.
    pub fn build(self) -> Result<ServerReply, MessageError> {
        self.fields.check()?;
        // The list rejects an extra field that repeats a known name.
        let encoded = base64url::encode(self.fields.to_list()?.to_text());
        if encoded.len() > MAX_REPLY_LEN {
            return Err(MessageError::TooLong {
                field: FIELD,
                max: MAX_REPLY_LEN,
            });
        }
        Ok(ServerReply {
            encoded,
            fields: self.fields,
        })
    }
}

fn check_nut(nut: &str) -> Result<(), MessageError> {
    let valid = !nut.is_empty()
        && nut.len() <= MAX_NUT_LEN
        && nut.bytes().all(crate::base64url::is_alphabet);
    if valid {
        Ok(())
    } else {
        Err(MessageError::InvalidValue {
            name: "nut",
            reason: "empty, too long or not base64url text",
        })
    }
}

fn check_qry(qry: &str) -> Result<(), MessageError> {
    check_ascii("qry", qry)?;
    if qry.starts_with('/') && !qry.starts_with("//") {
        Ok(())
    } else {
        Err(MessageError::InvalidValue {
            name: "qry",
            reason: "not a root-anchored path",
        })
    }
}
