//! Scenario tests: a hand-driven client against [`MemoryServer`], each asserting
//! the exact TIF and the exact account change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use rand_core::OsRng;

use super::memory::{AttemptState, Handled, MemoryServer};
use super::*;
use crate::keys::{
    IdentityKey, IdentityUnlockKey, RandomLockKey, ServerUnlockKey, SiteKey,
    UnlockRequestSigningKey,
};
use crate::msg::{
    Ask, AskButton, Button, ClientOptions, ClientRequest, Command, RequestBody, ServerReply,
    ServerValue, Tif, VersionSet, signed_message,
};
use crate::params::ParamList;
use crate::url::SqrlUrl;

const BROWSER_IP: &str = "198.51.100.7";
const OTHER_IP: &str = "203.0.113.9";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn server() -> MemoryServer<OsRng> {
    let endpoint = Endpoint::from_origin("https://example.com", "/cli.sqrl").unwrap();
    MemoryServer::new(endpoint, Policy::new(), OsRng)
}

/// Which unlock key signs `urs`.
#[derive(Clone, Copy)]
enum Urs {
    None,
    /// The current identity's IUK with this SUK.
    Current(ServerUnlockKey),
    /// The previous identity's IUK with this SUK.
    Previous(ServerUnlockKey),
}

/// One request to send.
struct Req {
    command: Command,
    options: ClientOptions,
    with_previous: bool,
    lock: bool,
    urs: Urs,
    answer_sin: bool,
    /// Answer the `sin` with secrets derived from another identity's keys
    /// (a client that derives them wrongly).
    wrong_secret: bool,
    button: Option<Button>,
}

impl Req {
    fn new(command: Command) -> Self {
        Self {
            command,
            options: ClientOptions::NONE,
            with_previous: false,
            lock: false,
            urs: Urs::None,
            answer_sin: true,
            wrong_secret: false,
            button: None,
        }
    }
    fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }
    fn previous(mut self) -> Self {
        self.with_previous = true;
        self
    }
    fn lock(mut self) -> Self {
        self.lock = true;
        self
    }
    fn urs(mut self, urs: Urs) -> Self {
        self.urs = urs;
        self
    }
    fn without_ins(mut self) -> Self {
        self.answer_sin = false;
        self
    }
    fn wrong_secret(mut self) -> Self {
        self.wrong_secret = true;
        self
    }
    fn button(mut self, button: Button) -> Self {
        self.button = Some(button);
        self
    }
}

/// A client device with one identity and maybe a previous one.
struct Phone {
    iuk: IdentityUnlockKey,
    site: SiteKey,
    previous: Option<(IdentityUnlockKey, SiteKey)>,
    ip: IpAddr,
    url: SqrlUrl,
    last: Option<ServerReply>,
}

impl Phone {
    fn new(seed: u8, url: &str, ip_text: &str) -> Self {
        let url = SqrlUrl::parse(url).unwrap();
        let iuk = IdentityUnlockKey::from_bytes([seed; 32]);
        let site = iuk.master_key().site_key(url.site_key_string());
        Self {
            iuk,
            site,
            previous: None,
            ip: ip(ip_text),
            url,
            last: None,
        }
    }

    /// The same identities, starting a new transaction at `url`.
    fn at(&self, url: &str) -> Self {
        let url = SqrlUrl::parse(url).unwrap();
        let mut phone = Phone::new(0, url.as_str(), "0.0.0.0");
        phone.iuk = self.iuk.clone();
        phone.site = self.iuk.master_key().site_key(url.site_key_string());
        phone.previous = self.previous.as_ref().map(|(piuk, _)| {
            (
                piuk.clone(),
                piuk.master_key().site_key(url.site_key_string()),
            )
        });
        phone.ip = self.ip;
        phone.url = url;
        phone
    }

    /// A rekeyed device: a new identity with this one as its previous.
    fn rekeyed(&self, seed: u8) -> Self {
        let mut phone = Phone::new(seed, self.url.as_str(), "0.0.0.0");
        phone.ip = self.ip;
        phone.previous = Some((self.iuk.clone(), self.site_key_of(&self.iuk)));
        phone
    }

    fn site_key_of(&self, iuk: &IdentityUnlockKey) -> SiteKey {
        iuk.master_key().site_key(self.url.site_key_string())
    }

    fn idk(&self) -> IdentityKey {
        self.site.public_key()
    }

    fn target(&self) -> String {
        match &self.last {
            Some(reply) => reply.qry().to_owned(),
            None => self.url.post_url(),
        }
    }

    fn server_value(&self) -> String {
        match &self.last {
            Some(reply) => ServerValue::for_reply(reply),
            None => ServerValue::for_url(&self.url),
        }
    }

    /// The client value and the body for `req`.
    fn build(&self, req: &Req) -> (ClientRequest, RequestBody) {
        let mut builder = ClientRequest::builder(req.command, self.idk()).options(req.options);
        let previous = if req.with_previous {
            self.previous.as_ref()
        } else {
            None
        };
        if let Some((_, previous_site)) = previous {
            builder = builder.previous_identity(previous_site.public_key());
        }
        if req.lock {
            let (suk, vuk) = RandomLockKey::generate(&mut OsRng)
                .lock(&self.iuk.lock_key())
                .unwrap();
            builder = builder.lock(suk, vuk);
        }
        if req.answer_sin
            && let Some(sin) = self.last.as_ref().and_then(ServerReply::sin)
        {
            let stranger = IdentityUnlockKey::from_bytes([0xEE; 32])
                .master_key()
                .site_key(self.url.site_key_string());
            let (site, previous_site) = match previous {
                _ if req.wrong_secret => (&stranger, previous.map(|_| &stranger)),
                Some((_, previous_site)) => (&self.site, Some(previous_site)),
                None => (&self.site, None),
            };
            builder = builder.indexed_secret(site.indexed_secret(sin));
            if let Some(previous_site) = previous_site {
                builder = builder.previous_indexed_secret(previous_site.indexed_secret(sin));
            }
        }
        if let Some(button) = req.button {
            builder = builder.button(button);
        }
        let client = builder.build().unwrap();
        let urs_key: Option<UnlockRequestSigningKey> = match req.urs {
            Urs::None => None,
            Urs::Current(suk) => Some(self.iuk.unlock_request_signing_key(&suk).unwrap()),
            Urs::Previous(suk) => {
                let (piuk, _) = self.previous.as_ref().unwrap();
                Some(piuk.unlock_request_signing_key(&suk).unwrap())
            }
        };
        let body = RequestBody::sign(
            &client,
            &self.server_value(),
            &self.site,
            previous.map(|(_, site)| site),
            urs_key.as_ref(),
        )
        .unwrap();
        (client, body)
    }

    /// Posts a raw form body and keeps the reply for the next request.
    fn post(&mut self, server: &mut MemoryServer<OsRng>, form: &str) -> Handled {
        let handled = server.handle(&self.target(), form, self.ip);
        // What a driver that skips its write path for such requests relies on.
        if Incoming::parse("/cli.sqrl", form, self.ip).changes_nothing() {
            assert_eq!(handled.mutation, Mutation::None);
            assert!(matches!(
                handled.browser,
                BrowserOutcome::Unchanged | BrowserOutcome::Scanned | BrowserOutcome::Rejected
            ));
        }
        let reply = ServerReply::parse(&handled.body).unwrap();
        assert_eq!(reply.tif(), handled.tif);
        assert!(!reply.nut().is_empty());
        assert!(reply.qry().starts_with('/'));
        assert!(reply.qry().ends_with(&format!("nut={}", reply.nut())));
        self.last = Some(reply);
        handled
    }

    fn send(&mut self, server: &mut MemoryServer<OsRng>, req: Req) -> Handled {
        let (_, body) = self.build(&req);
        self.post(server, &body.to_form())
    }

    fn reply(&self) -> &ServerReply {
        self.last.as_ref().unwrap()
    }
}

/// A login page opened from the browser's IP, and a phone on the same IP.
fn page(server: &mut MemoryServer<OsRng>, seed: u8) -> (Phone, String) {
    let invitation = server.start_login(ip(BROWSER_IP), None);
    (
        Phone::new(seed, &invitation.url, BROWSER_IP),
        invitation.nut.as_str().to_owned(),
    )
}

/// Creates the association of `phone`'s identity through a full login.
fn enrol(server: &mut MemoryServer<OsRng>, seed: u8) -> Phone {
    let (mut phone, _) = page(server, seed);
    assert_eq!(phone.send(server, Req::new(Command::Query)).tif, tif(0x04));
    assert_eq!(
        phone.send(server, Req::new(Command::Ident).lock()).tif,
        tif(0x05)
    );
    phone
}

/// A fresh login page for an existing phone.
fn again(server: &mut MemoryServer<OsRng>, phone: &Phone) -> (Phone, String) {
    let invitation = server.start_login(ip(BROWSER_IP), None);
    (
        phone.at(&invitation.url),
        invitation.nut.as_str().to_owned(),
    )
}

fn tif(bits: u32) -> Tif {
    Tif::from_bits_retain(bits)
}

#[test]
fn new_user_query_then_ident_creates_the_association() {
    let mut server = server();
    let (mut phone, attempt) = page(&mut server, 1);

    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x04));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(handled.browser, BrowserOutcome::Scanned);
    assert_eq!(phone.reply().suk(), None);
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Scanned));

    let (client, body) = phone.build(&Req::new(Command::Ident).lock());
    let handled = phone.post(&mut server, &body.to_form());
    // PITFALLS 7: TIF is the state after processing, so 0x01 is set.
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        handled.mutation,
        Mutation::Create {
            idk: phone.idk(),
            suk: *client.suk().unwrap(),
            vuk: *client.vuk().unwrap(),
            options: AccountOptions::default(),
        }
    );
    assert_eq!(handled.browser, BrowserOutcome::LogIn { idk: phone.idk() });
    assert_eq!(
        server.attempt(&attempt),
        Some(&AttemptState::Confirmed(phone.idk()))
    );
    let account = server.account(&phone.idk()).unwrap();
    assert_eq!(account.suk, *client.suk().unwrap());
    assert!(!account.disabled);
}

#[test]
fn returning_user_is_known_and_logs_in_without_new_keys() {
    let mut server = server();
    let phone = enrol(&mut server, 2);
    let stored = server.account(&phone.idk()).cloned().unwrap();
    let (mut phone, attempt) = again(&mut server, &phone);

    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(phone.reply().suk(), None);
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        handled.mutation,
        Mutation::SetOptions {
            idk: phone.idk(),
            options: AccountOptions::default()
        }
    );
    assert_eq!(
        server.attempt(&attempt),
        Some(&AttemptState::Confirmed(phone.idk()))
    );
    assert_eq!(server.account(&phone.idk()), Some(&stored));
    assert_eq!(server.account_count(), 1);
}

#[test]
fn ip_mismatch_without_noiptest_is_exactly_0x40_and_changes_nothing() {
    let mut server = server();
    let known = enrol(&mut server, 3);
    let (mut phone, attempt) = again(&mut server, &known);
    phone.ip = ip(OTHER_IP);

    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x40));
    assert_eq!(handled.failure, Some(Failure::IpMismatch));
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x40));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Pending));

    // A new identity from elsewhere creates nothing either.
    let (mut stranger, _) = page(&mut server, 4);
    stranger.ip = ip(OTHER_IP);
    assert_eq!(
        stranger.send(&mut server, Req::new(Command::Query)).tif,
        tif(0x40)
    );
    let handled = stranger.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x40));
    assert!(server.account(&stranger.idk()).is_none());
}

#[test]
fn noiptest_allows_a_cross_device_login() {
    let mut server = server();
    let (mut phone, attempt) = page(&mut server, 5);
    phone.ip = ip(OTHER_IP);
    let noiptest = ClientOptions::NOIPTEST;

    let handled = phone.send(&mut server, Req::new(Command::Query).options(noiptest));
    assert_eq!(handled.tif, tif(0x00));
    let handled = phone.send(
        &mut server,
        Req::new(Command::Ident).options(noiptest).lock(),
    );
    assert_eq!(handled.tif, tif(0x01));
    assert!(matches!(handled.mutation, Mutation::Create { .. }));
    assert_eq!(
        server.attempt(&attempt),
        Some(&AttemptState::Confirmed(phone.idk()))
    );
}

#[test]
fn replayed_nut_is_a_transient_error_with_a_fresh_nut() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 6);
    let first_target = phone.target();
    let (_, body) = phone.build(&Req::new(Command::Query));
    let form = body.to_form();
    assert_eq!(phone.post(&mut server, &form).tif, tif(0x04));

    // The same POST again: the nut was used up.
    let replay = server.handle(&first_target, &form, phone.ip);
    assert_eq!(replay.tif, tif(0x60));
    assert_eq!(replay.failure, Some(Failure::UnknownNut));
    assert_eq!(replay.mutation, Mutation::None);
    let reply = ServerReply::parse(&replay.body).unwrap();
    assert_ne!(reply.nut(), phone.reply().nut());
    assert_eq!(reply.qry(), format!("/cli.sqrl?nut={}", reply.nut()));

    // The fresh nut accepts one retry; that conversation has no browser
    // behind it, so only a noiptest client gets through.
    let mut retry = phone.at(phone.url.as_str());
    retry.last = Some(reply);
    let handled = retry.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x40));
}

#[test]
fn expired_nut_is_a_transient_error_and_the_retry_cannot_confirm_a_login() {
    let mut server = server();
    let (mut phone, attempt) = page(&mut server, 7);
    server.advance(super::memory::DEFAULT_ATTEMPT_LIFETIME);
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x60));
    assert_eq!(handled.failure, Some(Failure::ExpiredNut));

    let noiptest = ClientOptions::NOIPTEST;
    let handled = phone.send(&mut server, Req::new(Command::Query).options(noiptest));
    assert_eq!(handled.tif, tif(0x00));
    // No page waits behind the retried conversation: an ident would log no
    // one in, so it stays transient and nothing is created.
    let handled = phone.send(
        &mut server,
        Req::new(Command::Ident).options(noiptest).lock(),
    );
    assert_eq!(handled.tif, tif(0x60));
    assert_eq!(handled.failure, Some(Failure::NoWaitingPage));
    assert_eq!(handled.mutation, Mutation::None);
    assert!(server.account(&phone.idk()).is_none());
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Pending));

    // Nor can a same-device (CPS) ident: a session link minted for no page
    // could be handed to any browser (login CSRF).
    let cps = ClientOptions::NOIPTEST | ClientOptions::CPS;
    phone.send(&mut server, Req::new(Command::Query).options(cps));
    let handled = phone.send(&mut server, Req::new(Command::Ident).options(cps).lock());
    assert_eq!(handled.tif, tif(0x60));
    assert_eq!(handled.failure, Some(Failure::NoWaitingPage));
    assert!(handled.cps_url.is_none());
    assert!(server.account(&phone.idk()).is_none());
}

#[test]
fn tampered_server_value_with_good_signatures_is_transient() {
    let mut server = server();
    let (mut phone, attempt) = page(&mut server, 8);
    // The client signs what it sends, so the signatures verify; the echo does not.
    let tampered = SqrlUrl::parse(&format!("{}&evil=1", phone.url.as_str())).unwrap();
    phone.url = tampered;
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x64));
    assert_eq!(handled.failure, Some(Failure::ServerValueMismatch));
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Pending));

    // A later step: the echo of the previous reply, one byte off.
    let (mut phone, _) = page(&mut server, 8);
    phone.send(&mut server, Req::new(Command::Query));
    let reply = phone.reply().clone();
    let mut body = reply.as_str().to_owned();
    body.push('A');
    let (client, _) = phone.build(&Req::new(Command::Ident).lock());
    let message = signed_message(client.as_str(), &body);
    let form = format!(
        "client={}&server={body}&ids={}",
        client.as_str(),
        phone.site.sign(&message).to_base64url()
    );
    let handled = phone.post(&mut server, &form);
    assert_eq!(handled.tif, tif(0x64));
    assert!(server.account(&phone.idk()).is_none());
}

#[test]
fn malformed_body_is_a_client_failure_and_still_consumes_the_nut() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 9);
    let target = phone.target();
    let handled = server.handle(&target, "client=%%%&server=x", phone.ip);
    assert_eq!(handled.tif, tif(0xC4));
    assert!(matches!(handled.failure, Some(Failure::Malformed(_))));
    assert!(ServerReply::parse(&handled.body).is_ok());

    // The good request on the same nut is now a replay.
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x60));

    // A body with no nut at all still gets a reply with a fresh nut.
    let handled = server.handle("/cli.sqrl", "", phone.ip);
    assert_eq!(handled.tif, tif(0xC0));
    assert!(ServerReply::parse(&handled.body).is_ok());
}

#[test]
fn unknown_command_and_version_are_not_supported() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 10);
    let mut list = ParamList::new();
    list.push("ver", "1").unwrap();
    list.push("cmd", "frob").unwrap();
    list.push("idk", &phone.idk().to_base64url()).unwrap();
    let client = list.to_base64url();
    let server_value = phone.server_value();
    let signature = phone.site.sign(&signed_message(&client, &server_value));
    let form = format!(
        "client={client}&server={server_value}&ids={}",
        signature.to_base64url()
    );
    assert_eq!(phone.post(&mut server, &form).tif, tif(0x54));

    // `ver=2` only: no version in common, after every other check passed.
    let (mut phone, _) = page(&mut server, 10);
    let client = ClientRequest::builder(Command::Query, phone.idk())
        .version(VersionSet::single(2))
        .build()
        .unwrap();
    let body = RequestBody::sign(&client, &phone.server_value(), &phone.site, None, None).unwrap();
    let handled = phone.post(&mut server, &body.to_form());
    assert_eq!(handled.tif, tif(0x54));
    assert_eq!(handled.failure, Some(Failure::UnsupportedVersion));
}

/// The form of `req` with one signature replaced by a signature from another key.
fn forged(phone: &Phone, req: &Req, field: &str) -> String {
    let (_, body) = phone.build(req);
    let message = body.signed_message();
    let wrong = IdentityUnlockKey::from_bytes([0xEE; 32])
        .master_key()
        .site_key(phone.url.site_key_string())
        .sign(&message)
        .to_base64url();
    let form = body.to_form();
    let mut out = Vec::new();
    for item in form.split('&') {
        match item.split_once('=') {
            Some((name, _)) if name == field => out.push(format!("{name}={wrong}")),
            _ => out.push(item.to_owned()),
        }
    }
    out.join("&")
}

#[test]
fn bad_ids_pids_or_urs_fail_with_0xc0_and_change_nothing() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 11);
    let form = forged(&phone, &Req::new(Command::Ident).lock(), "ids");
    let handled = phone.post(&mut server, &form);
    assert_eq!(handled.tif, tif(0xC4));
    assert!(matches!(handled.failure, Some(Failure::Signature(_))));
    assert_eq!(handled.mutation, Mutation::None);
    assert!(server.account(&phone.idk()).is_none());

    // Bad signature beats a stale nut: 0xC0, not 0x60.
    let (mut replay, _) = page(&mut server, 11);
    replay.send(&mut server, Req::new(Command::Query));
    let mut stale = replay.at(replay.url.as_str());
    let form = forged(&stale, &Req::new(Command::Query), "ids");
    assert_eq!(stale.post(&mut server, &form).tif, tif(0xC0));

    // pids from the wrong key.
    let old = enrol(&mut server, 12);
    let (mut new, _) = again(&mut server, &old.rekeyed(13));
    let form = forged(&new, &Req::new(Command::Query).previous(), "pids");
    let handled = new.post(&mut server, &form);
    assert_eq!(handled.tif, tif(0xC4));

    // urs from the wrong key, on a replacement.
    let (mut new, _) = again(&mut server, &old.rekeyed(13));
    assert_eq!(
        new.send(&mut server, Req::new(Command::Query).previous())
            .tif,
        tif(0x06)
    );
    let suk = *new.reply().suk().unwrap();
    let req = Req::new(Command::Ident)
        .previous()
        .lock()
        .urs(Urs::Previous(suk));
    let form = forged(&new, &req, "urs");
    let handled = new.post(&mut server, &form);
    assert_eq!(
        handled.tif,
        tif(0xC6),
        "the previous identity is known (0x02)"
    );
    assert_eq!(handled.mutation, Mutation::None);
    assert!(server.account(&old.idk()).is_some());
    assert!(!server.is_superseded(&old.idk()));
}

#[test]
fn a_nut_bound_to_one_identity_rejects_another() {
    let mut server = server();
    let (mut owner, attempt) = page(&mut server, 14);
    assert_eq!(
        owner.send(&mut server, Req::new(Command::Query)).tif,
        tif(0x04)
    );

    // Another identity continues the owner's conversation (echo and nut valid).
    let mut intruder = Phone::new(15, owner.url.as_str(), BROWSER_IP);
    intruder.last = owner.last.clone();
    let handled = intruder.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x1C4));
    assert_eq!(handled.failure, Some(Failure::BoundToOtherIdentity));
    assert_eq!(handled.mutation, Mutation::None);
    assert!(server.account(&intruder.idk()).is_none());
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Scanned));

    // Across IPs with noiptest the bits are 0x1C0 exactly.
    intruder.ip = ip(OTHER_IP);
    let handled = intruder.send(
        &mut server,
        Req::new(Command::Ident)
            .lock()
            .options(ClientOptions::NOIPTEST),
    );
    assert_eq!(handled.tif, tif(0x1C0));
}

#[test]
fn disable_then_ident_fails_and_returns_the_suk() {
    let mut server = server();
    let phone = enrol(&mut server, 16);
    let stored = server.account(&phone.idk()).cloned().unwrap();
    let (mut phone, attempt) = again(&mut server, &phone);
    assert_eq!(
        phone.send(&mut server, Req::new(Command::Query)).tif,
        tif(0x05)
    );
    let handled = phone.send(&mut server, Req::new(Command::Disable));
    assert_eq!(handled.tif, tif(0x0D));
    assert_eq!(
        handled.mutation,
        Mutation::Disable {
            idk: phone.idk(),
            options: AccountOptions::default()
        }
    );
    assert_eq!(phone.reply().suk(), Some(&stored.suk));
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Rejected));
    assert!(server.account(&phone.idk()).unwrap().disabled);

    let (mut phone, attempt) = again(&mut server, &phone);
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x0D));
    assert_eq!(phone.reply().suk(), Some(&stored.suk));
    assert_eq!(phone.reply().ask(), None);
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x4D));
    assert_eq!(handled.failure, Some(Failure::Disabled));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(phone.reply().suk(), Some(&stored.suk));
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Rejected));
}

#[test]
fn enable_needs_a_valid_urs() {
    let mut server = server();
    let phone = enrol(&mut server, 17);
    let (mut phone, _) = again(&mut server, &phone);
    phone.send(&mut server, Req::new(Command::Query));
    phone.send(&mut server, Req::new(Command::Disable));
    let suk = *phone.reply().suk().unwrap();

    let handled = phone.send(&mut server, Req::new(Command::Enable));
    assert_eq!(handled.tif, tif(0xCD));
    assert_eq!(handled.failure, Some(Failure::MissingUrs));
    let form = forged(
        &phone,
        &Req::new(Command::Enable).urs(Urs::Current(suk)),
        "urs",
    );
    assert_eq!(phone.post(&mut server, &form).tif, tif(0xCD));
    assert!(server.account(&phone.idk()).unwrap().disabled);

    let handled = phone.send(
        &mut server,
        Req::new(Command::Enable).urs(Urs::Current(suk)),
    );
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        handled.mutation,
        Mutation::Enable {
            idk: phone.idk(),
            options: AccountOptions::default()
        }
    );
    assert!(!server.account(&phone.idk()).unwrap().disabled);
    assert_eq!(
        phone.send(&mut server, Req::new(Command::Ident)).tif,
        tif(0x05)
    );
}

#[test]
fn remove_needs_a_valid_urs_and_deletes_the_association() {
    let mut server = server();
    let phone = enrol(&mut server, 18);
    let (mut phone, _) = again(&mut server, &phone);
    phone.send(
        &mut server,
        Req::new(Command::Query).options(ClientOptions::SUK),
    );
    let suk = *phone.reply().suk().unwrap();

    let handled = phone.send(&mut server, Req::new(Command::Remove));
    assert_eq!(handled.tif, tif(0xC5));
    assert!(server.account(&phone.idk()).is_some());

    let handled = phone.send(
        &mut server,
        Req::new(Command::Remove).urs(Urs::Current(suk)),
    );
    assert_eq!(handled.tif, tif(0x04));
    assert_eq!(handled.mutation, Mutation::Remove { idk: phone.idk() });
    assert!(server.account(&phone.idk()).is_none());
    assert!(!server.is_superseded(&phone.idk()));
}

#[test]
fn rekeyed_identity_replaces_the_previous_one() {
    let mut server = server();
    let old = enrol(&mut server, 19);
    let old_suk = server.account(&old.idk()).unwrap().suk;
    let (mut new, attempt) = again(&mut server, &old.rekeyed(20));

    // Query with pidk: only the previous identity is known; SUK returned.
    let handled = new.send(&mut server, Req::new(Command::Query).previous());
    assert_eq!(handled.tif, tif(0x06));
    assert_eq!(new.reply().suk(), Some(&old_suk));

    // Without urs the replacement is refused; the failure still reports
    // that the previous identity is known (0x02, SPEC 3.2).
    let handled = new.send(&mut server, Req::new(Command::Ident).previous().lock());
    assert_eq!(handled.tif, tif(0xC6));
    assert_eq!(handled.failure, Some(Failure::MissingUrs));

    let req = Req::new(Command::Ident)
        .previous()
        .lock()
        .urs(Urs::Previous(old_suk));
    let (client, body) = new.build(&req);
    let handled = new.post(&mut server, &body.to_form());
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        handled.mutation,
        Mutation::Replace {
            previous: old.idk(),
            idk: new.idk(),
            suk: *client.suk().unwrap(),
            vuk: *client.vuk().unwrap(),
            options: AccountOptions::default(),
        }
    );
    assert_eq!(
        server.attempt(&attempt),
        Some(&AttemptState::Confirmed(new.idk()))
    );
    assert!(server.account(&old.idk()).is_none());
    assert_eq!(
        server.account(&new.idk()).unwrap().suk,
        *client.suk().unwrap()
    );
    assert!(server.is_superseded(&old.idk()));

    // A device still holding the old identity.
    let (mut stale, _) = again(&mut server, &old);
    let handled = stale.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x204));
    assert!(handled.failure.is_none());
    let handled = stale.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x244));
    assert_eq!(handled.failure, Some(Failure::Superseded));
    assert_eq!(handled.mutation, Mutation::None);
    assert!(server.account(&old.idk()).is_none());
    assert_eq!(server.account_count(), 1);
}

#[test]
fn disabled_previous_identity_is_enabled_then_replaced() {
    let mut server = server();
    let old = enrol(&mut server, 21);
    let (mut old_page, _) = again(&mut server, &old);
    old_page.send(&mut server, Req::new(Command::Query));
    old_page.send(&mut server, Req::new(Command::Disable));
    let old_suk = server.account(&old.idk()).unwrap().suk;

    let (mut new, _) = again(&mut server, &old.rekeyed(22));
    let handled = new.send(&mut server, Req::new(Command::Query).previous());
    assert_eq!(handled.tif, tif(0x0E));
    assert_eq!(new.reply().suk(), Some(&old_suk));
    let replace = || {
        Req::new(Command::Ident)
            .previous()
            .lock()
            .urs(Urs::Previous(old_suk))
    };
    let handled = new.send(&mut server, replace());
    assert_eq!(handled.tif, tif(0x4E));
    assert_eq!(handled.failure, Some(Failure::Disabled));

    let handled = new.send(
        &mut server,
        Req::new(Command::Enable)
            .previous()
            .urs(Urs::Previous(old_suk)),
    );
    assert_eq!(handled.tif, tif(0x06));
    assert_eq!(
        handled.mutation,
        Mutation::Enable {
            idk: old.idk(),
            options: AccountOptions::default()
        }
    );
    let handled = new.send(&mut server, replace());
    assert_eq!(handled.tif, tif(0x05));
    assert!(matches!(handled.mutation, Mutation::Replace { .. }));
}

#[test]
fn opt_suk_returns_the_stored_suk() {
    let mut server = server();
    let phone = enrol(&mut server, 23);
    let stored = server.account(&phone.idk()).unwrap().suk;
    let (mut phone, _) = again(&mut server, &phone);
    phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(phone.reply().suk(), None);
    phone.send(
        &mut server,
        Req::new(Command::Query).options(ClientOptions::SUK),
    );
    assert_eq!(phone.reply().suk(), Some(&stored));
    phone.send(
        &mut server,
        Req::new(Command::Ident).options(ClientOptions::SUK),
    );
    assert_eq!(phone.reply().suk(), Some(&stored));
}

#[test]
fn sqrlonly_and_hardlock_change_only_on_non_query_commands() {
    let mut server = server();
    let phone = enrol(&mut server, 24);
    let both = ClientOptions::SQRLONLY | ClientOptions::HARDLOCK;
    let (mut phone, _) = again(&mut server, &phone);
    let handled = phone.send(&mut server, Req::new(Command::Query).options(both));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(
        server.account(&phone.idk()).unwrap().options,
        AccountOptions::default()
    );

    let handled = phone.send(&mut server, Req::new(Command::Ident).options(both));
    let set = AccountOptions {
        sqrl_only: true,
        hardlock: true,
    };
    assert_eq!(
        handled.mutation,
        Mutation::SetOptions {
            idk: phone.idk(),
            options: set
        }
    );
    assert_eq!(server.account(&phone.idk()).unwrap().options, set);

    // A later query without them leaves them; an ident without them clears them.
    let (mut phone, _) = again(&mut server, &phone);
    phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(server.account(&phone.idk()).unwrap().options, set);
    phone.send(
        &mut server,
        Req::new(Command::Ident).options(ClientOptions::SQRLONLY),
    );
    assert_eq!(
        server.account(&phone.idk()).unwrap().options,
        AccountOptions {
            sqrl_only: true,
            hardlock: false
        }
    );
}

#[test]
fn cps_returns_a_url_and_never_logs_the_page_in() {
    let mut server = server();
    let invitation = server.start_login(ip(BROWSER_IP), Some("https://example.com/login"));
    let attempt = invitation.nut.as_str().to_owned();
    // Same device: the client got the link with can=.
    let mut phone = Phone::new(25, &invitation.link, BROWSER_IP);
    let cps = ClientOptions::CPS;
    assert_eq!(
        phone
            .send(&mut server, Req::new(Command::Query).options(cps))
            .tif,
        tif(0x04)
    );
    assert_eq!(phone.reply().url(), None);
    let handled = phone.send(&mut server, Req::new(Command::Ident).options(cps).lock());
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        handled.browser,
        BrowserOutcome::ClientProvidedSession { idk: phone.idk() }
    );
    let url = handled.cps_url.clone().unwrap();
    assert_eq!(phone.reply().url(), Some(url.as_str()));
    assert!(url.starts_with("https://example.com/"));
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::ClientSession));
    assert_eq!(server.redeem_cps_url(&url), Some(phone.idk()));
    assert_eq!(server.redeem_cps_url(&url), None);
}

#[test]
fn ask_is_sent_to_known_identities_and_btn_comes_back() {
    let mut server = server();
    let ask = Ask::new("Log in to Example?")
        .with_button(AskButton::new("Yes", None).unwrap())
        .unwrap()
        .with_button(AskButton::new("No", Some("/cancel".into())).unwrap())
        .unwrap();
    let phone = enrol(&mut server, 26);
    server.set_policy(Policy::new().with_ask(ask.clone()));

    // A new identity gets no ask (SPEC 3: only with TIF 0x01).
    let (mut stranger, _) = page(&mut server, 27);
    stranger.send(&mut server, Req::new(Command::Query));
    assert_eq!(stranger.reply().ask(), None);

    let (mut phone, _) = again(&mut server, &phone);
    phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(phone.reply().ask(), Some(&ask));
    let handled = phone.send(&mut server, Req::new(Command::Ident).button(Button::Second));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(handled.button, Some(Button::Second));
    // No ask pending any more: a btn is not reported.
    let handled = phone.send(&mut server, Req::new(Command::Ident).button(Button::First));
    assert_eq!(handled.button, None);
}

#[test]
fn sin_requires_ins_and_pins_on_the_next_request() {
    let mut server = server();
    let old = enrol(&mut server, 28);
    server.set_policy(Policy::new().with_sin("0").unwrap());
    let (mut phone, _) = again(&mut server, &old);
    phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(phone.reply().sin(), Some("0"));

    let handled = phone.send(&mut server, Req::new(Command::Ident).without_ins());
    assert_eq!(handled.tif, tif(0xC5));
    assert_eq!(handled.failure, Some(Failure::MissingIndexedSecret("ins")));
    // The failure reply carries the sin too: the next request needs ins.
    assert_eq!(phone.reply().sin(), Some("0"));

    phone.send(&mut server, Req::new(Command::Query));
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x05));
    let secrets = handled.indexed_secrets.unwrap();
    assert_eq!(secrets.sin, "0");
    assert_eq!(secrets.ins, phone.site.indexed_secret("0"));
    assert_eq!(secrets.pins, None);

    // With a previous identity, pins is needed too.
    let (mut new, _) = again(&mut server, &old.rekeyed(29));
    new.send(&mut server, Req::new(Command::Query).previous());
    assert_eq!(new.reply().sin(), Some("0"));
    // ins without pins.
    let sin = "0";
    let previous_site = &new.previous.as_ref().unwrap().1;
    let expected_pins = previous_site.indexed_secret(sin);
    let client = ClientRequest::builder(Command::Query, new.idk())
        .previous_identity(previous_site.public_key())
        .indexed_secret(new.site.indexed_secret(sin))
        .build()
        .unwrap();
    let body = RequestBody::sign(
        &client,
        &new.server_value(),
        &new.site,
        Some(previous_site),
        None,
    )
    .unwrap();
    let handled = new.post(&mut server, &body.to_form());
    assert_eq!(handled.tif, tif(0xC6));
    assert_eq!(handled.failure, Some(Failure::MissingIndexedSecret("pins")));

    new.send(&mut server, Req::new(Command::Query).previous());
    let handled = new.send(&mut server, Req::new(Command::Query).previous());
    let secrets = handled.indexed_secrets.unwrap();
    assert_eq!(secrets.pins, Some(expected_pins));
}

#[test]
fn sin_goes_out_on_every_reply_failures_included() {
    let mut server = server();
    server.set_policy(Policy::new().with_sin("s1").unwrap());
    let (mut phone, _) = page(&mut server, 40);
    let first_target = phone.target();
    let (_, body) = phone.build(&Req::new(Command::Query));
    let form = body.to_form();
    let handled = phone.post(&mut server, &form);
    assert_eq!(handled.tif, tif(0x04));
    assert_eq!(phone.reply().sin(), Some("s1"));
    // A replayed nut (0x60) and a malformed body (0xC0) are answered with it.
    let replay = server.handle(&first_target, &form, phone.ip);
    assert_eq!(replay.tif, tif(0x60));
    assert_eq!(ServerReply::parse(&replay.body).unwrap().sin(), Some("s1"));
    let handled = phone.post(&mut server, "client=AAAA&server=AAAA&ids=AAAA");
    assert!(handled.tif.contains(Tif::CLIENT_FAILURE));
    assert_eq!(phone.reply().sin(), Some("s1"));
    // So the request after a failure must answer it as well.
    let handled = phone.send(&mut server, Req::new(Command::Query).without_ins());
    assert_eq!(handled.tif, tif(0xC4));
    assert_eq!(handled.failure, Some(Failure::MissingIndexedSecret("ins")));
    let handled = phone.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(handled.indexed_secrets.unwrap().sin, "s1");
}

#[test]
fn sin_cannot_be_bypassed_by_skipping_the_query() {
    let mut server = server();
    let known = enrol(&mut server, 41);
    server.set_policy(Policy::new().with_sin("s2").unwrap());

    // A new identity's ident as the first request: nothing created.
    let (mut phone, attempt) = page(&mut server, 42);
    let handled = phone.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0xC4));
    assert_eq!(handled.failure, Some(Failure::UnansweredSin("ident")));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(handled.browser, BrowserOutcome::Unchanged);
    assert!(server.account(&phone.idk()).is_none());
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Pending));
    // The refusal carries the sin, so the retry on its nut answers it.
    assert_eq!(phone.reply().sin(), Some("s2"));
    let handled = phone.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x05));

    // A known identity: the state bits are honest (0x01 before the command).
    let (mut phone, _) = again(&mut server, &known);
    let handled = phone.send(&mut server, Req::new(Command::Disable));
    assert_eq!(handled.tif, tif(0xC5));
    assert_eq!(handled.failure, Some(Failure::UnansweredSin("disable")));
    assert!(!server.account(&known.idk()).unwrap().disabled);
    // A first `query` needs no answer: no reply came before it.
    let (mut phone, _) = again(&mut server, &known);
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x05));
    assert!(handled.indexed_secrets.is_none());

    // Without a sin configured nothing is required.
    server.set_policy(Policy::new());
    let (mut phone, _) = page(&mut server, 43);
    let handled = phone.send(&mut server, Req::new(Command::Ident).lock());
    assert_eq!(handled.tif, tif(0x05));
}

/// The digest of `phone`'s `ins` for `sin`.
fn ins_digest(phone: &Phone, sin: &str) -> SecretDigest {
    SecretDigest::of(&phone.site.indexed_secret(sin))
}

#[test]
fn a_new_association_keeps_its_secret_and_a_different_one_is_refused() {
    let mut server = server();
    server.set_policy(Policy::new().with_sin("7").unwrap());
    let phone = enrol(&mut server, 44);
    // The ident that created the association kept its ins.
    assert_eq!(
        server.kept_secret(&phone.idk(), "7"),
        Some(ins_digest(&phone, "7"))
    );

    // Later, a wrong secret: 0xC0 plus the state known before the command
    // (0x05), and nothing changes, options included.
    let (mut phone, attempt) = again(&mut server, &phone);
    assert_eq!(
        phone.send(&mut server, Req::new(Command::Query)).tif,
        tif(0x05)
    );
    let handled = phone.send(
        &mut server,
        Req::new(Command::Ident)
            .options(ClientOptions::SQRLONLY)
            .wrong_secret(),
    );
    assert_eq!(handled.tif, tif(0xC5));
    assert_eq!(handled.failure, Some(Failure::IndexedSecretMismatch));
    assert_eq!(handled.mutation, Mutation::None);
    assert_eq!(handled.browser, BrowserOutcome::Unchanged);
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Scanned));
    assert!(!server.account(&phone.idk()).unwrap().options.sqrl_only);
    assert_eq!(
        server.kept_secret(&phone.idk(), "7"),
        Some(ins_digest(&phone, "7"))
    );
    // A query is checked as well: its success would tell the client nothing
    // is wrong.
    let handled = phone.send(&mut server, Req::new(Command::Query).wrong_secret());
    assert_eq!(handled.tif, tif(0xC5));
    assert_eq!(handled.failure, Some(Failure::IndexedSecretMismatch));
    // The right secret still logs the waiting browser in.
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        server.attempt(&attempt),
        Some(&AttemptState::Confirmed(phone.idk()))
    );
}

#[test]
fn the_first_secret_of_an_existing_association_is_remembered_once() {
    let mut server = server();
    let phone = enrol(&mut server, 45);
    server.set_policy(Policy::new().with_sin("8").unwrap());
    let (mut phone, _) = again(&mut server, &phone);
    // A query keeps nothing (PITFALLS 28).
    phone.send(&mut server, Req::new(Command::Query));
    let handled = phone.send(&mut server, Req::new(Command::Query));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(server.kept_secret(&phone.idk(), "8"), None);
    // A successful ident of the known identity keeps it, once.
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0x05));
    assert_eq!(
        server.kept_secret(&phone.idk(), "8"),
        Some(ins_digest(&phone, "8"))
    );
}

#[test]
fn the_secret_decision_reads_the_kept_digest_from_the_records() {
    // Decided directly: the records carry what the driver read.
    let sin = Policy::new().with_sin("s3").unwrap();
    let mut server = server();
    server.set_policy(sin.clone());
    let invitation = server.start_login(ip(BROWSER_IP), None);
    let mut phone = Phone::new(46, &invitation.url, BROWSER_IP);
    let (_, body) = phone.build(&Req::new(Command::Query));
    let query = Incoming::parse(&phone.target(), &body.to_form(), phone.ip).decide(
        &sin,
        Some(invitation.conversation.clone()),
        Records::default(),
        0,
    );
    let issued = query.finish(Nut::generate(&mut OsRng), None).unwrap();
    assert_eq!(issued.secret_write, None, "a query keeps nothing");
    phone.last = Some(issued.reply.clone());

    let (suk, vuk) = RandomLockKey::generate(&mut OsRng)
        .lock(&phone.iuk.lock_key())
        .unwrap();
    let known = |secret: Option<SecretDigest>, disabled: bool| Records {
        current: Some(AccountRecord {
            suk,
            vuk,
            disabled,
            options: AccountOptions::default(),
        }),
        current_secret: secret,
        ..Records::default()
    };
    let decide = |req: Req, records: Records| {
        let (_, body) = phone.build(&req);
        Incoming::parse(&phone.target(), &body.to_form(), phone.ip).decide(
            &sin,
            Some(issued.conversation.clone()),
            records,
            0,
        )
    };
    let right = ins_digest(&phone, "s3");
    let other = SecretDigest::from_slice(&[9; 32]).unwrap();

    // A new association: 0x05 after, and it keeps its ins.
    let created = decide(Req::new(Command::Ident).lock(), Records::default());
    assert_eq!(created.tif(), tif(0x05));
    assert_eq!(
        created.secret_write(),
        Some(&SecretWrite::Establish {
            idk: phone.idk(),
            sin: "s3".into(),
            digest: right,
        })
    );
    // Known, with the same digest kept: nothing more to keep.
    let same = decide(Req::new(Command::Ident), known(Some(right), false));
    assert_eq!(same.tif(), tif(0x05));
    assert_eq!(same.secret_write(), None);
    // Known, nothing kept yet: remembered.
    let first = decide(Req::new(Command::Ident), known(None, false));
    assert_eq!(
        first.secret_write(),
        Some(&SecretWrite::Remember {
            idk: phone.idk(),
            sin: "s3".into(),
            digest: right,
        })
    );
    // Known, another digest kept: refused with the state before (0x05).
    let refused = decide(Req::new(Command::Ident), known(Some(other), false));
    assert_eq!(refused.tif(), tif(0xC5));
    assert_eq!(refused.failure(), Some(&Failure::IndexedSecretMismatch));
    assert_eq!(refused.mutation(), &Mutation::None);
    assert_eq!(refused.browser(), &BrowserOutcome::Unchanged);
    assert_eq!(refused.secret_write(), None);
    let reply = refused.finish(Nut::generate(&mut OsRng), None).unwrap();
    assert_eq!(reply.reply.tif(), tif(0xC5));
    assert_eq!(reply.reply.sin(), Some("s3"));
    assert_eq!(reply.mutation, Mutation::None);
    // The browser still waits: the right secret can still log it in.
    assert!(reply.conversation.browser.is_some());

    // A disabled account re-enabled: 0x01 after, 0x0D before. The SUK the
    // success would return is not sent with the refusal.
    let enable = || {
        Req::new(Command::Enable)
            .options(ClientOptions::SUK)
            .urs(Urs::Current(suk))
    };
    let enabled = decide(enable(), known(Some(right), true));
    assert_eq!(enabled.tif(), tif(0x05));
    assert!(enabled.suk().is_some());
    let refused = decide(enable(), known(Some(other), true));
    assert_eq!(refused.tif(), tif(0xCD));
    assert!(refused.suk().is_none());
}

#[test]
fn a_replacement_must_present_the_retired_secret_and_keeps_the_new_one() {
    let mut server = server();
    server.set_policy(Policy::new().with_sin("9").unwrap());
    let old = enrol(&mut server, 47);
    let (mut new, attempt) = again(&mut server, &old.rekeyed(48));
    new.send(&mut server, Req::new(Command::Query).previous());
    let suk = *new.reply().suk().unwrap();
    let replace = || {
        Req::new(Command::Ident)
            .previous()
            .lock()
            .urs(Urs::Previous(suk))
    };
    // pins from a stranger: 0xC0 plus what was known (0x02 | 0x04).
    let handled = new.send(&mut server, replace().wrong_secret());
    assert_eq!(handled.tif, tif(0xC6));
    assert_eq!(handled.failure, Some(Failure::IndexedSecretMismatch));
    assert!(server.account(&old.idk()).is_some());
    assert!(server.account(&new.idk()).is_none());
    assert_eq!(server.attempt(&attempt), Some(&AttemptState::Scanned));
    // The retired identity's own pins: replaced, and the account's secret is
    // now the new identity's ins.
    let handled = new.send(&mut server, replace());
    assert_eq!(handled.tif, tif(0x05));
    assert!(matches!(handled.mutation, Mutation::Replace { .. }));
    assert_eq!(
        server.kept_secret(&new.idk(), "9"),
        Some(ins_digest(&new, "9"))
    );
    assert_eq!(server.kept_secret(&old.idk(), "9"), None);
}

#[test]
fn a_page_conversation_gets_a_fresh_nut_lifetime_with_each_reply() {
    let mut server = server();
    let invitation = server.start_login(ip(BROWSER_IP), None);
    let phone = Phone::new(49, &invitation.url, BROWSER_IP);
    let (_, body) = phone.build(&Req::new(Command::Query));
    let policy = Policy::new().with_nut_lifetime(30);
    let decide = |conversation: Conversation, now: u64| {
        Incoming::parse(&phone.target(), &body.to_form(), phone.ip)
            .decide(&policy, Some(conversation), Records::default(), now)
            .finish(Nut::generate(&mut OsRng), None)
            .unwrap()
    };
    // The page's first nut lives as the page said (the attempt's lifetime);
    // the next one, 30 s from the reply that hands it out.
    assert_eq!(
        invitation.conversation.expires_at,
        super::memory::DEFAULT_ATTEMPT_LIFETIME
    );
    let issued = decide(invitation.conversation.clone(), 100);
    assert_eq!(issued.reply.tif(), tif(0x04));
    assert_eq!(issued.conversation.expires_at, 130);
    // Without the setting, every step keeps the first expiry.
    let issued = Incoming::parse(&phone.target(), &body.to_form(), phone.ip)
        .decide(
            &Policy::new(),
            Some(invitation.conversation.clone()),
            Records::default(),
            100,
        )
        .finish(Nut::generate(&mut OsRng), None)
        .unwrap();
    assert_eq!(
        issued.conversation.expires_at,
        invitation.conversation.expires_at
    );
    // A conversation with no page keeps its retry window.
    let issued = decide(Conversation::for_urls([], None, 500), 100);
    assert_eq!(issued.conversation.expires_at, 500);
    let issued = Incoming::parse(&phone.target(), &body.to_form(), phone.ip)
        .decide(&policy, None, Records::default(), 100)
        .finish(Nut::generate(&mut OsRng), None)
        .unwrap();
    assert_eq!(issued.conversation.expires_at, 100 + DEFAULT_RETRY_WINDOW);
}

#[test]
fn urs_without_a_stored_vuk_is_refused() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 30);
    phone.send(&mut server, Req::new(Command::Query));
    let made_up = ServerUnlockKey::from_bytes([9; 32]);
    let handled = phone.send(
        &mut server,
        Req::new(Command::Ident).lock().urs(Urs::Current(made_up)),
    );
    assert_eq!(handled.tif, tif(0xC4));
    assert_eq!(handled.failure, Some(Failure::UnverifiableUrs));
    assert!(server.account(&phone.idk()).is_none());
}

#[test]
fn commands_on_unknown_identities_fail_without_change() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 31);
    phone.send(&mut server, Req::new(Command::Query));
    let handled = phone.send(&mut server, Req::new(Command::Disable));
    assert_eq!(handled.tif, tif(0x44));
    assert_eq!(handled.failure, Some(Failure::UnknownIdentity));
    let handled = phone.send(&mut server, Req::new(Command::Ident));
    assert_eq!(handled.tif, tif(0xC4));
    assert_eq!(handled.failure, Some(Failure::MissingLock));
    assert_eq!(server.account_count(), 0);
}

#[test]
fn x_is_kept_in_qry() {
    let endpoint = Endpoint::from_origin("https://example.com", "/site/cli.sqrl")
        .unwrap()
        .with_path_extension(5);
    let mut server = MemoryServer::new(endpoint, Policy::new(), OsRng);
    let invitation = server.start_login(ip(BROWSER_IP), None);
    let mut phone = Phone::new(32, &invitation.url, BROWSER_IP);
    phone.send(&mut server, Req::new(Command::Query));
    let reply = phone.reply();
    assert_eq!(
        reply.qry(),
        format!("/site/cli.sqrl?x=5&nut={}", reply.nut())
    );
}

#[test]
fn transient_failure_conversion_undoes_the_mutation() {
    let mut server = server();
    let invitation = server.start_login(ip(BROWSER_IP), None);
    let phone = Phone::new(33, &invitation.url, BROWSER_IP);
    let (_, body) = phone.build(&Req::new(Command::Ident).lock());
    let target = format!("/cli.sqrl?nut={}", invitation.nut);
    let incoming = Incoming::parse(&target, &body.to_form(), phone.ip);
    let decision = incoming.decide(
        &Policy::new(),
        Some(invitation.conversation.clone()),
        Records::default(),
        0,
    );
    assert_eq!(decision.tif(), tif(0x05));
    assert!(matches!(decision.mutation(), Mutation::Create { .. }));
    let failed = decision.into_transient_failure();
    assert_eq!(failed.tif(), tif(0x65));
    assert_eq!(failed.mutation(), &Mutation::None);
    assert_eq!(failed.browser(), &BrowserOutcome::Unchanged);
    let issued = failed.finish(Nut::generate(&mut OsRng), None).unwrap();
    assert_eq!(issued.reply.tif(), tif(0x65));
    // The next step keeps the browser, so the retry can still log it in.
    assert!(issued.conversation.browser.is_some());
    assert!(issued.conversation.echoes(issued.body()));
}

#[test]
fn every_reply_carries_a_fresh_nut_stored_once() {
    let mut server = server();
    let (mut phone, _) = page(&mut server, 34);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        phone.send(&mut server, Req::new(Command::Query));
        assert!(seen.insert(phone.reply().nut().to_owned()));
        // One live record per conversation: the old nut's record is gone.
        assert_eq!(server.conversation_count(), 1);
    }
}

/// The crate's own client state machine against the reference server: a
/// cross-device first login, a same-device CPS login, and a rekey.
mod with_client {
    use super::*;
    use crate::client::{
        CommandStep, Completed, Device, OutgoingRequest, Queried, QueryStatus, QueryStep, Querying,
        TransactionOptions,
    };

    fn query(
        server: &mut MemoryServer<OsRng>,
        client_ip: &str,
        start: (Querying, OutgoingRequest),
    ) -> Queried {
        let (mut querying, mut request) = start;
        loop {
            let handled = server.handle(request.url(), request.body(), ip(client_ip));
            match querying.receive(&handled.body).unwrap() {
                QueryStep::Send(next, next_request) => (querying, request) = (next, next_request),
                QueryStep::Done(queried) => return queried,
                QueryStep::IpMismatch(_) => panic!("unexpected IP mismatch"),
            }
        }
    }

    fn command(
        server: &mut MemoryServer<OsRng>,
        client_ip: &str,
        start: (crate::client::Commanding, OutgoingRequest),
    ) -> Completed {
        let (mut commanding, mut request) = start;
        loop {
            let handled = server.handle(request.url(), request.body(), ip(client_ip));
            match commanding.receive(&handled.body).unwrap() {
                CommandStep::Send(next, next_request) => {
                    (commanding, request) = (next, next_request);
                }
                CommandStep::Done(done) => return done,
            }
        }
    }

    #[test]
    fn client_transactions_complete_against_the_reference_server() {
        let mut server = server();
        let iuk = IdentityUnlockKey::from_bytes([40; 32]);
        let (imk, ilk) = (iuk.master_key(), iuk.lock_key());

        // Cross-device: the phone is on another network.
        let invitation = server.start_login(ip(BROWSER_IP), None);
        let url = SqrlUrl::parse(&invitation.url).unwrap();
        let site_key = imk.site_key(url.site_key_string());
        let idk = site_key.public_key();
        let options = TransactionOptions::new(Device::CrossDevice);
        let start = Querying::start(url, site_key, Vec::new(), options).unwrap();
        let queried = query(&mut server, OTHER_IP, start);
        assert_eq!(queried.status(), QueryStatus::Unknown);
        let done = command(
            &mut server,
            OTHER_IP,
            queried.ident(&ilk, &mut OsRng).unwrap(),
        );
        assert_eq!(done.tif(), tif(0x01));
        let attempt = invitation.nut.as_str();
        assert_eq!(server.attempt(attempt), Some(&AttemptState::Confirmed(idk)));

        // Same device: CPS.
        let invitation = server.start_login(ip(BROWSER_IP), Some("https://example.com/"));
        let url = SqrlUrl::parse(&invitation.link).unwrap();
        let site_key = imk.site_key(url.site_key_string());
        let options = TransactionOptions::new(Device::SameDevice);
        let start = Querying::start(url, site_key, Vec::new(), options).unwrap();
        let queried = query(&mut server, BROWSER_IP, start);
        assert_eq!(queried.status(), QueryStatus::Known);
        let done = command(
            &mut server,
            BROWSER_IP,
            queried.ident(&ilk, &mut OsRng).unwrap(),
        );
        assert_eq!(done.tif(), tif(0x05));
        let cps_url = done.cps_url().unwrap().to_owned();
        assert_eq!(server.redeem_cps_url(&cps_url), Some(idk));
        let attempt = invitation.nut.as_str();
        assert_eq!(server.attempt(attempt), Some(&AttemptState::ClientSession));

        // Rekey: a new identity with the old one as previous.
        let new_iuk = IdentityUnlockKey::from_bytes([41; 32]);
        let invitation = server.start_login(ip(BROWSER_IP), None);
        let url = SqrlUrl::parse(&invitation.url).unwrap();
        let site_key = new_iuk.master_key().site_key(url.site_key_string());
        let new_idk = site_key.public_key();
        let previous = vec![imk.site_key(url.site_key_string())];
        let options = TransactionOptions::new(Device::CrossDevice);
        let start = Querying::start(url, site_key, previous, options).unwrap();
        let queried = query(&mut server, BROWSER_IP, start);
        assert_eq!(
            queried.status(),
            QueryStatus::KnownByPrevious { previous: 0 }
        );
        let start = queried
            .ident_replacing_previous(&new_iuk.lock_key(), &iuk, &mut OsRng)
            .unwrap();
        let done = command(&mut server, BROWSER_IP, start);
        assert_eq!(done.tif(), tif(0x05));
        assert!(server.is_superseded(&idk));
        assert!(server.account(&new_idk).is_some());
        assert_eq!(server.account_count(), 1);
    }
}
