//! The transaction states. Each transition consumes the state it leaves, so a
//! command can only follow a finished query, and a reply can only be fed to
//! the state that sent the request it answers.

use rand_core::CryptoRngCore;

use super::{ClientError, Device, TransactionOptions};
use crate::keys::{
    BoundUrsSigner, IdentityLockKey, IdentityUnlockKey, RandomLockKey, RequestSigner,
    ServerUnlockKey, SiteSigner, UrsSigner, VerifyUnlockKey,
};
use crate::msg::{
    Ask, Button, ClientOptions, ClientRequest, Command, RequestBody, ServerReply, ServerValue, Tif,
    VersionSet,
};
use crate::url::SqrlUrl;

/// One HTTP request to make: POST `body` to `url` with content type
/// [`OutgoingRequest::CONTENT_TYPE`], then feed the response body back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    url: String,
    body: String,
    command: Command,
}

impl OutgoingRequest {
    /// The media type of the body.
    pub const CONTENT_TYPE: &'static str = crate::msg::CONTENT_TYPE;

    /// The HTTPS (or, for `qrl://`, HTTP) URL to POST to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The form body (`client=..&server=..&ids=..`).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The command this request carries.
    pub fn command(&self) -> Command {
        self.command
    }
}

/// What the query phase learned (SPEC 6 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryStatus {
    /// The site knows the current identity (tif `0x01`).
    Known,
    /// The site knows a previous identity (tif `0x02`): the one at `previous`
    /// in the list given to [`Querying::start`] (0 = newest).
    KnownByPrevious {
        /// Index into the previous identities.
        previous: usize,
    },
    /// The site knows neither the current nor any previous identity: a new
    /// account association.
    Unknown,
    /// SQRL is disabled for this identity (tif `0x08`); `previous` names the
    /// previous identity the site matched, if it was not the current one.
    Disabled {
        /// Index into the previous identities, if the match was by a previous one.
        previous: Option<usize>,
    },
    /// The current identity was superseded at this site (tif `0x200`); tell
    /// the user to update this device's identity. No command can follow.
    Superseded,
}

/// What the transaction owns throughout.
#[derive(Debug)]
struct Core {
    url: SqrlUrl,
    site_key: Box<dyn SiteSigner>,
    previous: Vec<Box<dyn SiteSigner>>,
    options: TransactionOptions,
    /// The last reply received: its body is the next `server=` value, its
    /// `qry` the next path, its `sin` the next `ins`.
    last_reply: Option<ServerReply>,
}

/// Everything needed to (re)send one command: a transient error makes the
/// client resend the same command against the fresh nut (SPEC 3.1).
#[derive(Debug)]
struct Draft {
    command: Command,
    options: ClientOptions,
    previous: Option<usize>,
    lock: Option<(ServerUnlockKey, VerifyUnlockKey)>,
    button: Option<Button>,
    urs_key: Option<BoundUrsSigner>,
}

impl Core {
    fn build(&self, draft: &Draft) -> Result<OutgoingRequest, ClientError> {
        let (server_value, url) = match &self.last_reply {
            None => (ServerValue::for_url(&self.url), self.url.post_url()),
            Some(reply) => (
                ServerValue::for_reply(reply),
                self.url.post_url_for_query(reply.qry())?,
            ),
        };
        let previous_key: Option<&dyn SiteSigner> = match draft.previous {
            Some(index) => Some(self.previous.get(index).map(Box::as_ref).ok_or(
                ClientError::ProtocolViolation("previous identity index out of range"),
            )?),
            None => None,
        };
        let mut builder = ClientRequest::builder(draft.command, self.site_key.public_key())
            .version(VersionSet::current())
            .options(draft.options);
        if let Some(key) = previous_key {
            builder = builder.previous_identity(key.public_key());
        }
        // SPEC 2.2: a `sin` in the previous reply asks for `ins` (and `pins`
        // when a previous identity is in play) on whatever command comes next.
        if let Some(sin) = self.last_reply.as_ref().and_then(ServerReply::sin) {
            builder = builder.indexed_secret(self.site_key.indexed_secret(sin)?);
            if let Some(key) = previous_key {
                builder = builder.previous_indexed_secret(key.indexed_secret(sin)?);
            }
        }
        if let Some((suk, vuk)) = &draft.lock {
            builder = builder.lock(*suk, *vuk);
        }
        if let Some(button) = draft.button {
            builder = builder.button(button);
        }
        let request = builder.build()?;
        let body = RequestBody::sign_with(
            &request,
            &server_value,
            self.site_key.as_ref(),
            previous_key,
            draft.urs_key.as_ref().map(|key| key as &dyn RequestSigner),
        )?;
        Ok(OutgoingRequest {
            url,
            body: body.to_form(),
            command: draft.command,
        })
    }

    /// Parses a reply, checks what every reply must satisfy, records it as the
    /// next `server=`, and sorts failures. `Ok(None)` is a transient error the
    /// caller may retry once.
    fn receive(
        &mut self,
        body: &str,
        sent: ClientOptions,
        retried: bool,
    ) -> Result<Option<ServerReply>, ClientError> {
        let reply = ServerReply::parse(body)?;
        reply
            .version()
            .highest_common(&VersionSet::current())
            .map_err(|_| ClientError::UnsupportedVersion)?;
        let tif = reply.tif();
        tif.check_defined()
            .map_err(|_| ClientError::UndefinedTif(tif))?;
        // Checked now so an unusable `qry` fails on the reply that sent it.
        self.url.post_url_for_query(reply.qry())?;
        self.last_reply = Some(reply.clone());
        if !tif.is_failure() {
            return Ok(Some(reply));
        }
        if tif.contains(Tif::TRANSIENT_ERROR) {
            return if retried {
                Err(ClientError::PageExpired)
            } else {
                Ok(None)
            };
        }
        Err(if tif.contains(Tif::IDENTITY_SUPERSEDED) {
            ClientError::Superseded(tif)
        } else if tif.contains(Tif::BAD_ID_ASSOCIATION) {
            ClientError::BadIdAssociation(tif)
        } else if tif.contains(Tif::FUNCTION_NOT_SUPPORTED) {
            ClientError::NotSupported(tif)
        } else if tif.contains(Tif::CLIENT_FAILURE) {
            ClientError::Rejected(tif)
        } else if tif == Tif::COMMAND_FAILED && !sent.contains(ClientOptions::NOIPTEST) {
            // PITFALLS 26: an IP mismatch without `noiptest` is exactly 0x40.
            ClientError::IpMismatch
        } else if tif.contains(Tif::SQRL_DISABLED) {
            ClientError::Disabled
        } else {
            ClientError::CommandFailed(tif)
        })
    }
}

/// The query phase: sends `query` (first with the newest previous identity's
/// `pidk`, then with older ones while the site knows neither) until the
/// site's view of the user is known.
#[derive(Debug)]
pub struct Querying {
    core: Core,
    draft: Draft,
    retried: bool,
}

/// What to do after a query reply.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum QueryStep {
    /// Send this request and feed its reply to the returned state (a retry
    /// after a transient error, or a query naming an older previous identity).
    Send(Querying, OutgoingRequest),
    /// The query phase is over.
    Done(Queried),
    /// The site saw this client at another IP address than the browser that
    /// showed the code, and refused the query (TIF exactly `0x40`). Only
    /// returned for cross-device transactions with
    /// [`TransactionOptions::test_ip_first`]; same-device ones fail with
    /// [`ClientError::IpMismatch`]. Tell the user what it may mean (a relayed
    /// QR code) and go on only on their explicit say-so.
    IpMismatch(IpMismatched),
}

/// A cross-device query was refused for an IP mismatch; see
/// [`QueryStep::IpMismatch`].
#[derive(Debug)]
pub struct IpMismatched {
    querying: Querying,
}

impl IpMismatched {
    /// The TIF of the refusal (`0x40`).
    pub fn tif(&self) -> Tif {
        self.querying
            .core
            .last_reply
            .as_ref()
            .map_or(Tif::COMMAND_FAILED, ServerReply::tif)
    }

    /// Goes on without the IP test: re-sends the query with `noiptest`, to the
    /// fresh `nut`/`qry` of the refusal (the site keeps the waiting browser with
    /// it). Every later request of the transaction carries `noiptest` too.
    pub fn continue_without_ip_test(self) -> Result<(Querying, OutgoingRequest), ClientError> {
        let mut querying = self.querying;
        querying.core.options.waive_ip_test();
        querying.draft.options = querying.core.options.query_options();
        querying.retried = false;
        let request = querying.core.build(&querying.draft)?;
        Ok((querying, request))
    }
}

impl Querying {
    /// Starts a transaction for `url` with the identity whose key for this
    /// site is `site_key`; `previous` holds the previous identities' keys for
    /// this site, newest first (at most four in S4 block 3). Returns the first
    /// `query` to send.
    ///
    /// The keys are [`SiteKey`](crate::keys::SiteKey)s, or signers that keep
    /// them in another process (see [`SiteSigner`]).
    pub fn start<S: SiteSigner + 'static>(
        url: SqrlUrl,
        site_key: S,
        previous: Vec<S>,
        options: TransactionOptions,
    ) -> Result<(Querying, OutgoingRequest), ClientError> {
        let previous = previous
            .into_iter()
            .map(|key| Box::new(key) as Box<dyn SiteSigner>)
            .collect();
        Self::start_boxed(url, Box::new(site_key), previous, options)
    }

    fn start_boxed(
        url: SqrlUrl,
        site_key: Box<dyn SiteSigner>,
        previous: Vec<Box<dyn SiteSigner>>,
        options: TransactionOptions,
    ) -> Result<(Querying, OutgoingRequest), ClientError> {
        let draft = Draft {
            command: Command::Query,
            options: options.query_options(),
            previous: if previous.is_empty() { None } else { Some(0) },
            lock: None,
            button: None,
            urs_key: None,
        };
        let core = Core {
            url,
            site_key,
            previous,
            options,
            last_reply: None,
        };
        let request = core.build(&draft)?;
        Ok((
            Querying {
                core,
                draft,
                retried: false,
            },
            request,
        ))
    }

    /// Feeds the reply to the last request sent.
    pub fn receive(mut self, body: &str) -> Result<QueryStep, ClientError> {
        let received = match self.core.receive(body, self.draft.options, self.retried) {
            // The retry after a transient error went to the fresh nut of that
            // error, which for an unknown or expired code belongs to no page
            // (SPEC 3.1): its IP test cannot match, and a failure there says
            // the page is gone, not that a live code was relayed. (Either way
            // nobody is signed in.)
            Err(ClientError::IpMismatch) if self.retried => return Err(ClientError::PageExpired),
            Err(ClientError::IpMismatch) if self.core.options.device() == Device::CrossDevice => {
                return Ok(QueryStep::IpMismatch(IpMismatched { querying: self }));
            }
            received => received?,
        };
        let Some(reply) = received else {
            self.retried = true;
            let request = self.core.build(&self.draft)?;
            return Ok(QueryStep::Send(self, request));
        };
        self.retried = false;
        let tif = reply.tif();
        // Same-device means the site tests the IP (no `noiptest`); a success
        // without the IP bit means it did not, so nothing vouches that the
        // browser is the one on this device.
        if self.core.options.device() == Device::SameDevice && !tif.contains(Tif::IP_MATCHED) {
            return Err(ClientError::IpMatchUnconfirmed(tif));
        }
        let previous = self.draft.previous;
        let matched_previous = if tif.contains(Tif::PREVIOUS_ID_MATCH) {
            Some(previous.ok_or(ClientError::ProtocolViolation(
                "previous identity matched, but the query named none",
            ))?)
        } else {
            None
        };
        let status = if tif.contains(Tif::IDENTITY_SUPERSEDED) {
            QueryStatus::Superseded
        } else if tif.contains(Tif::SQRL_DISABLED) {
            QueryStatus::Disabled {
                previous: if tif.contains(Tif::CURRENT_ID_MATCH) {
                    None
                } else {
                    matched_previous
                },
            }
        } else if tif.contains(Tif::CURRENT_ID_MATCH) {
            QueryStatus::Known
        } else if let Some(previous) = matched_previous {
            QueryStatus::KnownByPrevious { previous }
        } else {
            // SPEC 4.5: on neither match, re-query with the next older identity.
            let next = previous.map_or(0, |index| index + 1);
            if previous.is_some() && next < self.core.previous.len() {
                self.draft.previous = Some(next);
                let request = self.core.build(&self.draft)?;
                return Ok(QueryStep::Send(self, request));
            }
            QueryStatus::Unknown
        };
        Ok(QueryStep::Done(Queried {
            core: self.core,
            status,
            reply,
            button: None,
        }))
    }
}

/// The query phase is over: the caller chooses the command.
///
/// Each command method consumes the state, also when it refuses (a typed
/// error such as [`ClientError::WrongState`]), so look at
/// [`Queried::status`] before choosing; after a refusal, start again.
#[derive(Debug)]
pub struct Queried {
    core: Core,
    status: QueryStatus,
    reply: ServerReply,
    button: Option<Button>,
}

impl Queried {
    /// What the site knows.
    pub fn status(&self) -> QueryStatus {
        self.status
    }

    /// The last query reply's TIF.
    pub fn tif(&self) -> Tif {
        self.reply.tif()
    }

    /// Whether the site saw this client at the browser's IP address.
    pub fn ip_matched(&self) -> bool {
        self.reply.tif().contains(Tif::IP_MATCHED)
    }

    /// The last query reply.
    pub fn reply(&self) -> &ServerReply {
        &self.reply
    }

    /// The site's question, if any. Show it as plain text
    /// ([`crate::msg::plain_text`]) and answer with [`Queried::answer_ask`].
    pub fn ask(&self) -> Option<&Ask> {
        self.reply.ask()
    }

    /// The SUK the site returned, if any.
    pub fn server_unlock_key(&self) -> Option<&ServerUnlockKey> {
        self.reply.suk()
    }

    /// Records the user's answer to [`Queried::ask`]; the next command carries
    /// it as `btn=`.
    pub fn answer_ask(&mut self, button: Button) -> Result<(), ClientError> {
        let ask = self.reply.ask().ok_or(ClientError::NoAsk)?;
        if button
            .index()
            .is_some_and(|index| index > ask.buttons().len())
        {
            return Err(ClientError::NoSuchButton(button));
        }
        self.button = Some(button);
        Ok(())
    }

    /// Logs in (`ident`). For a user the site does not know, creates the
    /// association: `suk`+`vuk` from a fresh Random Lock Key and the identity's
    /// ILK (SPEC 4.4). Fails if the site knows only a previous identity (use
    /// [`Queried::ident_replacing_previous`]), or if SQRL is disabled or the
    /// identity superseded.
    pub fn ident(
        self,
        ilk: &IdentityLockKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        let lock = match self.status {
            QueryStatus::Known => None,
            QueryStatus::Unknown => Some(RandomLockKey::generate(rng).lock(ilk)?),
            QueryStatus::KnownByPrevious { previous } => {
                return Err(ClientError::PreviousUnlockKeyRequired { previous });
            }
            QueryStatus::Disabled { .. } => return Err(ClientError::Disabled),
            QueryStatus::Superseded => return Err(ClientError::Superseded(self.reply.tif())),
        };
        self.command(Command::Ident, None, lock, None)
    }

    /// Logs in and moves the site's association from the previous identity it
    /// matched to the current one: `ident` with `pidk`/`pids`, a new `suk`/`vuk`
    /// from the current ILK, and `urs` signed with the key made from `piuk`
    /// (that previous identity's IUK, from S4 block 3) and the SUK the site
    /// returned (SPEC 4.5, PITFALLS 24).
    pub fn ident_replacing_previous(
        self,
        ilk: &IdentityLockKey,
        piuk: &IdentityUnlockKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        self.ident_replacing_previous_signed(ilk, Box::new(piuk.clone()), rng)
    }

    /// As [`Queried::ident_replacing_previous`], with `urs` signed by `piuk`,
    /// a signer that may keep that previous identity's IUK in another process.
    pub fn ident_replacing_previous_signed(
        self,
        ilk: &IdentityLockKey,
        piuk: Box<dyn UrsSigner>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        let QueryStatus::KnownByPrevious { previous } = self.status else {
            return Err(self.wrong_state(Command::Ident));
        };
        let urs_key = self.bind_urs(piuk)?;
        let lock = RandomLockKey::generate(rng).lock(ilk)?;
        self.command(Command::Ident, Some(previous), Some(lock), Some(urs_key))
    }

    /// Binds a `urs` signer to the SUK the site returned.
    fn bind_urs(&self, signer: Box<dyn UrsSigner>) -> Result<BoundUrsSigner, ClientError> {
        let suk = self
            .reply
            .suk()
            .ok_or(ClientError::MissingServerUnlockKey)?;
        Ok(BoundUrsSigner::new(*suk, signer))
    }

    /// Disables SQRL logins for this account (`disable`, signed with `ids` only).
    pub fn disable(self) -> Result<(Commanding, OutgoingRequest), ClientError> {
        match self.status {
            QueryStatus::Known => self.command(Command::Disable, None, None, None),
            _ => Err(self.wrong_state(Command::Disable)),
        }
    }

    /// Re-enables SQRL logins (`enable` with `urs` from the current identity's
    /// IUK, i.e. the rescue code, and the SUK the site returned).
    pub fn enable(
        self,
        iuk: &IdentityUnlockKey,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        match self.status {
            QueryStatus::Disabled { previous: None } => self.with_urs(Command::Enable, iuk),
            _ => Err(self.wrong_state(Command::Enable)),
        }
    }

    /// Removes the SQRL association (`remove` with `urs`, as for `enable`).
    pub fn remove(
        self,
        iuk: &IdentityUnlockKey,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        match self.status {
            QueryStatus::Known | QueryStatus::Disabled { previous: None } => {
                self.with_urs(Command::Remove, iuk)
            }
            _ => Err(self.wrong_state(Command::Remove)),
        }
    }

    fn wrong_state(&self, command: Command) -> ClientError {
        ClientError::WrongState {
            command,
            status: self.status,
        }
    }

    fn with_urs(
        self,
        command: Command,
        iuk: &IdentityUnlockKey,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        let urs_key = self.bind_urs(Box::new(iuk.clone()))?;
        self.command(command, None, None, Some(urs_key))
    }

    fn command(
        self,
        command: Command,
        previous: Option<usize>,
        lock: Option<(ServerUnlockKey, VerifyUnlockKey)>,
        urs_key: Option<BoundUrsSigner>,
    ) -> Result<(Commanding, OutgoingRequest), ClientError> {
        let draft = Draft {
            command,
            options: self.core.options.client_options(),
            previous,
            lock,
            button: self.button,
            urs_key,
        };
        let request = self.core.build(&draft)?;
        Ok((
            Commanding {
                core: self.core,
                draft,
                retried: false,
            },
            request,
        ))
    }
}

/// A command (`ident`, `disable`, `enable`, `remove`) is on its way.
#[derive(Debug)]
pub struct Commanding {
    core: Core,
    draft: Draft,
    retried: bool,
}

/// What to do after a command reply.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum CommandStep {
    /// A transient error: send this retry and feed its reply to the state.
    Send(Commanding, OutgoingRequest),
    /// The command succeeded.
    Done(Completed),
}

impl Commanding {
    /// Feeds the reply to the last request sent.
    pub fn receive(mut self, body: &str) -> Result<CommandStep, ClientError> {
        match self.core.receive(body, self.draft.options, self.retried)? {
            None => {
                self.retried = true;
                let request = self.core.build(&self.draft)?;
                Ok(CommandStep::Send(self, request))
            }
            Some(reply) => Ok(CommandStep::Done(Completed {
                command: self.draft.command,
                reply,
            })),
        }
    }
}

/// A command succeeded: the transaction is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    command: Command,
    reply: ServerReply,
}

impl Completed {
    /// The command that succeeded.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The final TIF. Success is the absence of `0x40` alone: a new user's
    /// `ident` may or may not report `0x01` (PITFALLS 7).
    pub fn tif(&self) -> Tif {
        self.reply.tif()
    }

    /// The session URL for the browser, when the request carried `opt=cps`
    /// (SPEC 7): the localhost agent redirects the waiting browser there.
    pub fn cps_url(&self) -> Option<&str> {
        self.reply.url()
    }

    /// The final reply.
    pub fn reply(&self) -> &ServerReply {
        &self.reply
    }
}
