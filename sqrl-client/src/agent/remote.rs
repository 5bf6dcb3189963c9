//! The client's side of the agent's socket: signers whose keys stay in the
//! running `sqrl agent`. `sqrl login` asks the agent for a site's public keys
//! once, then for each signature (and indexed secret) as the transaction
//! needs it; every signature is checked against the public key before use.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sqrl_core::base64url;
use sqrl_core::keys::{
    IdentityKey, IdentityLockKey, IndexedSecret, RequestSigner, ServerUnlockKey, Signature,
    SignerError, SiteSigner, UrsSigner,
};
use sqrl_core::url::SiteKeyString;

use super::socket::{request, socket_path};
use crate::error::{Error, Result};
use crate::session::IdentityKeys;
use crate::store::Store;

/// How to reach the agent, and which of its identities to ask for.
#[derive(Debug)]
struct Link {
    socket: PathBuf,
    identity: String,
    store: String,
}

/// An answer from the agent as the client reads it; the indexed secret's text
/// is wiped when it drops.
#[derive(serde::Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct Answer {
    error: Option<String>,
    message: Option<String>,
    identity: Option<String>,
    idk: Option<String>,
    #[serde(default)]
    pidk: Vec<String>,
    ilk: Option<String>,
    signature: Option<String>,
    ins: Option<String>,
    #[zeroize(skip)]
    #[serde(default)]
    sqrl_only: bool,
    #[zeroize(skip)]
    #[serde(default)]
    hard_lock: bool,
}

/// Why the agent did not answer a request as asked.
enum Refused {
    NotRunning,
    Locked,
    OtherIdentity(String),
    Failed(Error),
}

impl From<Error> for Refused {
    fn from(error: Error) -> Self {
        Refused::Failed(error)
    }
}

fn malformed(what: &str) -> Error {
    Error::Agent(format!("the agent's answer holds a malformed {what}"))
}

impl Link {
    /// Sends `op` with `fields` (and the identity it is for) and reads the answer.
    fn ask(&self, op: &str, mut fields: Value) -> std::result::Result<Answer, Refused> {
        fields["op"] = json!(op);
        fields["identity"] = json!(self.identity);
        fields["store"] = json!(self.store);
        let line = request(&self.socket, &fields)?.ok_or(Refused::NotRunning)?;
        let answer: Answer = serde_json::from_str(&line).map_err(|e| {
            Error::Agent(format!("the agent's answer is not what was expected: {e}"))
        })?;
        match answer.error.as_deref() {
            None => Ok(answer),
            Some("locked") => Err(Refused::Locked),
            Some("other_identity") => Err(Refused::OtherIdentity(
                answer.identity.clone().unwrap_or_default(),
            )),
            Some(other) => Err(Refused::Failed(Error::Agent(format!(
                "the agent refused: {}",
                answer.message.as_deref().unwrap_or(other)
            )))),
        }
    }

    /// As [`Link::ask`], during a transaction: any refusal is the signer's failure.
    fn ask_signing(&self, op: &str, fields: Value) -> std::result::Result<Answer, SignerError> {
        self.ask(op, fields).map_err(|refused| {
            SignerError::Unavailable(match refused {
                Refused::NotRunning => "the agent stopped during the transaction".to_owned(),
                Refused::Locked => {
                    "the agent locked itself during the transaction; try again".to_owned()
                }
                Refused::OtherIdentity(other) => {
                    format!("the agent now holds identity {other:?}")
                }
                Refused::Failed(error) => error.one_line(),
            })
        })
    }

    /// Asks for a signature of `message` and checks it with `public_key`: an
    /// agent that signed with another key is caught here, not by the site.
    fn signature(
        &self,
        op: &str,
        mut fields: Value,
        message: &[u8],
        verify_with: Option<&IdentityKey>,
    ) -> std::result::Result<Signature, SignerError> {
        fields["message"] = json!(base64url::encode(message));
        let answer = self.ask_signing(op, fields)?;
        let text = answer
            .signature
            .as_deref()
            .ok_or_else(|| SignerError::Unavailable("the agent sent no signature".to_owned()))?;
        let signature = Signature::from_base64url(text, "signature")
            .map_err(|e| SignerError::Unavailable(format!("the agent's signature: {e}")))?;
        if let Some(key) = verify_with {
            key.verify(message, &signature).map_err(|_| {
                SignerError::Unavailable(
                    "the agent's signature does not verify with the key it named".to_owned(),
                )
            })?;
        }
        Ok(signature)
    }
}

/// Which of the identity's keys for a site.
#[derive(Debug, Clone, Copy)]
enum Which {
    Current,
    Previous(usize),
}

/// Signs with one of the identity's keys for one site, in the agent.
#[derive(Debug)]
struct AgentSiteSigner {
    link: Arc<Link>,
    site: SiteKeyString,
    which: Which,
    public_key: IdentityKey,
}

impl AgentSiteSigner {
    /// The request fields naming this signer's key.
    fn key_fields(&self) -> Value {
        let mut fields = json!({
            "site": self.site.domain(),
            "alt_id": self.site.alt_id(),
            "key": "current",
        });
        if let Which::Previous(index) = self.which {
            fields["key"] = json!("previous");
            fields["index"] = json!(index);
        }
        fields
    }
}

impl RequestSigner for AgentSiteSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Signature, SignerError> {
        self.link
            .signature("sign", self.key_fields(), message, Some(&self.public_key))
    }
}

impl SiteSigner for AgentSiteSigner {
    fn public_key(&self) -> IdentityKey {
        self.public_key
    }

    fn indexed_secret(&self, sin: &str) -> std::result::Result<IndexedSecret, SignerError> {
        let mut fields = self.key_fields();
        fields["sin"] = json!(sin);
        let answer = self.link.ask_signing("index", fields)?;
        let text = answer.ins.as_deref().ok_or_else(|| {
            SignerError::Unavailable("the agent sent no indexed secret".to_owned())
        })?;
        IndexedSecret::from_base64url(text)
            .map_err(|e| SignerError::Unavailable(format!("the agent's indexed secret: {e}")))
    }
}

/// Signs `urs` with a previous identity's IUK, in the agent.
#[derive(Debug)]
struct AgentUrsSigner {
    link: Arc<Link>,
    previous: usize,
}

impl UrsSigner for AgentUrsSigner {
    fn sign_urs(
        &self,
        suk: &ServerUnlockKey,
        message: &[u8],
    ) -> std::result::Result<Signature, SignerError> {
        // The site checks `urs` against the VUK it stored; the client has no
        // key to check it with.
        let fields = json!({"previous": self.previous, "suk": suk.to_base64url()});
        self.link.signature("sign_urs", fields, message, None)
    }
}

/// The running agent's identity, for one site: its public keys, and signers
/// that ask the agent. Nothing here is secret.
pub struct AgentKeys {
    link: Arc<Link>,
    site: SiteKeyString,
    idk: IdentityKey,
    previous: Vec<IdentityKey>,
    ilk: IdentityLockKey,
    sqrl_only: bool,
    hard_lock: bool,
}

impl core::fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AgentKeys")
            .field("site", &self.site.domain())
            .finish_non_exhaustive()
    }
}

/// What asking the agent to sign for a site came to.
#[derive(Debug)]
pub enum AgentAnswer {
    /// The agent signs for the site.
    Keys(Box<AgentKeys>),
    /// No agent is running.
    NotRunning,
    /// An agent runs but holds no unlocked identity (idle timeout, `agent lock`).
    Locked,
    /// An agent runs for another identity or configuration directory.
    OtherIdentity(String),
}

fn identity_key(text: &str) -> Result<IdentityKey> {
    IdentityKey::from_base64url(text).map_err(|_| malformed("public key"))
}

impl AgentKeys {
    /// Asks the agent for `identity`'s public keys for `site`.
    pub fn fetch(store: &Store, identity: &str, site: &SiteKeyString) -> Result<AgentAnswer> {
        let link = Arc::new(Link {
            socket: socket_path(store),
            identity: identity.to_owned(),
            store: store.root().to_string_lossy().into_owned(),
        });
        let fields = json!({"site": site.domain(), "alt_id": site.alt_id()});
        let answer = match link.ask("site", fields) {
            Ok(answer) => answer,
            Err(Refused::NotRunning) => return Ok(AgentAnswer::NotRunning),
            Err(Refused::Locked) => return Ok(AgentAnswer::Locked),
            Err(Refused::OtherIdentity(other)) => return Ok(AgentAnswer::OtherIdentity(other)),
            Err(Refused::Failed(error)) => return Err(error),
        };
        let idk = identity_key(answer.idk.as_deref().ok_or_else(|| malformed("idk"))?)?;
        let previous = answer
            .pidk
            .iter()
            .map(|text| identity_key(text))
            .collect::<Result<Vec<_>>>()?;
        let ilk = answer
            .ilk
            .as_deref()
            .and_then(|text| base64url::decode_array::<32>(text).ok())
            .ok_or_else(|| malformed("identity lock key"))?;
        Ok(AgentAnswer::Keys(Box::new(AgentKeys {
            link,
            site: site.clone(),
            idk,
            previous,
            ilk: IdentityLockKey::from_bytes(ilk),
            sqrl_only: answer.sqrl_only,
            hard_lock: answer.hard_lock,
        })))
    }

    /// Only the site named to the agent: signers for any other would sign
    /// with that other site's keys, unasked for.
    fn check_site(&self, site: &SiteKeyString) -> Result<()> {
        if site.domain() == self.site.domain() && site.alt_id() == self.site.alt_id() {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "the agent was asked to sign for {}, not for {}",
                self.site.domain(),
                site.domain()
            )))
        }
    }

    fn signer(&self, which: Which, public_key: IdentityKey) -> Box<dyn SiteSigner> {
        Box::new(AgentSiteSigner {
            link: Arc::clone(&self.link),
            site: self.site.clone(),
            which,
            public_key,
        })
    }
}

impl IdentityKeys for AgentKeys {
    fn site_signer(&self, site: &SiteKeyString) -> Result<Box<dyn SiteSigner>> {
        self.check_site(site)?;
        Ok(self.signer(Which::Current, self.idk))
    }

    fn previous_site_signers(&self, site: &SiteKeyString) -> Result<Vec<Box<dyn SiteSigner>>> {
        self.check_site(site)?;
        Ok(self
            .previous
            .iter()
            .enumerate()
            .map(|(index, key)| self.signer(Which::Previous(index), *key))
            .collect())
    }

    fn lock_key(&self) -> Result<IdentityLockKey> {
        Ok(self.ilk)
    }

    fn previous_urs_signer(&self, index: usize) -> Result<Option<Box<dyn UrsSigner>>> {
        Ok((index < self.previous.len()).then(|| {
            Box::new(AgentUrsSigner {
                link: Arc::clone(&self.link),
                previous: index,
            }) as Box<dyn UrsSigner>
        }))
    }

    fn sqrl_only_and_hard_lock(&self) -> (bool, bool) {
        (self.sqrl_only, self.hard_lock)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::os::unix::net::UnixListener;

    use sqrl_core::keys::IdentityUnlockKey;

    use super::*;

    /// A stand-in agent on a temporary socket: reads each request line and
    /// answers `answer`.
    fn stand_in_agent(answer: String) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).unwrap();
                stream.write_all(format!("{answer}\n").as_bytes()).unwrap();
            }
        });
        (dir, socket)
    }

    fn signer_at(socket: PathBuf, public_key: IdentityKey) -> AgentSiteSigner {
        AgentSiteSigner {
            link: Arc::new(Link {
                socket,
                identity: "me".to_owned(),
                store: String::new(),
            }),
            site: SiteKeyString::new("example.com"),
            which: Which::Current,
            public_key,
        }
    }

    #[test]
    fn a_signature_by_another_key_than_the_one_named_is_refused() {
        let imk = IdentityUnlockKey::from_bytes([5; 32]).master_key();
        let key = imk.site_key(&SiteKeyString::new("example.com"));
        let other = imk.site_key(&SiteKeyString::new("example.org"));
        let message = b"client-then-server";

        let wrong = json!({"signature": other.sign(message).to_base64url()}).to_string();
        let (_dir, socket) = stand_in_agent(wrong);
        let refused = signer_at(socket, key.public_key()).sign(message);
        assert!(
            matches!(&refused, Err(SignerError::Unavailable(why)) if why.contains("does not verify")),
            "{refused:?}"
        );

        // The check passes the right key's signature.
        let right = json!({"signature": key.sign(message).to_base64url()}).to_string();
        let (_dir, socket) = stand_in_agent(right);
        let signature = signer_at(socket, key.public_key()).sign(message).unwrap();
        key.public_key().verify(message, &signature).unwrap();
    }

    #[test]
    fn an_agent_locked_mid_transaction_is_a_signer_failure_in_words() {
        let (_dir, socket) = stand_in_agent(json!({"error": "locked"}).to_string());
        let key = IdentityUnlockKey::from_bytes([5; 32])
            .master_key()
            .site_key(&SiteKeyString::new("example.com"));
        let failed = signer_at(socket, key.public_key()).indexed_secret("0");
        assert!(
            matches!(&failed, Err(SignerError::Unavailable(why)) if why.contains("locked")),
            "{failed:?}"
        );
    }
}
