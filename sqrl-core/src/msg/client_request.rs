//! The `client=` value of a request (SPEC 2.2).

use super::wire::{decode_list, push};
use super::{Button, ClientOptions, Command, MessageError, VersionSet};
use crate::base64url;
use crate::keys::{IdentityKey, IndexedSecret, KeyError, ServerUnlockKey, VerifyUnlockKey};
use crate::params::ParamList;

/// Longest encoded `client=` value accepted. A full request (every optional
/// key present) encodes to about 700 characters.
pub const MAX_CLIENT_VALUE_LEN: usize = 4096;

const FIELD: &str = "client";

/// A typed `client=` value.
///
/// A value always holds the exact encoded string it was parsed from (or, when
/// built, the canonical encoding): signatures cover that string (SPEC 2.4,
/// PITFALLS 2), so it is never re-encoded.
///
/// Parsing is strict about what is present (base64url, UTF-8, CRLF lines, no
/// duplicates, `ver=` first, `cmd=` and `idk=` required, each key the right
/// length, `suk`/`vuk` together, `pins` only with `pidk` and `ins`). Names this
/// crate does not know are kept, not rejected, for forward compatibility; see
/// [`ClientRequest::unknown_params`]. Which parameters a command needs (e.g.
/// `urs` for `enable`) is the server validator's business, not the parser's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    encoded: String,
    fields: Fields,
    unknown: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    version: VersionSet,
    command: Command,
    options: ClientOptions,
    idk: IdentityKey,
    pidk: Option<IdentityKey>,
    suk: Option<ServerUnlockKey>,
    vuk: Option<VerifyUnlockKey>,
    ins: Option<IndexedSecret>,
    pins: Option<IndexedSecret>,
    button: Option<Button>,
}

impl Fields {
    /// The pairing rules that hold whatever the command (SPEC 2.2).
    fn check(&self) -> Result<(), MessageError> {
        let requires = |present, required| Err(MessageError::Requires { present, required });
        match (&self.suk, &self.vuk) {
            (Some(_), None) => return requires("suk", "vuk"),
            (None, Some(_)) => return requires("vuk", "suk"),
            _ => {}
        }
        if self.pins.is_some() && self.pidk.is_none() {
            return requires("pins", "pidk");
        }
        if self.pins.is_some() && self.ins.is_none() {
            return requires("pins", "ins");
        }
        Ok(())
    }

    /// The canonical list, in GRC's order:
    /// `ver, cmd, idk, [pidk], [ins], [pins], [suk], [vuk], [opt], [btn]`.
    fn to_list(&self) -> Result<ParamList, MessageError> {
        let mut list = ParamList::new();
        push(&mut list, FIELD, "ver", &self.version.to_string())?;
        push(&mut list, FIELD, "cmd", self.command.as_str())?;
        push(&mut list, FIELD, "idk", &self.idk.to_base64url())?;
        if let Some(pidk) = &self.pidk {
            push(&mut list, FIELD, "pidk", &pidk.to_base64url())?;
        }
        if let Some(ins) = &self.ins {
            push(&mut list, FIELD, "ins", &ins.to_base64url())?;
        }
        if let Some(pins) = &self.pins {
            push(&mut list, FIELD, "pins", &pins.to_base64url())?;
        }
        if let Some(suk) = &self.suk {
            push(&mut list, FIELD, "suk", &suk.to_base64url())?;
        }
        if let Some(vuk) = &self.vuk {
            push(&mut list, FIELD, "vuk", &vuk.to_base64url())?;
        }
        if !self.options.is_empty() {
            push(&mut list, FIELD, "opt", &self.options.to_string())?;
        }
        if let Some(button) = self.button {
            push(&mut list, FIELD, "btn", button.as_str())?;
        }
        Ok(list)
    }
}

impl ClientRequest {
    /// Starts a request for `command` from the identity whose per-site public key
    /// is `idk`. Version defaults to [`VersionSet::current`], options to none.
    pub fn builder(command: Command, idk: IdentityKey) -> ClientRequestBuilder {
        ClientRequestBuilder {
            fields: Fields {
                version: VersionSet::current(),
                command,
                options: ClientOptions::NONE,
                idk,
                pidk: None,
                suk: None,
                vuk: None,
                ins: None,
                pins: None,
                button: None,
            },
        }
    }

    /// Parses a received `client=` value (see the type's documentation).
    pub fn parse(encoded: &str) -> Result<Self, MessageError> {
        let list = decode_list(encoded, FIELD, MAX_CLIENT_VALUE_LEN)?;
        let required = |name| {
            list.get(name)
                .ok_or(MessageError::Missing { field: FIELD, name })
        };
        let version = VersionSet::parse(required("ver")?)?;
        let command = Command::parse(required("cmd")?)?;
        let idk = public_key(required("idk")?, "idk")?;
        let pidk = list
            .get("pidk")
            .map(|v| public_key(v, "pidk"))
            .transpose()?;
        let suk = list
            .get("suk")
            .map(|v| ServerUnlockKey::from_base64url(v).map_err(|e| key_error("suk", e)))
            .transpose()?;
        let vuk = list
            .get("vuk")
            .map(|v| VerifyUnlockKey::from_base64url(v).map_err(|e| key_error("vuk", e)))
            .transpose()?;
        let ins = list
            .get("ins")
            .map(|v| indexed_secret(v, "ins"))
            .transpose()?;
        let pins = list
            .get("pins")
            .map(|v| indexed_secret(v, "pins"))
            .transpose()?;
        let options = list.get("opt").map(ClientOptions::parse).transpose()?;
        let button = list.get("btn").map(Button::parse).transpose()?;
        let fields = Fields {
            version,
            command,
            options: options.unwrap_or_default(),
            idk,
            pidk,
            suk,
            vuk,
            ins,
            pins,
            button,
        };
        fields.check()?;
        let unknown = list
            .iter()
            .filter(|(name, _)| !KNOWN.contains(name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok(Self {
            encoded: encoded.to_owned(),
            fields,
            unknown,
        })
    }

    /// The encoded `client=` value exactly as received or written: the bytes
    /// signatures cover.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// `ver=`: the versions the client supports.
    pub fn version(&self) -> &VersionSet {
        &self.fields.version
    }

    /// `cmd=`.
    pub fn command(&self) -> Command {
        self.fields.command
    }

    /// `opt=` (empty when absent).
    pub fn options(&self) -> ClientOptions {
        self.fields.options
    }

    /// `idk=`: the current identity's per-site public key.
    pub fn idk(&self) -> &IdentityKey {
        &self.fields.idk
    }

    /// `pidk=`: a previous identity's per-site public key.
    pub fn pidk(&self) -> Option<&IdentityKey> {
        self.fields.pidk.as_ref()
    }

    /// `suk=`: the Server Unlock Key of a new association.
    pub fn suk(&self) -> Option<&ServerUnlockKey> {
        self.fields.suk.as_ref()
    }

    /// `vuk=`: the Verify Unlock Key of a new association.
    pub fn vuk(&self) -> Option<&VerifyUnlockKey> {
        self.fields.vuk.as_ref()
    }

    /// `ins=`: the indexed secret for the previous reply's `sin`.
    pub fn ins(&self) -> Option<&IndexedSecret> {
        self.fields.ins.as_ref()
    }

    /// `pins=`: the same with the previous identity.
    pub fn pins(&self) -> Option<&IndexedSecret> {
        self.fields.pins.as_ref()
    }

    /// `btn=`: the answer to the previous reply's `ask`.
    pub fn button(&self) -> Option<Button> {
        self.fields.button
    }

    /// Parameters this crate does not know, in received order. They are covered
    /// by the signatures like every other line, and carry no meaning here.
    pub fn unknown_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.unknown.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The names [`ClientRequest`] understands.
const KNOWN: [&str; 10] = [
    "ver", "cmd", "opt", "idk", "pidk", "suk", "vuk", "ins", "pins", "btn",
];

/// Builds a [`ClientRequest`] in canonical form.
#[derive(Debug, Clone)]
pub struct ClientRequestBuilder {
    fields: Fields,
}

impl ClientRequestBuilder {
    /// Sets `ver=` (default: [`VersionSet::current`]).
    pub fn version(mut self, version: VersionSet) -> Self {
        self.fields.version = version;
        self
    }

    /// Sets `opt=`.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.fields.options = options;
        self
    }

    /// Sets `pidk=` (the request must then also be signed with `pids`).
    pub fn previous_identity(mut self, pidk: IdentityKey) -> Self {
        self.fields.pidk = Some(pidk);
        self
    }

    /// Sets `suk=` and `vuk=` for a new association (see
    /// [`crate::keys::RandomLockKey::lock`]).
    pub fn lock(mut self, suk: ServerUnlockKey, vuk: VerifyUnlockKey) -> Self {
        self.fields.suk = Some(suk);
        self.fields.vuk = Some(vuk);
        self
    }

    /// Sets `ins=`.
    pub fn indexed_secret(mut self, ins: IndexedSecret) -> Self {
        self.fields.ins = Some(ins);
        self
    }

    /// Sets `pins=` (needs `pidk=` and `ins=`).
    pub fn previous_indexed_secret(mut self, pins: IndexedSecret) -> Self {
        self.fields.pins = Some(pins);
        self
    }

    /// Sets `btn=`.
    pub fn button(mut self, button: Button) -> Self {
        self.fields.button = Some(button);
        self
    }

    /// Checks the pairing rules and encodes the canonical value.
    pub fn build(self) -> Result<ClientRequest, MessageError> {
        self.fields.check()?;
        let encoded = base64url::encode(self.fields.to_list()?.to_text());
        if encoded.len() > MAX_CLIENT_VALUE_LEN {
            return Err(MessageError::TooLong {
                field: FIELD,
                max: MAX_CLIENT_VALUE_LEN,
            });
        }
        Ok(ClientRequest {
            encoded,
            fields: self.fields,
            unknown: Vec::new(),
        })
    }
}

fn key_error(name: &'static str, source: KeyError) -> MessageError {
    MessageError::Key { name, source }
}

fn public_key(value: &str, name: &'static str) -> Result<IdentityKey, MessageError> {
    IdentityKey::from_base64url(value).map_err(|e| key_error(name, e))
}

fn indexed_secret(value: &str, name: &'static str) -> Result<IndexedSecret, MessageError> {
    IndexedSecret::from_base64url(value).map_err(|e| key_error(name, e))
}
