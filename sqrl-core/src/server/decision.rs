//! The outcome of one request: the TIF, the reply, the account change and what
//! the waiting browser should see.

use super::account::Mutation;
use super::conversation::{Conversation, ServerValueDigest};
use super::failure::Failure;
use super::nut::{Nut, RequestTarget};
use super::secret::SecretWrite;
use crate::keys::{IdentityKey, IndexedSecret, ServerUnlockKey};
use crate::msg::{Ask, Button, Command, MessageError, ServerReply, Tif, VersionSet};

/// What the login page waiting on this conversation should learn.
///
/// Nothing about the account reaches the browser before the user confirmed on
/// the device (an `ident`); a `query` only says that some client picked the
/// code up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrowserOutcome {
    /// Nothing changes for the page.
    Unchanged,
    /// A client sent a valid `query`: the page may say "confirm on your device".
    Scanned,
    /// `ident` succeeded without `cps`: log the waiting browser in to the account
    /// now associated with `idk` (after applying the mutation).
    LogIn {
        /// The identity key the account answers to.
        idk: IdentityKey,
    },
    /// `ident` succeeded with `cps` (SPEC 7): mint a single-use, short-lived
    /// session URL for the account of `idk`, pass it to
    /// [`Decision::finish`] (it goes out as `url=`), and abandon the browser
    /// login of the page (the client's browser arrives at the URL instead).
    ClientProvidedSession {
        /// The identity key the account answers to.
        idk: IdentityKey,
    },
    /// The login will not happen (identity disabled or superseded, SQRL
    /// disabled or removed by the user): the page may say so.
    Rejected,
}

/// The `ins`/`pins` a client sent in answer to the previous reply's `sin`
/// (SPEC 4.6). The decision checks them against the kept digest and says what
/// to keep ([`SecretWrite`]); a server may also use them as keys for data it
/// keeps for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSecrets {
    /// The `sin` they answer.
    pub sin: String,
    /// `ins`: from the current identity.
    pub ins: IndexedSecret,
    /// `pins`: from the previous identity, when the request had a `pidk`.
    pub pins: Option<IndexedSecret>,
}

/// The decision for one request (SPEC 3.2, 8). See [`super::Incoming::decide`]
/// for the driver's steps.
#[derive(Debug, Clone)]
pub struct Decision {
    pub(super) tif: Tif,
    pub(super) failure: Option<Failure>,
    pub(super) command: Option<Command>,
    pub(super) idk: Option<IdentityKey>,
    pub(super) mutation: Mutation,
    pub(super) browser: BrowserOutcome,
    pub(super) suk: Option<ServerUnlockKey>,
    pub(super) sin: Option<String>,
    pub(super) ask: Option<Ask>,
    pub(super) button: Option<Button>,
    pub(super) indexed_secrets: Option<IndexedSecrets>,
    pub(super) secret_write: Option<SecretWrite>,
    pub(super) version: VersionSet,
    pub(super) target: RequestTarget,
    pub(super) next: Conversation,
    /// The IP-match bit, kept to rebuild a failure as transient.
    pub(super) ip_bit: Tif,
    /// The state bits the server honestly knew before the command (0x04 when
    /// the IPs matched; 0x01/0x08 once `ids` verified), kept to rebuild a
    /// late failure as a client failure (SPEC 3.2, last paragraph).
    pub(super) state: Tif,
}

impl Decision {
    /// The TIF the reply carries.
    pub fn tif(&self) -> Tif {
        self.tif
    }

    /// Whether the command succeeded (TIF 0x40 clear).
    pub fn is_success(&self) -> bool {
        !self.tif.is_failure()
    }

    /// Why the request failed, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The command, when the body parsed.
    pub fn command(&self) -> Option<Command> {
        self.command
    }

    /// The request's `idk`, once `ids` verified.
    pub fn idk(&self) -> Option<&IdentityKey> {
        self.idk.as_ref()
    }

    /// The account change to apply atomically before replying.
    pub fn mutation(&self) -> &Mutation {
        &self.mutation
    }

    /// What the waiting page should learn.
    pub fn browser(&self) -> &BrowserOutcome {
        &self.browser
    }

    /// The `btn=` answer to the previous reply's `ask`, if one was asked.
    pub fn button(&self) -> Option<Button> {
        self.button
    }

    /// The `ins`/`pins` answering the previous reply's `sin`, once the request
    /// passed every check up to command semantics.
    pub fn indexed_secrets(&self) -> Option<&IndexedSecrets> {
        self.indexed_secrets.as_ref()
    }

    /// What to keep of the presented indexed secret, applied with
    /// [`Decision::mutation`] (see [`SecretWrite`]).
    pub fn secret_write(&self) -> Option<&SecretWrite> {
        self.secret_write.as_ref()
    }

    /// The SUK the reply returns, if any (SPEC 3: `opt=suk`, TIF 0x02, or a
    /// disabled account; PITFALLS 24).
    pub fn suk(&self) -> Option<&ServerUnlockKey> {
        self.suk.as_ref()
    }

    /// Tells the person at the device which browser this login would sign
    /// in, when the device is not on that browser's network (TIF 0x04 clear):
    /// `notice` (the driver's description of the waiting browser: its
    /// address, kind, how long ago its page opened) becomes the first
    /// paragraph of the reply's `ask`, or the whole question when the site
    /// asks none. A code relayed from an attacker's screen (QRLJacking) then
    /// names a browser the victim does not recognise, before they confirm.
    ///
    /// Only where SPEC 3 allows an `ask`: a successful `query` of a known,
    /// enabled identity with a page waiting. Returns whether the notice was
    /// added.
    pub fn describe_waiting_browser(&mut self, notice: &str) -> bool {
        if !self.wants_browser_description() {
            return false;
        }
        self.ask = Some(match self.ask.take() {
            Some(ask) => ask.with_preface(notice),
            None => Ask::new(notice),
        });
        true
    }

    /// Whether [`Decision::describe_waiting_browser`] would add a notice, so
    /// a driver reads the waiting browser's details only then.
    pub fn wants_browser_description(&self) -> bool {
        self.command == Some(Command::Query)
            && self.is_success()
            && matches!(self.browser, BrowserOutcome::Scanned)
            && self.tif.contains(Tif::CURRENT_ID_MATCH)
            && !self.tif.contains(Tif::SQRL_DISABLED)
            && !self.tif.contains(Tif::IP_MATCHED)
    }

    /// The same request answered as a transient failure (TIF 0x60 with the
    /// state bits already known), nothing changed: for a driver that could
    /// not apply [`Decision::mutation`] and cannot decide again (the
    /// in-memory reference server). The client retries with the fresh nut
    /// and sees the new state.
    pub(super) fn into_transient_failure(self) -> Decision {
        // The state the decision reported, as far as the records say it.
        let state = self.tif & (Tif::CURRENT_ID_MATCH | Tif::SQRL_DISABLED) | self.ip_bit;
        Decision {
            tif: Failure::Conflict.reply_tif(state),
            failure: Some(Failure::Conflict),
            mutation: Mutation::None,
            browser: BrowserOutcome::Unchanged,
            suk: None,
            ask: None,
            indexed_secrets: None,
            secret_write: None,
            // `sin` stays: with one configured, every reply carries it.
            ..self
        }
    }

    /// The same request answered as a client failure (TIF 0xC0 with the state
    /// bits known before the command), nothing changed, for a check that
    /// comes after command semantics: a state-changing command that answered
    /// no `sin` ([`Failure::UnansweredSin`]), or a presented `ins`/`pins`
    /// that differs from the digest kept for the account
    /// ([`Failure::IndexedSecretMismatch`]).
    ///
    /// Why 0xC0: SPEC 3.2 answers malformed parameters and missing or bad
    /// signatures with it, and a wrong indexed secret is a bad
    /// client-supplied proof of the same kind. Not 0x60: nothing transient
    /// went wrong, a retry cannot succeed, and two identical 0x60 replies mean
    /// "the page expired" to the client (SPEC 3.1). Not 0x100: that bit names
    /// a nut bound to another identity (SPEC 8.1).
    pub(super) fn into_client_failure(self, failure: Failure) -> Decision {
        Decision {
            tif: failure.reply_tif(self.state),
            failure: Some(failure),
            mutation: Mutation::None,
            browser: BrowserOutcome::Unchanged,
            suk: None,
            ask: None,
            indexed_secrets: None,
            secret_write: None,
            ..self
        }
    }

    /// Builds the reply with the next nut (fresh, unpredictable, see
    /// [`Nut::generate`]) and returns it with everything the driver commits
    /// before sending it: the conversation record to store under that nut
    /// (its expiry final, see [`super::Policy::with_nut_lifetime`]), the
    /// account change and the indexed secret to keep.
    ///
    /// `cps_url` is the session URL minted for
    /// [`BrowserOutcome::ClientProvidedSession`]; it is sent as `url=` only
    /// then, and ignored otherwise. Errors come only from values the server
    /// supplies (a `cps_url` that is not printable ASCII, a reply over
    /// [`crate::msg::MAX_REPLY_LEN`]), never from the client's request.
    pub fn finish(self, next_nut: Nut, cps_url: Option<&str>) -> Result<Issued, MessageError> {
        let qry = self.target.qry(&next_nut);
        let mut builder =
            ServerReply::builder(next_nut.as_str(), self.tif, qry).version(self.version.clone());
        if let (BrowserOutcome::ClientProvidedSession { .. }, Some(url)) = (&self.browser, cps_url)
        {
            builder = builder.url(url);
        }
        if let Some(sin) = &self.sin {
            builder = builder.sin(sin.as_str());
        }
        if let Some(suk) = self.suk {
            builder = builder.suk(suk);
        }
        if let Some(ask) = &self.ask {
            builder = builder.ask(ask.clone());
        }
        let reply = builder.build()?;
        let mut conversation = self.next;
        conversation.expected_server = vec![ServerValueDigest::of(reply.as_str())];
        conversation.sin = self.sin;
        conversation.asked = self.ask.is_some();
        Ok(Issued {
            nut: next_nut,
            reply,
            conversation,
            mutation: self.mutation,
            secret_write: self.secret_write,
            command: self.command,
            failure: self.failure,
            button: self.button,
        })
    }
}

/// A reply ready to send, with everything the driver commits, in one
/// transaction, before it sends it.
#[derive(Debug, Clone)]
#[must_use = "the mutation, the secret and the conversation must be committed before the reply is sent"]
pub struct Issued {
    /// The nut the reply hands out: the key to store `conversation` under.
    pub nut: Nut,
    /// The reply. Its [`ServerReply::as_str`] is the HTTP body.
    pub reply: ServerReply,
    /// The record of the next conversation step.
    pub conversation: Conversation,
    /// The account change ([`Decision::mutation`]).
    pub mutation: Mutation,
    /// The indexed secret to keep ([`Decision::secret_write`]).
    pub secret_write: Option<SecretWrite>,
    /// The command, when the body parsed (for logs and metrics).
    pub command: Option<Command>,
    /// Why the request failed, if it did (for logs and metrics; the client
    /// learns only the TIF).
    pub failure: Option<Failure>,
    /// The `btn=` answer to the previous reply's `ask`.
    pub button: Option<Button>,
}

impl Issued {
    /// The HTTP response body (`text/plain`, base64url of the reply lines).
    pub fn body(&self) -> &str {
        self.reply.as_str()
    }
}
