//! One POST to the client endpoint, parsed, then decided in SPEC 3.2 order.

use std::net::IpAddr;

use super::account::{AccountOptions, AccountRecord, Lookups, Mutation, Records};
use super::conversation::Conversation;
use super::decision::{BrowserOutcome, Decision, IndexedSecrets};
use super::failure::Failure;
use super::nut::{Nut, RequestTarget};
use super::policy::Policy;
use super::secret::{self, Holder};
use crate::keys::ServerUnlockKey;
use crate::msg::{ClientOptions, ClientRequest, Command, MessageError, RequestBody, Tif};

/// A received `POST /cli.sqrl`, parsed and its identity signatures checked;
/// [`Incoming::decide`] decides it against what storage holds.
///
/// ```text
/// let incoming = Incoming::parse(path_and_query, body, client_ip);
/// // One transaction, the identities of incoming.lookups() locked:
/// let conversation = store.take(incoming.nut());   // delete-and-return: used once
/// let records = store.records(incoming.lookups(), conversation.sin);  // locked
/// let mut decision = incoming.decide(&policy, conversation, records, now);
/// let url = mint_if_cps(decision.browser());
/// let issued = decision.finish(Nut::generate(rng), url)?;
/// store.apply(&issued.mutation, &issued.secret_write);
/// store.put(&issued.nut, &issued.conversation);
/// // commit, then send issued.body()
/// ```
///
/// See the [module documentation](super) for the driver's steps in full.
///
/// The conversation is taken out of storage *before* the decision, whatever
/// the request holds: a nut is single-use even when the request fails (SPEC
/// 3.2 step 2, PITFALLS 27), and [`Incoming::decide`] consumes it by value.
#[derive(Debug, Clone)]
pub struct Incoming {
    target: RequestTarget,
    client_ip: IpAddr,
    parsed: Result<Parsed, MessageError>,
}

#[derive(Debug, Clone)]
struct Parsed {
    body: RequestBody,
    request: ClientRequest,
    /// Whether `ids` (and `pids`) verify. Checked at parse time: it is the
    /// costly part of a decision (Ed25519) and needs no stored state, so a
    /// driver pays it before it locks anything, and a decision made while a
    /// store holds its locks stays cheap.
    signatures: Result<(), MessageError>,
}

impl Incoming {
    /// Parses a request and checks its identity signatures (`ids`, `pids`).
    /// Never fails: a malformed body or a bad signature is remembered and
    /// answered by [`Incoming::decide`] (TIF 0xC0, 0x50 for an unknown
    /// command) in SPEC 3.2 order, because even a malformed request consumes
    /// its nut and gets a reply with a fresh one.
    ///
    /// `path_and_query` is the request target (`/cli.sqrl?nut=...`);
    /// `client_ip` is the peer address without port, after the driver's
    /// trusted-proxy resolution (PITFALLS 26).
    pub fn parse(path_and_query: &str, body: &str, client_ip: IpAddr) -> Self {
        let parsed = RequestBody::parse(body).and_then(|body| {
            let request = body.client_request()?;
            let signatures = body.verify_identity_signatures(&request);
            Ok(Parsed {
                body,
                request,
                signatures,
            })
        });
        Self {
            target: RequestTarget::parse(path_and_query),
            client_ip,
            parsed,
        }
    }

    /// The nut this request continues: the key of the conversation to take.
    pub fn nut(&self) -> Option<&Nut> {
        self.target.nut()
    }

    /// The keys whose records [`Incoming::decide`] needs; `None` when the body
    /// is malformed (the decision then needs no records).
    pub fn lookups(&self) -> Option<Lookups> {
        self.parsed.as_ref().ok().map(|parsed| Lookups {
            idk: *parsed.request.idk(),
            pidk: parsed.request.pidk().copied(),
        })
    }

    /// The command, when the body parsed.
    pub fn command(&self) -> Option<Command> {
        self.parsed
            .as_ref()
            .ok()
            .map(|parsed| parsed.request.command())
    }

    /// Whether deciding this request can change nothing the server keeps: a
    /// `query` (PITFALLS 28), or a body that does not parse. Its decision has
    /// [`Mutation::None`](super::Mutation::None) and no indexed secret to
    /// keep, and it logs no browser in; it still uses up its nut, issues the
    /// next conversation and may tell a waiting page it was scanned. A driver
    /// may decide it without taking its write path.
    pub fn changes_nothing(&self) -> bool {
        self.parsed
            .as_ref()
            .map_or(true, |parsed| parsed.request.command() == Command::Query)
    }

    /// Decides the request against the conversation taken for
    /// [`Incoming::nut`] (`None` if there was none) and the records for
    /// [`Incoming::lookups`], at `now` on the clock of
    /// [`Conversation::expires_at`]. Pure: the same inputs give the same
    /// decision, so a driver whose commit lost a race may decide again.
    ///
    /// Order (SPEC 3.2): the body parses (else 0xC0 / 0x50); `server=` echoes
    /// what was sent and the nut is live (else 0x60, but 0xC0 if a signature
    /// also fails); `ids`, `pids` and `urs` verify, and `ins`/`pins` answer a
    /// pending `sin` (else 0xC0); the IP matches unless `noiptest` (else
    /// exactly 0x40); then the version (0x50), the identity binding (0x1C0),
    /// the superseded list (0x200 on `query`, 0x240 otherwise) and the command.
    /// Failure replies report the state bits the server honestly knows: 0x04
    /// when the IPs match, and 0x01/0x08 once `ids` verified.
    ///
    /// With a `sin` configured ([`Policy::with_sin`]) every reply carries it,
    /// and a command that may change state and would succeed fails instead
    /// (0xC0 plus state) when it answers no `sin`. An answer that differs from
    /// the digest kept for the account ([`Records::current_secret`]) fails the
    /// same way ([`Failure::IndexedSecretMismatch`]). Those checks come last,
    /// so that every other failure keeps its own TIF: they only stop a
    /// command that would otherwise succeed. A success then says what to keep
    /// of the secret ([`Decision::secret_write`]).
    pub fn decide(
        self,
        policy: &Policy,
        conversation: Option<Conversation>,
        records: Records,
        now: u64,
    ) -> Decision {
        let holder = Holder::of(&records, self.lookups().as_ref());
        let decision = self.decide_steps(policy, conversation, records, now);
        let decision = match decision.command {
            // A state-changing command must answer the sin (see
            // `Policy::with_sin`): without this, a client that skips the
            // `query` would never present its indexed secret.
            Some(command)
                if policy.sin().is_some()
                    && command != Command::Query
                    && decision.is_success()
                    && decision.indexed_secrets.is_none() =>
            {
                return decision.into_client_failure(Failure::UnansweredSin(command.as_str()));
            }
            _ => decision,
        };
        if !decision.is_success() {
            return decision;
        }
        let Some(secrets) = &decision.indexed_secrets else {
            return decision;
        };
        match secret::judge(secrets, holder.as_ref(), &decision.mutation) {
            Err(secret::Mismatch) => decision.into_client_failure(Failure::IndexedSecretMismatch),
            Ok(write) => Decision {
                secret_write: write,
                ..decision
            },
        }
    }

    /// [`Incoming::decide`] up to the `sin` rule.
    fn decide_steps(
        self,
        policy: &Policy,
        conversation: Option<Conversation>,
        records: Records,
        now: u64,
    ) -> Decision {
        let Incoming {
            target,
            client_ip,
            parsed,
        } = self;

        // Step 2 (nut): a live conversation continues; a request naming an
        // unknown or expired nut still gets a fresh nut, in a conversation
        // with no browser behind it, so the client can retry once.
        let (live, stale) = match conversation {
            Some(conversation) if !conversation.is_expired(now) => (Some(conversation), None),
            Some(_) => (None, Some(Failure::ExpiredNut)),
            None => (None, Some(Failure::UnknownNut)),
        };
        let ip_matched = live
            .as_ref()
            .is_some_and(|conversation| conversation.ip_matches(client_ip));
        let ip_bit = if ip_matched {
            Tif::IP_MATCHED
        } else {
            Tif::NONE
        };
        let next = match &live {
            Some(conversation) => {
                let mut next = conversation.clone();
                // A page's conversation gets a fresh lifetime with each
                // nut; one without a page keeps its retry window.
                if let (Some(_), Some(lifetime)) = (&next.browser, policy.nut_lifetime()) {
                    next.expires_at = now.saturating_add(lifetime);
                }
                next
            }
            None => Conversation::for_urls([], None, now.saturating_add(policy.retry_window())),
        };
        let mut decision = Decision {
            tif: Tif::NONE,
            failure: None,
            command: None,
            idk: None,
            mutation: Mutation::None,
            browser: BrowserOutcome::Unchanged,
            suk: None,
            // Every reply carries a configured sin (`Policy::with_sin`).
            sin: policy.sin().map(str::to_owned),
            ask: None,
            button: None,
            indexed_secrets: None,
            secret_write: None,
            version: policy.versions().clone(),
            target,
            next,
            ip_bit,
            state: ip_bit,
        };

        let Parsed {
            body,
            request,
            signatures,
        } = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return fail(decision, Failure::Malformed(error)),
        };
        decision.command = Some(request.command());

        // Step 3 for the identity keys. Checked before the transient verdict:
        // 0x60 is only for requests whose signatures are fine (SPEC 3.2).
        if let Err(error) = signatures {
            return fail(decision, Failure::Signature(error));
        }
        decision.idk = Some(*request.idk());
        let current = records.current.as_ref();
        // A previous identity counts only when the current one is unknown: a
        // client replaces a previous identity only then (SPEC 4.5).
        let previous = match (current, request.pidk()) {
            (None, Some(_)) => records.previous.as_ref(),
            _ => None,
        };
        let mut known = Tif::NONE;
        if let Some(account) = current {
            known |= Tif::CURRENT_ID_MATCH;
            if account.disabled {
                known |= Tif::SQRL_DISABLED;
            }
        }
        // What is known of a previous identity is state too, so failure
        // replies report it (SPEC 3.2: every bit the server honestly knows).
        // Success replies describe the state after processing and set it
        // themselves: a replacing `ident` answers without 0x02.
        if let Some(account) = previous {
            known |= Tif::PREVIOUS_ID_MATCH;
            if account.disabled {
                known |= Tif::SQRL_DISABLED;
            }
        }
        let state = known | ip_bit;
        decision.state = state;

        // Step 3 for `urs`: verified whenever sent, with the VUK of the
        // account the command acts on, and required where SPEC 2.2 says so.
        let unlock_vuk = current.or(previous).map(|account| account.vuk);
        let replaces =
            request.command() == Command::Ident && current.is_none() && previous.is_some();
        let urs_required = request.command().requires_urs() || replaces;
        match (body.urs(), unlock_vuk) {
            (Some(_), Some(vuk)) => {
                if let Err(error) = body.verify_urs(&vuk) {
                    return fail(decision, Failure::Signature(error));
                }
            }
            (Some(_), None) => {
                return fail(decision, Failure::UnverifiableUrs);
            }
            (None, _) if urs_required => {
                return fail(decision, Failure::MissingUrs);
            }
            (None, _) => {}
        }

        // Steps 1 and 2: `server=` and the nut. The signatures are fine, so
        // this is the transient error the client may retry.
        let live = match (live, stale) {
            (Some(conversation), _) if conversation.echoes(body.server_value()) => conversation,
            (Some(_), _) => {
                return fail(decision, Failure::ServerValueMismatch);
            }
            (None, reason) => {
                let reason = reason.unwrap_or(Failure::UnknownNut);
                return fail(decision, reason);
            }
        };

        // A pending `sin` must be answered (SPEC 3 `sin`).
        let indexed_secrets = match &live.sin {
            Some(sin) => {
                let Some(ins) = request.ins() else {
                    return fail(decision, Failure::MissingIndexedSecret("ins"));
                };
                if request.pidk().is_some() && request.pins().is_none() {
                    return fail(decision, Failure::MissingIndexedSecret("pins"));
                }
                Some(IndexedSecrets {
                    sin: sin.clone(),
                    ins: ins.clone(),
                    pins: request.pins().cloned(),
                })
            }
            None => None,
        };

        // Step 4: the IP test. Without `noiptest` a mismatch is exactly 0x40,
        // no other bit (SPEC 2.2, PITFALLS 26).
        let options = request.options();
        if !ip_matched && !options.contains(ClientOptions::NOIPTEST) {
            return fail(decision, Failure::IpMismatch);
        }

        // Step 5: command semantics.
        if policy.versions().highest_common(request.version()).is_err() {
            return fail(decision, Failure::UnsupportedVersion);
        }
        if live.idk.is_some_and(|bound| bound != *request.idk()) {
            return fail(decision, Failure::BoundToOtherIdentity);
        }
        // From here the request speaks for this conversation's identity.
        decision.next.idk = Some(*request.idk());
        decision.indexed_secrets = indexed_secrets;
        if live.asked {
            decision.button = request.button();
        }
        let has_browser = live.browser.is_some();

        if records.current_superseded {
            // PITFALLS 25: a stale device must not create a second account.
            return if request.command() == Command::Query {
                decision.tif = Tif::IDENTITY_SUPERSEDED | ip_bit;
                decision.browser = scanned(has_browser);
                decision
            } else {
                decision.browser = rejected(has_browser);
                fail(decision, Failure::Superseded)
            };
        }

        let flags = AccountOptions::from_request(options);
        let wants_suk = options.contains(ClientOptions::SUK);
        let idk = *request.idk();
        match request.command() {
            Command::Query => {
                // PITFALLS 28: a query never changes anything.
                let tif = state;
                decision.suk = returned_suk(current, previous, wants_suk);
                decision.tif = tif;
                decision.browser = scanned(has_browser);
                if tif.contains(Tif::CURRENT_ID_MATCH) && !tif.contains(Tif::SQRL_DISABLED) {
                    decision.ask = policy.ask().cloned();
                }
                decision
            }
            Command::Ident => {
                if !has_browser {
                    // The conversation was continued from an unknown or expired
                    // nut, so no page waits for it: confirming would tell the user
                    // they are logged in while no browser is. Answer transient
                    // again; the client's second identical transient error tells
                    // the user the page expired (SPEC 3.1 notes). CPS too: a
                    // session link minted for no page could be handed to any
                    // browser (login CSRF), so a CPS login also needs the page
                    // whose browser will redeem it.
                    return fail(decision, Failure::NoWaitingPage);
                }
                let login = if options.contains(ClientOptions::CPS) {
                    BrowserOutcome::ClientProvidedSession { idk }
                } else {
                    BrowserOutcome::LogIn { idk }
                };
                if let Some(account) = current {
                    if account.disabled {
                        decision.suk = Some(account.suk);
                        decision.browser = rejected(has_browser);
                        return fail(decision, Failure::Disabled);
                    }
                    decision.mutation = Mutation::SetOptions {
                        idk,
                        options: flags,
                    };
                    decision.suk = returned_suk(current, None, wants_suk);
                    decision.tif = state;
                    decision.browser = login;
                    return decision;
                }
                let (Some(&suk), Some(&vuk)) = (request.suk(), request.vuk()) else {
                    return fail(decision, Failure::MissingLock);
                };
                match (previous, request.pidk()) {
                    (Some(account), Some(&pidk)) => {
                        if account.disabled {
                            decision.suk = Some(account.suk);
                            decision.browser = rejected(has_browser);
                            return fail(decision, Failure::Disabled);
                        }
                        decision.mutation = Mutation::Replace {
                            previous: pidk,
                            idk,
                            suk,
                            vuk,
                            options: flags,
                        };
                    }
                    _ => {
                        decision.mutation = Mutation::Create {
                            idk,
                            suk,
                            vuk,
                            options: flags,
                        };
                    }
                }
                // TIF is the state after processing: the identity is now
                // known (PITFALLS 7).
                decision.tif = Tif::CURRENT_ID_MATCH | ip_bit;
                if wants_suk {
                    decision.suk = Some(suk);
                }
                decision.browser = login;
                decision
            }
            Command::Disable => {
                let Some(account) = current else {
                    return fail(decision, Failure::UnknownIdentity);
                };
                decision.mutation = Mutation::Disable {
                    idk,
                    options: flags,
                };
                // Disabled from now on, so the SUK is returned (SPEC 3 `suk`).
                decision.tif = Tif::CURRENT_ID_MATCH | Tif::SQRL_DISABLED | ip_bit;
                decision.suk = Some(account.suk);
                decision.browser = rejected(has_browser);
                decision
            }
            Command::Enable => {
                // `urs` verified above with this account's VUK.
                match (current, previous, request.pidk()) {
                    (Some(_), _, _) => {
                        decision.mutation = Mutation::Enable {
                            idk,
                            options: flags,
                        };
                        decision.tif = Tif::CURRENT_ID_MATCH | ip_bit;
                        decision.suk = returned_suk(current, None, wants_suk);
                    }
                    (None, Some(account), Some(&pidk)) => {
                        decision.mutation = Mutation::Enable {
                            idk: pidk,
                            options: flags,
                        };
                        decision.tif = Tif::PREVIOUS_ID_MATCH | ip_bit;
                        decision.suk = Some(account.suk);
                    }
                    _ => {
                        return fail(decision, Failure::UnknownIdentity);
                    }
                }
                decision
            }
            Command::Remove => {
                if current.is_none() {
                    return fail(decision, Failure::UnknownIdentity);
                }
                decision.mutation = Mutation::Remove { idk };
                // The identity is no longer known after processing.
                decision.tif = ip_bit;
                decision.browser = rejected(has_browser);
                decision
            }
        }
    }
}

/// Fails the request with `failure`, nothing changed. Its TIF comes from the
/// failure table with the state bits known so far ([`Failure::reply_tif`]).
fn fail(mut decision: Decision, failure: Failure) -> Decision {
    decision.tif = failure.reply_tif(decision.state);
    decision.failure = Some(failure);
    decision.mutation = Mutation::None;
    decision
}

fn scanned(has_browser: bool) -> BrowserOutcome {
    if has_browser {
        BrowserOutcome::Scanned
    } else {
        BrowserOutcome::Unchanged
    }
}

fn rejected(has_browser: bool) -> BrowserOutcome {
    if has_browser {
        BrowserOutcome::Rejected
    } else {
        BrowserOutcome::Unchanged
    }
}

/// The SUK a reply returns (SPEC 3 `suk`, PITFALLS 24): the current account's
/// when asked for or disabled; the previous account's whenever it matched (the
/// client needs it to sign `urs` for the replacement).
fn returned_suk(
    current: Option<&AccountRecord>,
    previous: Option<&AccountRecord>,
    wants_suk: bool,
) -> Option<ServerUnlockKey> {
    match (current, previous) {
        (Some(account), _) if wants_suk || account.disabled => Some(account.suk),
        (Some(_), _) => None,
        (None, Some(account)) => Some(account.suk),
        (None, None) => None,
    }
}
