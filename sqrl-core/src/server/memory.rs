//! An in-memory reference server built on [`super::Incoming`]: for tests and as a
//! worked example of a driver. **Not for production**: everything lives in
//! process memory and is lost when it drops, and there is no concurrency.
//!
//! It holds accounts, the superseded list, indexed-secret digests,
//! conversations and login attempts in maps, issues SQRL URLs for an
//! [`Endpoint`], and answers request bodies with reply bodies exactly as a
//! real server would, following the driver's steps of the
//! [module documentation](super): take, read, decide, finish, apply, store.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use rand_core::CryptoRngCore;

use super::{
    AccountRecord, BrowserOutcome, Conversation, Endpoint, Failure, Incoming, IndexedSecrets,
    Invitation, Mutation, Nut, Policy, Records, SecretDigest, SecretWrite, WaitingBrowser,
};
use crate::keys::IdentityKey;
use crate::msg::{Button, MessageError, Tif};

/// Seconds a login attempt (all of its conversation steps) stays open by
/// default; the target is "within 10 minutes".
pub const DEFAULT_ATTEMPT_LIFETIME: u64 = 600;

/// Where a login page's attempt stands. The names are the ones the service
/// stores and its page shows (`pending`, `scanned`, `confirmed`,
/// `client-session`, `rejected`); the service adds `logged-in` once the
/// browser has collected its session, which this reference server does not
/// model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptState {
    /// Waiting for a client.
    Pending,
    /// A client sent a valid query.
    Scanned,
    /// The user confirmed (`ident`): the browser may collect its session for
    /// the account of this identity key.
    Confirmed(IdentityKey),
    /// The client provides the session (`cps`): the page's own login is
    /// abandoned.
    ClientSession,
    /// The login will not happen.
    Rejected,
}

/// What [`MemoryServer::handle`] did with one request.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The HTTP response body.
    pub body: String,
    /// The TIF it carries.
    pub tif: Tif,
    /// Why the request failed, if it did.
    pub failure: Option<Failure>,
    /// The account change applied (`Mutation::None` when nothing changed).
    pub mutation: Mutation,
    /// What the waiting page was told.
    pub browser: BrowserOutcome,
    /// The CPS session URL handed out as `url=`, if any.
    pub cps_url: Option<String>,
    /// The `btn=` answer to a previous `ask`.
    pub button: Option<Button>,
    /// The `ins`/`pins` answering a previous `sin`.
    pub indexed_secrets: Option<IndexedSecrets>,
}

/// The in-memory reference server (see the module documentation).
pub struct MemoryServer<R> {
    endpoint: Endpoint,
    policy: Policy,
    rng: R,
    now: u64,
    attempt_lifetime: u64,
    accounts: HashMap<IdentityKey, AccountRecord>,
    superseded: HashSet<IdentityKey>,
    /// Indexed-secret digests by identity key and `sin`.
    secrets: HashMap<IdentityKey, HashMap<String, SecretDigest>>,
    conversations: HashMap<Nut, Conversation>,
    attempts: HashMap<String, AttemptState>,
    cps_tokens: HashMap<String, IdentityKey>,
}

impl<R> core::fmt::Debug for MemoryServer<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryServer")
            .field("endpoint", &self.endpoint)
            .field("now", &self.now)
            .field("accounts", &self.accounts.len())
            .field("superseded", &self.superseded.len())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl<R: CryptoRngCore> MemoryServer<R> {
    /// A server for `endpoint` with `policy`, drawing nuts and tokens from
    /// `rng` (inject a seeded generator for reproducible tests). The clock
    /// starts at 0 and moves only with [`MemoryServer::advance`].
    pub fn new(endpoint: Endpoint, policy: Policy, rng: R) -> Self {
        Self {
            endpoint,
            policy,
            rng,
            now: 0,
            attempt_lifetime: DEFAULT_ATTEMPT_LIFETIME,
            accounts: HashMap::new(),
            superseded: HashSet::new(),
            secrets: HashMap::new(),
            conversations: HashMap::new(),
            attempts: HashMap::new(),
            cps_tokens: HashMap::new(),
        }
    }

    /// Sets how long a login attempt stays open.
    pub fn with_attempt_lifetime(mut self, seconds: u64) -> Self {
        self.attempt_lifetime = seconds;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Replaces the policy (e.g. to start sending `sin` or `ask`).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The clock, in seconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, seconds: u64) {
        self.now = self.now.saturating_add(seconds);
    }

    /// A login page opens from `browser_ip`: returns the QR URL, the
    /// same-device link (with `can=` when `cancel_url` is given) and the nut,
    /// which also names the attempt ([`MemoryServer::attempt`]).
    pub fn start_login(&mut self, browser_ip: IpAddr, cancel_url: Option<&str>) -> Invitation {
        let nut = Nut::generate(&mut self.rng);
        let attempt = nut.as_str().to_owned();
        let browser = WaitingBrowser {
            ip: browser_ip,
            attempt: attempt.clone(),
        };
        let expires_at = self.now.saturating_add(self.attempt_lifetime);
        let invitation = self.endpoint.invite(nut, cancel_url, browser, expires_at);
        self.conversations
            .insert(invitation.nut.clone(), invitation.conversation.clone());
        self.attempts.insert(attempt, AttemptState::Pending);
        invitation
    }

    /// Answers one `POST`. `target` is the request target
    /// (`/cli.sqrl?nut=...`) or the full POST URL (`https://host/cli.sqrl?...`).
    pub fn handle(&mut self, target: &str, body: &str, client_ip: IpAddr) -> Handled {
        let incoming = Incoming::parse(path_and_query(target), body, client_ip);
        // Taken, not read: the nut is used up whatever happens next.
        let conversation = incoming
            .nut()
            .and_then(|nut| self.conversations.remove(nut));
        // The secrets kept under the sin the conversation's last reply asked.
        let sin = conversation.as_ref().and_then(|c| c.sin.clone());
        let secret = |idk: &IdentityKey| {
            let sin = sin.as_deref()?;
            self.secrets.get(idk)?.get(sin).copied()
        };
        let records = incoming
            .lookups()
            .map(|keys| Records {
                current: self.accounts.get(&keys.idk).cloned(),
                current_superseded: self.superseded.contains(&keys.idk),
                previous: keys.pidk.and_then(|pidk| self.accounts.get(&pidk).cloned()),
                current_secret: secret(&keys.idk),
                previous_secret: keys.pidk.as_ref().and_then(secret),
            })
            .unwrap_or_default();
        let mut decision = incoming.decide(&self.policy, conversation, records, self.now);
        // Nothing runs between the read and this write here, so a mutation
        // that does not apply means the maps were changed directly (a test's
        // `insert_account`): answered as transient, as a store would after
        // giving up on a race.
        if !self.apply(decision.mutation()) {
            decision = decision.into_transient_failure();
        }
        let cps_url = match decision.browser() {
            BrowserOutcome::ClientProvidedSession { idk } => {
                // 128 random bits, single use (SPEC 8.2).
                let token = Nut::generate(&mut self.rng).as_str().to_owned();
                self.cps_tokens.insert(token.clone(), *idk);
                Some(format!("{}/cps?token={token}", origin(&self.endpoint)))
            }
            _ => None,
        };
        let tif = decision.tif();
        let browser = decision.browser().clone();
        let indexed_secrets = decision.indexed_secrets().cloned();
        let issued = match decision.finish(Nut::generate(&mut self.rng), cps_url.as_deref()) {
            Ok(issued) => issued,
            Err(error) => return self.internal_error(error),
        };
        if let Some(write) = &issued.secret_write {
            self.keep_secret(write);
        }
        if let Some(browser_side) = &issued.conversation.browser
            && let Some(state) = self.attempts.get_mut(&browser_side.attempt)
        {
            match &browser {
                BrowserOutcome::Scanned if *state == AttemptState::Pending => {
                    *state = AttemptState::Scanned;
                }
                BrowserOutcome::LogIn { idk } => *state = AttemptState::Confirmed(*idk),
                BrowserOutcome::ClientProvidedSession { .. } => {
                    *state = AttemptState::ClientSession;
                }
                BrowserOutcome::Rejected => *state = AttemptState::Rejected,
                _ => {}
            }
        }
        let body = issued.body().to_owned();
        self.conversations.insert(issued.nut, issued.conversation);
        Handled {
            body,
            tif,
            failure: issued.failure,
            mutation: issued.mutation,
            browser,
            cps_url,
            button: issued.button,
            indexed_secrets,
        }
    }

    /// Keeps an indexed-secret digest as the decision says.
    fn keep_secret(&mut self, write: &SecretWrite) {
        match write {
            SecretWrite::Remember { idk, sin, digest } => {
                if self.accounts.contains_key(idk) {
                    let kept = self.secrets.entry(*idk).or_default();
                    kept.entry(sin.clone()).or_insert(*digest);
                }
            }
            SecretWrite::Establish { idk, sin, digest } => {
                let kept = self.secrets.entry(*idk).or_default();
                kept.clear();
                kept.insert(sin.clone(), *digest);
            }
        }
    }

    /// A reply the server could not build (only a misconfiguration can cause
    /// it): an empty body, which clients treat as a failed request.
    fn internal_error(&mut self, error: MessageError) -> Handled {
        let failure = Failure::ReplyNotBuilt(error);
        Handled {
            body: String::new(),
            tif: failure.tif(),
            failure: Some(failure),
            mutation: Mutation::None,
            browser: BrowserOutcome::Unchanged,
            cps_url: None,
            button: None,
            indexed_secrets: None,
        }
    }

    /// Applies a mutation; `false` if the records changed under it (the
    /// decision is then answered as a transient failure).
    fn apply(&mut self, mutation: &Mutation) -> bool {
        match mutation {
            Mutation::None => true,
            Mutation::Create {
                idk,
                suk,
                vuk,
                options,
            } => {
                if self.accounts.contains_key(idk) || self.superseded.contains(idk) {
                    return false;
                }
                self.accounts
                    .insert(*idk, AccountRecord::new(*suk, *vuk, *options));
                true
            }
            Mutation::Replace {
                previous,
                idk,
                suk,
                vuk,
                options,
            } => {
                if self.accounts.contains_key(idk) || self.accounts.remove(previous).is_none() {
                    return false;
                }
                self.accounts
                    .insert(*idk, AccountRecord::new(*suk, *vuk, *options));
                self.superseded.insert(*previous);
                // The retired key's secrets go; the decision's secret write
                // keeps the new identity's.
                self.secrets.remove(previous);
                true
            }
            Mutation::SetOptions { idk, options } => self.update(idk, |account| {
                account.options = *options;
            }),
            Mutation::Disable { idk, options } => self.update(idk, |account| {
                account.disabled = true;
                account.options = *options;
            }),
            Mutation::Enable { idk, options } => self.update(idk, |account| {
                account.disabled = false;
                account.options = *options;
            }),
            Mutation::Remove { idk } => {
                self.secrets.remove(idk);
                self.accounts.remove(idk).is_some()
            }
        }
    }

    fn update(&mut self, idk: &IdentityKey, change: impl FnOnce(&mut AccountRecord)) -> bool {
        match self.accounts.get_mut(idk) {
            Some(account) => {
                change(account);
                true
            }
            None => false,
        }
    }

    /// Where the attempt named by a page's first nut stands.
    pub fn attempt(&self, attempt: &str) -> Option<&AttemptState> {
        self.attempts.get(attempt)
    }

    /// Redeems a CPS session URL once: the identity whose account it logs in.
    pub fn redeem_cps_url(&mut self, url: &str) -> Option<IdentityKey> {
        let token = url.split_once("token=")?.1;
        self.cps_tokens.remove(token)
    }

    /// The account associated with `idk`.
    pub fn account(&self, idk: &IdentityKey) -> Option<&AccountRecord> {
        self.accounts.get(idk)
    }

    /// Creates an association directly (operator action, test setup).
    pub fn insert_account(&mut self, idk: IdentityKey, record: AccountRecord) {
        self.accounts.insert(idk, record);
    }

    /// How many associations exist.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The indexed-secret digest kept for `idk` and `sin`.
    pub fn kept_secret(&self, idk: &IdentityKey, sin: &str) -> Option<SecretDigest> {
        self.secrets.get(idk)?.get(sin).copied()
    }

    /// Whether `idk` is on the superseded list.
    pub fn is_superseded(&self, idk: &IdentityKey) -> bool {
        self.superseded.contains(idk)
    }

    /// How many conversation records are stored (each live nut has one).
    pub fn conversation_count(&self) -> usize {
        self.conversations.len()
    }
}

fn path_and_query(target: &str) -> &str {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest
                .find('/')
                .and_then(|index| rest.get(index..))
                .unwrap_or("/");
        }
    }
    target
}

fn origin(endpoint: &Endpoint) -> String {
    format!(
        "{}://{}",
        endpoint.scheme().http_scheme(),
        endpoint.authority()
    )
}
