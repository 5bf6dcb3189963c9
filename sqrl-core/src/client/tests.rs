//! Full client flows against a small scripted server built from the `msg` types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::base64url;
use crate::keys::{
    IdentityKey, IdentityLockKey, IdentityUnlockKey, IndexedSecret, RequestSigner, ServerUnlockKey,
    Signature, SignerError, SiteKey, SiteSigner, UrsSigner, VerifyUnlockKey,
};
use crate::msg::{
    Ask, AskButton, Button, ClientOptions, ClientRequest, Command, RequestBody, ServerReply, Tif,
};
use crate::url::SqrlUrl;

const URL: &str = "sqrl://Example.com:8443/cli.sqrl?nut=n0&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8";
const SESSION_URL: &str = "https://example.com/session?t=ok";

struct Identity {
    iuk: IdentityUnlockKey,
}

impl Identity {
    fn new(n: u8) -> Self {
        Self {
            iuk: IdentityUnlockKey::from_bytes([n; 32]),
        }
    }
    fn site_key(&self) -> SiteKey {
        let url = SqrlUrl::parse(URL).unwrap();
        self.iuk.master_key().site_key(url.site_key_string())
    }
    fn ilk(&self) -> IdentityLockKey {
        self.iuk.lock_key()
    }
}

struct Account {
    idk: IdentityKey,
    suk: ServerUnlockKey,
    vuk: VerifyUnlockKey,
    disabled: bool,
}

/// A site that follows SPEC 3 closely enough to exercise every client path,
/// asserting the client's echo rules (PITFALLS 2) on every request.
struct Site {
    url: SqrlUrl,
    accounts: Vec<Account>,
    superseded: Vec<IdentityKey>,
    expected_server: String,
    expected_post: String,
    nut: u32,
    ip_matches: bool,
    /// Whether the site fails a request without `noiptest` on a mismatch.
    tests_ip: bool,
    transient: usize,
    next_sin: Option<String>,
    next_ask: Option<Ask>,
    log: Vec<ClientRequest>,
}

impl Site {
    fn new() -> Self {
        let url = SqrlUrl::parse(URL).unwrap();
        Self {
            expected_server: base64url::encode(URL),
            expected_post:
                "https://Example.com:8443/cli.sqrl?nut=n0&can=aHR0cHM6Ly9leGFtcGxlLmNvbS8"
                    .to_owned(),
            url,
            accounts: Vec::new(),
            superseded: Vec::new(),
            nut: 0,
            ip_matches: true,
            tests_ip: true,
            transient: 0,
            next_sin: None,
            next_ask: None,
            log: Vec::new(),
        }
    }

    /// A fresh page: the next transaction starts from the URL again.
    fn reload(&mut self) {
        self.expected_server = base64url::encode(URL);
        self.expected_post = self.url.post_url();
    }

    fn find(&self, idk: Option<&IdentityKey>) -> Option<usize> {
        idk.and_then(|idk| self.accounts.iter().position(|a| a.idk == *idk))
    }

    fn handle(&mut self, request: &OutgoingRequest) -> String {
        assert_eq!(request.url(), self.expected_post, "POST to the last qry");
        let body = RequestBody::parse(request.body()).unwrap();
        assert_eq!(
            body.server_value(),
            self.expected_server,
            "server= echoed verbatim"
        );
        let client = body.client_request().unwrap();
        assert_eq!(client.command(), request.command());
        body.verify_identity_signatures(&client).unwrap();
        self.log.push(client.clone());

        let ip = if self.ip_matches {
            Tif::IP_MATCHED
        } else {
            Tif::NONE
        };
        if !self.ip_matches && self.tests_ip && !client.options().contains(ClientOptions::NOIPTEST)
        {
            return self.reply(Tif::COMMAND_FAILED, None, false);
        }
        if self.transient > 0 {
            self.transient -= 1;
            return self.reply(ip | Tif::TRANSIENT_ERROR | Tif::COMMAND_FAILED, None, false);
        }
        let bad = ip | Tif::CLIENT_FAILURE | Tif::COMMAND_FAILED;
        let current = self.find(Some(client.idk()));
        let previous = self.find(client.pidk());
        if self.superseded.contains(client.idk()) {
            let tif = ip | Tif::IDENTITY_SUPERSEDED;
            return match client.command() {
                Command::Query => self.reply(tif, None, false),
                _ => self.reply(tif | Tif::COMMAND_FAILED, None, false),
            };
        }
        let mut tif = ip;
        let mut suk = None;
        match client.command() {
            Command::Query => {
                if let Some(i) = current {
                    tif |= Tif::CURRENT_ID_MATCH;
                    if self.accounts[i].disabled {
                        tif |= Tif::SQRL_DISABLED;
                        suk = Some(self.accounts[i].suk);
                    }
                    if client.options().contains(ClientOptions::SUK) {
                        suk = Some(self.accounts[i].suk);
                    }
                } else if let Some(i) = previous {
                    // PITFALLS 24: a previous-identity match returns the SUK.
                    tif |= Tif::PREVIOUS_ID_MATCH;
                    suk = Some(self.accounts[i].suk);
                }
            }
            Command::Ident => {
                if let Some(i) = current {
                    if self.accounts[i].disabled {
                        return self.reply(
                            tif | Tif::CURRENT_ID_MATCH | Tif::SQRL_DISABLED | Tif::COMMAND_FAILED,
                            None,
                            false,
                        );
                    }
                } else {
                    let (Some(new_suk), Some(new_vuk)) = (client.suk(), client.vuk()) else {
                        return self.reply(bad, None, false);
                    };
                    let account = Account {
                        idk: *client.idk(),
                        suk: *new_suk,
                        vuk: *new_vuk,
                        disabled: false,
                    };
                    if let Some(i) = previous {
                        // Replacing a previous identity needs urs under its VUK.
                        if body.verify_urs(&self.accounts[i].vuk).is_err() {
                            return self.reply(bad, None, false);
                        }
                        self.superseded.push(self.accounts[i].idk);
                        self.accounts[i] = account;
                    } else {
                        self.accounts.push(account);
                    }
                }
                tif |= Tif::CURRENT_ID_MATCH;
            }
            Command::Disable => {
                let Some(i) = current else {
                    return self.reply(bad, None, false);
                };
                self.accounts[i].disabled = true;
                tif |= Tif::CURRENT_ID_MATCH | Tif::SQRL_DISABLED;
                suk = Some(self.accounts[i].suk);
            }
            Command::Enable | Command::Remove => {
                let Some(i) = current else {
                    return self.reply(bad, None, false);
                };
                if body.verify_urs(&self.accounts[i].vuk).is_err() {
                    return self.reply(bad | Tif::CURRENT_ID_MATCH, None, false);
                }
                if client.command() == Command::Enable {
                    self.accounts[i].disabled = false;
                    tif |= Tif::CURRENT_ID_MATCH;
                } else {
                    self.accounts.remove(i);
                }
            }
        }
        let cps =
            client.command() != Command::Query && client.options().contains(ClientOptions::CPS);
        self.reply(tif, suk, cps)
    }

    fn reply(&mut self, tif: Tif, suk: Option<ServerUnlockKey>, cps: bool) -> String {
        self.nut += 1;
        let nut = format!("n{}", self.nut);
        let qry = format!("/cli.sqrl?nut={nut}");
        let mut builder = ServerReply::builder(&nut, tif, &qry).extra("mac", "bWFj");
        if let Some(suk) = suk {
            builder = builder.suk(suk);
        }
        if cps {
            builder = builder.url(SESSION_URL);
        }
        if let Some(sin) = self.next_sin.take() {
            builder = builder.sin(sin);
        }
        if let Some(ask) = self.next_ask.take() {
            builder = builder.ask(ask);
        }
        let reply = builder.build().unwrap();
        self.expected_server = reply.as_str().to_owned();
        self.expected_post = self.url.post_url_for_query(&qry).unwrap();
        reply.as_str().to_owned()
    }
}

fn query(
    site: &mut Site,
    identity: &Identity,
    previous: &[&Identity],
    options: TransactionOptions,
) -> Result<Queried, ClientError> {
    let previous = previous.iter().map(|p| p.site_key()).collect();
    query_with(site, identity.site_key(), previous, options)
}

fn query_with<S: SiteSigner + 'static>(
    site: &mut Site,
    current: S,
    previous: Vec<S>,
    options: TransactionOptions,
) -> Result<Queried, ClientError> {
    site.reload();
    let url = SqrlUrl::parse(URL).unwrap();
    let (mut state, mut request) = Querying::start(url, current, previous, options)?;
    for _ in 0..10 {
        match state.receive(&site.handle(&request))? {
            QueryStep::Send(next, next_request) => (state, request) = (next, next_request),
            QueryStep::Done(queried) => return Ok(queried),
            QueryStep::IpMismatch(_) => return Err(ClientError::IpMismatch),
        }
    }
    panic!("query phase did not end");
}

fn finish(
    site: &mut Site,
    started: Result<(Commanding, OutgoingRequest), ClientError>,
) -> Result<Completed, ClientError> {
    let (mut state, mut request) = started?;
    for _ in 0..10 {
        match state.receive(&site.handle(&request))? {
            CommandStep::Send(next, next_request) => (state, request) = (next, next_request),
            CommandStep::Done(done) => return Ok(done),
        }
    }
    panic!("command did not end");
}

fn cross() -> TransactionOptions {
    TransactionOptions::new(Device::CrossDevice)
}

fn rng() -> rand_core::OsRng {
    rand_core::OsRng
}

fn register(site: &mut Site, identity: &Identity) {
    let queried = query(site, identity, &[], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Unknown);
    finish(site, queried.ident(&identity.ilk(), &mut rng())).unwrap();
}

#[test]
fn new_user_ident_carries_suk_and_vuk_then_is_known() {
    let mut site = Site::new();
    let me = Identity::new(1);
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Unknown);
    assert_eq!(queried.tif(), Tif::IP_MATCHED);
    assert!(queried.ip_matched());
    let first = &site.log[0];
    assert_eq!(first.command(), Command::Query);
    assert_eq!(
        first.options(),
        ClientOptions::NOIPTEST | ClientOptions::SUK
    );
    assert!(first.suk().is_none() && first.pidk().is_none());

    let done = finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert_eq!(done.command(), Command::Ident);
    assert!(!done.tif().is_failure());
    assert_eq!(done.cps_url(), None, "cross-device: no CPS");
    let ident = site.log.last().unwrap();
    assert_eq!(ident.options(), ClientOptions::NOIPTEST);
    // The stored VUK verifies what the rescue code (IUK) signs with the SUK.
    let (suk, vuk) = (*ident.suk().unwrap(), *ident.vuk().unwrap());
    let ursk = me.iuk.unlock_request_signing_key(&suk).unwrap();
    assert_eq!(ursk.verify_unlock_key(), vuk);

    let again = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(again.status(), QueryStatus::Known);
    assert_eq!(again.server_unlock_key(), Some(&suk), "opt=suk returned it");
    finish(&mut site, again.ident(&me.ilk(), &mut rng())).unwrap();
    let ident = site.log.last().unwrap();
    assert!(
        ident.suk().is_none() && ident.vuk().is_none(),
        "known: no new lock"
    );
}

#[test]
fn previous_identity_is_replaced_with_urs() {
    let mut site = Site::new();
    let (old, new) = (Identity::new(2), Identity::new(3));
    register(&mut site, &old);

    let queried = query(&mut site, &new, &[&old], cross()).unwrap();
    assert_eq!(
        queried.status(),
        QueryStatus::KnownByPrevious { previous: 0 }
    );
    assert_eq!(
        site.log.last().unwrap().pidk(),
        Some(&old.site_key().public_key())
    );
    let done = finish(
        &mut site,
        queried.ident_replacing_previous(&new.ilk(), &old.iuk, &mut rng()),
    )
    .unwrap();
    assert!(done.tif().contains(Tif::CURRENT_ID_MATCH));
    let ident = site.log.last().unwrap();
    assert_eq!(ident.pidk(), Some(&old.site_key().public_key()));
    // The new association's lock comes from the *current* identity's ILK.
    let ursk = new
        .iuk
        .unlock_request_signing_key(ident.suk().unwrap())
        .unwrap();
    assert_eq!(ursk.verify_unlock_key(), *ident.vuk().unwrap());

    assert_eq!(
        query(&mut site, &new, &[&old], cross()).unwrap().status(),
        QueryStatus::Known
    );
    // The old identity is now superseded at this site.
    let stale = query(&mut site, &old, &[], cross()).unwrap();
    assert_eq!(stale.status(), QueryStatus::Superseded);
    assert!(matches!(
        stale.ident(&old.ilk(), &mut rng()),
        Err(ClientError::Superseded(_))
    ));
}

#[test]
fn older_previous_identities_are_queried_in_turn() {
    let mut site = Site::new();
    let (oldest, older, current) = (Identity::new(4), Identity::new(5), Identity::new(6));
    register(&mut site, &oldest);
    let before = site.log.len();
    let queried = query(&mut site, &current, &[&older, &oldest], cross()).unwrap();
    assert_eq!(
        queried.status(),
        QueryStatus::KnownByPrevious { previous: 1 }
    );
    let queries: Vec<_> = site.log[before..]
        .iter()
        .map(|r| *r.pidk().unwrap())
        .collect();
    assert_eq!(
        queries,
        [
            older.site_key().public_key(),
            oldest.site_key().public_key()
        ]
    );

    // Replacing needs the unlock key of the identity that matched.
    assert_eq!(
        query(&mut site, &current, &[&older, &oldest], cross())
            .unwrap()
            .ident(&current.ilk(), &mut rng())
            .unwrap_err(),
        ClientError::PreviousUnlockKeyRequired { previous: 1 }
    );
    let wrong = query(&mut site, &current, &[&older, &oldest], cross()).unwrap();
    assert!(matches!(
        finish(
            &mut site,
            wrong.ident_replacing_previous(&current.ilk(), &older.iuk, &mut rng())
        ),
        Err(ClientError::Rejected(_))
    ));
    let queried = queried_again(&mut site, &current, &[&older, &oldest]);
    finish(
        &mut site,
        queried.ident_replacing_previous(&current.ilk(), &oldest.iuk, &mut rng()),
    )
    .unwrap();

    // Nobody known at all: every previous identity is tried, then Unknown.
    let stranger = Identity::new(7);
    let before = site.log.len();
    let queried = query(&mut site, &stranger, &[&older, &Identity::new(8)], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Unknown);
    assert_eq!(site.log.len() - before, 2);
}

fn queried_again(site: &mut Site, identity: &Identity, previous: &[&Identity]) -> Queried {
    query(site, identity, previous, cross()).unwrap()
}

/// A site that knows `old` (9) and asks for the secret of `sin`, and the new
/// identity (10) that replaced it.
fn site_of_a_replaced_identity(sin: &str) -> (Site, Identity, Identity) {
    let mut site = Site::new();
    let (old, new) = (Identity::new(9), Identity::new(10));
    register(&mut site, &old);
    site.next_sin = Some(sin.into());
    (site, old, new)
}

#[test]
fn sin_is_answered_with_ins_and_pins() {
    let (mut site, old, new) = site_of_a_replaced_identity("sin-17");
    // The first query's reply carries sin: the ident must answer it.
    let queried = query(&mut site, &new, &[&old], cross()).unwrap();
    assert_eq!(queried.reply().sin(), Some("sin-17"));
    finish(
        &mut site,
        queried.ident_replacing_previous(&new.ilk(), &old.iuk, &mut rng()),
    )
    .unwrap();
    let ident = site.log.last().unwrap();
    assert_eq!(ident.ins(), Some(&new.site_key().indexed_secret("sin-17")));
    assert_eq!(ident.pins(), Some(&old.site_key().indexed_secret("sin-17")));

    // Without a previous identity in the request, only ins.
    site.next_sin = Some("0".into());
    let queried = query(&mut site, &new, &[], cross()).unwrap();
    finish(&mut site, queried.ident(&new.ilk(), &mut rng())).unwrap();
    let ident = site.log.last().unwrap();
    assert_eq!(ident.ins(), Some(&new.site_key().indexed_secret("0")));
    assert!(ident.pins().is_none());
    // sin applies to the next request only.
    let q = query(&mut site, &new, &[], cross()).unwrap();
    finish(&mut site, q.ident(&new.ilk(), &mut rng())).unwrap();
    assert!(site.log.last().unwrap().ins().is_none());
}

#[test]
fn ask_is_answered_with_btn() {
    let mut site = Site::new();
    let me = Identity::new(11);
    register(&mut site, &me);
    let ask = || {
        Ask::new("Link this account?")
            .with_button(AskButton::new("Yes", None).unwrap())
            .unwrap()
            .with_button(AskButton::new("Later", Some("/later".into())).unwrap())
            .unwrap()
    };
    site.next_ask = Some(ask());
    let mut queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.ask(), Some(&ask()));
    queried.answer_ask(Button::Second).unwrap();
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert_eq!(site.log.last().unwrap().button(), Some(Button::Second));

    site.next_ask = Some(Ask::new("Notice"));
    let mut queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(
        queried.answer_ask(Button::First),
        Err(ClientError::NoSuchButton(Button::First))
    );
    queried.answer_ask(Button::Ok).unwrap();
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert_eq!(site.log.last().unwrap().button(), Some(Button::Ok));

    let mut queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.answer_ask(Button::Ok), Err(ClientError::NoAsk));
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert_eq!(site.log.last().unwrap().button(), None);
}

#[test]
fn same_device_uses_cps_and_returns_the_session_url() {
    let mut site = Site::new();
    let me = Identity::new(12);
    let options = TransactionOptions::new(Device::SameDevice)
        .sqrl_only(true)
        .hard_lock(true);
    let queried = query(&mut site, &me, &[], options).unwrap();
    assert_eq!(
        site.log[0].options(),
        ClientOptions::CPS | ClientOptions::SQRLONLY | ClientOptions::HARDLOCK | ClientOptions::SUK
    );
    let done = finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert_eq!(done.cps_url(), Some(SESSION_URL));
    assert_eq!(
        site.log.last().unwrap().options(),
        ClientOptions::CPS | ClientOptions::SQRLONLY | ClientOptions::HARDLOCK
    );
}

#[test]
fn ip_mismatch_without_noiptest_is_reported() {
    let mut site = Site::new();
    site.ip_matches = false;
    let me = Identity::new(13);
    let same = TransactionOptions::new(Device::SameDevice);
    assert_eq!(
        query(&mut site, &me, &[], same).unwrap_err(),
        ClientError::IpMismatch
    );
    // Cross-device sends noiptest and goes through, without the IP bit.
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert!(!queried.ip_matched());
}

#[test]
fn ip_test_first_stops_at_a_mismatch_and_goes_on_only_when_told() {
    let mut site = Site::new();
    let me = Identity::new(21);
    let options = cross().test_ip_first(true);
    assert!(!options.skips_ip_test());

    // The IP matches: no noiptest anywhere, and the IP bit is reported.
    let queried = query(&mut site, &me, &[], options).unwrap();
    assert!(queried.ip_matched());
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    assert!(
        site.log
            .iter()
            .all(|r| !r.options().contains(ClientOptions::NOIPTEST))
    );

    // A mismatch: the query phase stops instead of failing.
    site.ip_matches = false;
    site.log.clear();
    site.reload();
    let url = SqrlUrl::parse(URL).unwrap();
    let (state, request) = Querying::start(url, me.site_key(), Vec::new(), options).unwrap();
    let QueryStep::IpMismatch(mismatch) = state.receive(&site.handle(&request)).unwrap() else {
        panic!("expected an IP mismatch");
    };
    assert_eq!(mismatch.tif(), Tif::COMMAND_FAILED);
    assert_eq!(site.log.len(), 1, "nothing sent on its own");
    // Told to go on: the same query with noiptest, to the refusal's qry with
    // the refusal echoed (the site asserts both).
    let (state, request) = mismatch.continue_without_ip_test().unwrap();
    let QueryStep::Done(queried) = state.receive(&site.handle(&request)).unwrap() else {
        panic!("expected the query to finish");
    };
    assert_eq!(queried.status(), QueryStatus::Known);
    assert!(!queried.ip_matched());
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    let options_sent: Vec<_> = site.log.iter().map(ClientRequest::options).collect();
    assert_eq!(
        options_sent,
        [
            ClientOptions::SUK,
            ClientOptions::NOIPTEST | ClientOptions::SUK,
            ClientOptions::NOIPTEST,
        ]
    );

    // Same-device never offers to go on.
    let same = TransactionOptions::new(Device::SameDevice).test_ip_first(true);
    assert_eq!(
        query(&mut site, &me, &[], same).unwrap_err(),
        ClientError::IpMismatch
    );
}

#[test]
fn same_device_requires_the_ip_bit() {
    let mut site = Site::new();
    let me = Identity::new(22);
    // A site that does not test the IP answers without 0x04.
    site.ip_matches = false;
    site.tests_ip = false;
    let same = TransactionOptions::new(Device::SameDevice);
    assert_eq!(
        query(&mut site, &me, &[], same).unwrap_err(),
        ClientError::IpMatchUnconfirmed(Tif::NONE)
    );
    // Cross-device does not rely on it.
    assert!(query(&mut site, &me, &[], cross()).is_ok());
}

#[test]
fn transient_error_is_retried_once_then_page_expired() {
    let mut site = Site::new();
    let me = Identity::new(14);
    site.transient = 1;
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(site.log.len(), 2, "query retried with the fresh nut");
    assert_eq!(queried.status(), QueryStatus::Unknown);
    site.transient = 1;
    finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap();
    let (first, retry) = (&site.log[2], &site.log[3]);
    assert_eq!(first.suk(), retry.suk(), "the same ident is resent");

    site.transient = 2;
    assert_eq!(
        query(&mut site, &me, &[], cross()).unwrap_err(),
        ClientError::PageExpired
    );
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    site.transient = 2;
    assert_eq!(
        finish(&mut site, queried.ident(&me.ilk(), &mut rng())).unwrap_err(),
        ClientError::PageExpired
    );
}

#[test]
fn a_mismatch_on_the_retry_after_a_transient_error_is_an_expired_page() {
    // An unknown or expired code: the site answers with a transient error and
    // a fresh nut that no page waits behind, so the retry cannot pass the IP
    // test. That is no relayed code, and no warning about one is due.
    let me = Identity::new(16);
    for options in [
        cross().test_ip_first(true),
        TransactionOptions::new(Device::SameDevice),
    ] {
        let mut site = Site::new();
        site.reload();
        site.transient = 1;
        let url = SqrlUrl::parse(URL).unwrap();
        let (state, request) = Querying::start(url, me.site_key(), Vec::new(), options).unwrap();
        let QueryStep::Send(state, retry) = state.receive(&site.handle(&request)).unwrap() else {
            panic!("expected the retry after the transient error");
        };
        // No page behind the fresh nut: the site cannot match the address.
        site.ip_matches = false;
        assert_eq!(
            state.receive(&site.handle(&retry)).unwrap_err(),
            ClientError::PageExpired
        );
    }
    // A mismatch on the first reply is still reported as one.
    let mut site = Site::new();
    site.reload();
    site.ip_matches = false;
    let url = SqrlUrl::parse(URL).unwrap();
    let (state, request) =
        Querying::start(url, me.site_key(), Vec::new(), cross().test_ip_first(true)).unwrap();
    assert!(matches!(
        state.receive(&site.handle(&request)).unwrap(),
        QueryStep::IpMismatch(_)
    ));
}

#[test]
fn disable_enable_remove() {
    let mut site = Site::new();
    let me = Identity::new(15);
    register(&mut site, &me);
    let q = query(&mut site, &me, &[], cross()).unwrap();
    let done = finish(&mut site, q.disable()).unwrap();
    assert!(done.tif().contains(Tif::SQRL_DISABLED));

    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Disabled { previous: None });
    assert!(queried.server_unlock_key().is_some());
    assert_eq!(
        queried.ident(&me.ilk(), &mut rng()).unwrap_err(),
        ClientError::Disabled
    );
    assert!(matches!(
        query(&mut site, &me, &[], cross()).unwrap().disable(),
        Err(ClientError::WrongState {
            command: Command::Disable,
            ..
        })
    ));
    // A wrong rescue code makes an urs the site rejects.
    let wrong = IdentityUnlockKey::from_bytes([99; 32]);
    let q = query(&mut site, &me, &[], cross()).unwrap();
    assert!(matches!(
        finish(&mut site, q.enable(&wrong)),
        Err(ClientError::Rejected(_))
    ));
    let q = query(&mut site, &me, &[], cross()).unwrap();
    finish(&mut site, q.enable(&me.iuk)).unwrap();
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Known);
    assert!(
        site.log
            .last()
            .unwrap()
            .options()
            .contains(ClientOptions::SUK)
    );

    let done = finish(&mut site, queried.remove(&me.iuk)).unwrap();
    assert_eq!(done.command(), Command::Remove);
    assert!(site.log.last().unwrap().suk().is_none());
    let queried = query(&mut site, &me, &[], cross()).unwrap();
    assert_eq!(queried.status(), QueryStatus::Unknown);
    assert!(matches!(
        queried.remove(&me.iuk),
        Err(ClientError::WrongState { .. })
    ));

    // Without opt=suk on the query, remove has no SUK to sign with.
    register(&mut site, &me);
    let queried = query(&mut site, &me, &[], cross().request_suk(false)).unwrap();
    assert_eq!(
        queried.remove(&me.iuk).unwrap_err(),
        ClientError::MissingServerUnlockKey
    );
}

/// Feeds one crafted reply to a fresh query.
fn first_reply(text: &str, previous: Vec<SiteKey>) -> Result<QueryStep, ClientError> {
    let url = SqrlUrl::parse(URL).unwrap();
    let (state, _) = Querying::start(url, Identity::new(1).site_key(), previous, cross()).unwrap();
    state.receive(&base64url::encode(text))
}

#[test]
fn hostile_replies_stop_the_transaction() {
    let ok = "ver=1\r\nnut=n1\r\nqry=/cli.sqrl?nut=n1\r\n";
    assert!(matches!(
        first_reply(&format!("{ok}tif=5\r\n"), Vec::new()),
        Ok(QueryStep::Done(_))
    ));
    assert_eq!(
        first_reply(&format!("{ok}tif=405\r\n"), Vec::new()).unwrap_err(),
        ClientError::UndefinedTif(Tif::from_bits_retain(0x405))
    );
    assert_eq!(
        first_reply("ver=2\r\nnut=n1\r\ntif=5\r\nqry=/\r\n", Vec::new()).unwrap_err(),
        ClientError::UnsupportedVersion
    );
    assert!(matches!(
        first_reply("ver=1\r\nnut=n1\r\ntif=5\r\nqry=/\r\nqry=/\r\n", Vec::new()),
        Err(ClientError::Message(_))
    ));
    assert_eq!(
        first_reply("ver=1\r\nnut=n1\r\ntif=6\r\nqry=/\r\n", Vec::new()).unwrap_err(),
        ClientError::ProtocolViolation("previous identity matched, but the query named none")
    );
    assert!(matches!(
        first_reply("ver=1\r\nnut=n1\r\ntif=1c0\r\nqry=/\r\n", Vec::new()),
        Err(ClientError::BadIdAssociation(_))
    ));
    assert!(matches!(
        first_reply("ver=1\r\nnut=n1\r\ntif=50\r\nqry=/\r\n", Vec::new()),
        Err(ClientError::NotSupported(_))
    ));
    assert!(matches!(
        first_reply("ver=1\r\nnut=n1\r\ntif=44\r\nqry=/\r\n", Vec::new()),
        Err(ClientError::CommandFailed(_))
    ));
    let url = SqrlUrl::parse(URL).unwrap();
    let (state, _) =
        Querying::start(url, Identity::new(1).site_key(), Vec::new(), cross()).unwrap();
    assert!(matches!(
        state.receive(&"A".repeat(1 << 20)),
        Err(ClientError::Message(_))
    ));
    // Error words for the CLI.
    let error = first_reply("ver=1\r\nnut=n1\r\ntif=c0\r\nqry=/\r\n", Vec::new()).unwrap_err();
    assert_eq!(error.tif(), Some(Tif::from_bits_retain(0xc0)));
    assert_eq!(
        error.to_string(),
        "the site rejected the request (command failed, client failure)"
    );
}

#[test]
fn first_request_is_the_url_signed() {
    let url = SqrlUrl::parse(URL).unwrap();
    let me = Identity::new(1);
    let (_, request) = Querying::start(url, me.site_key(), Vec::new(), cross()).unwrap();
    assert_eq!(request.command(), Command::Query);
    assert_eq!(
        OutgoingRequest::CONTENT_TYPE,
        "application/x-www-form-urlencoded"
    );
    let body = RequestBody::parse(request.body()).unwrap();
    assert_eq!(body.server_value(), base64url::encode(URL));
    me.site_key()
        .public_key()
        .verify(&body.signed_message(), body.ids())
        .unwrap();
}

/// A key held "elsewhere", as by the `sqrl agent`: it signs through the
/// wrapped key while `up`, and fails as a stopped agent would otherwise.
#[derive(Debug)]
struct Elsewhere<K> {
    key: K,
    up: bool,
}

fn gone() -> SignerError {
    SignerError::Unavailable("the holder stopped".into())
}

impl RequestSigner for Elsewhere<SiteKey> {
    fn sign(&self, message: &[u8]) -> Result<Signature, SignerError> {
        if self.up {
            Ok(self.key.sign(message))
        } else {
            Err(gone())
        }
    }
}

impl SiteSigner for Elsewhere<SiteKey> {
    fn public_key(&self) -> IdentityKey {
        self.key.public_key()
    }

    fn indexed_secret(&self, sin: &str) -> Result<IndexedSecret, SignerError> {
        if self.up {
            Ok(self.key.indexed_secret(sin))
        } else {
            Err(gone())
        }
    }
}

impl UrsSigner for Elsewhere<IdentityUnlockKey> {
    fn sign_urs(&self, suk: &ServerUnlockKey, message: &[u8]) -> Result<Signature, SignerError> {
        if self.up {
            self.key.sign_urs(suk, message)
        } else {
            Err(gone())
        }
    }
}

fn elsewhere<K>(key: K) -> Elsewhere<K> {
    Elsewhere { key, up: true }
}

#[test]
fn keys_held_elsewhere_move_a_previous_identity_and_answer_sin() {
    let (mut site, old, new) = site_of_a_replaced_identity("sin-3");
    let queried = query_with(
        &mut site,
        elsewhere(new.site_key()),
        vec![elsewhere(old.site_key())],
        cross(),
    )
    .unwrap();
    assert_eq!(
        queried.status(),
        QueryStatus::KnownByPrevious { previous: 0 }
    );
    let urs = Box::new(elsewhere(old.iuk.clone()));
    finish(
        &mut site,
        queried.ident_replacing_previous_signed(&new.ilk(), urs, &mut rng()),
    )
    .unwrap();
    let ident = site.log.last().unwrap();
    assert_eq!(ident.ins(), Some(&new.site_key().indexed_secret("sin-3")));
    assert_eq!(ident.pins(), Some(&old.site_key().indexed_secret("sin-3")));
    assert!(site.superseded.contains(&old.site_key().public_key()));
}

#[test]
fn a_signer_that_fails_stops_the_transaction_with_its_reason() {
    let url = SqrlUrl::parse(URL).unwrap();
    let down = Elsewhere {
        key: Identity::new(1).site_key(),
        up: false,
    };
    let failed = Querying::start(url, down, Vec::new(), cross()).unwrap_err();
    assert_eq!(failed, ClientError::Signer(gone()));

    // The same for `urs`: nothing is sent.
    let mut site = Site::new();
    let (old, new) = (Identity::new(11), Identity::new(12));
    register(&mut site, &old);
    let queried = query(&mut site, &new, &[&old], cross()).unwrap();
    let down = Box::new(Elsewhere {
        key: old.iuk.clone(),
        up: false,
    });
    let before = site.log.len();
    let failed = queried
        .ident_replacing_previous_signed(&new.ilk(), down, &mut rng())
        .unwrap_err();
    assert_eq!(failed, ClientError::Signer(gone()));
    assert_eq!(site.log.len(), before);
}
