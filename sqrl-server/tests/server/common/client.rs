//! The SQRL client side: an identity (only what the protocol needs, no S4
//! storage), requests as tests write them, and a conversation that signs,
//! posts and follows replies, and can misbehave on purpose.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use sqrl_core::base64url;
use sqrl_core::keys::{
    IdentityKey, IdentityLockKey, IdentityMasterKey, IdentityUnlockKey, RandomLockKey,
    ServerUnlockKey, SiteKey, UnlockRequestSigningKey,
};
use sqrl_core::msg::{
    Button, ClientOptions, ClientRequest, Command, RequestBody, ServerReply, Tif,
};
use sqrl_core::rand_core::OsRng;
use sqrl_core::url::SqrlUrl;

/// A SQRL identity (only what the protocol needs; no S4 storage).
pub struct Identity {
    pub iuk: IdentityUnlockKey,
    pub imk: IdentityMasterKey,
    pub ilk: IdentityLockKey,
}

impl Identity {
    pub fn new() -> Self {
        let iuk = IdentityUnlockKey::generate(&mut OsRng);
        let imk = iuk.master_key();
        let ilk = iuk.lock_key();
        Self { iuk, imk, ilk }
    }

    pub fn site_key(&self, url: &SqrlUrl) -> SiteKey {
        self.imk.site_key(url.site_key_string())
    }

    pub fn idk(&self, url: &SqrlUrl) -> IdentityKey {
        self.site_key(url).public_key()
    }

    /// A fresh SUK/VUK pair for a new association.
    pub fn lock(&self) -> (ServerUnlockKey, sqrl_core::keys::VerifyUnlockKey) {
        RandomLockKey::generate(&mut OsRng).lock(&self.ilk).unwrap()
    }

    pub fn ursk(&self, suk: &ServerUnlockKey) -> UnlockRequestSigningKey {
        self.iuk.unlock_request_signing_key(suk).unwrap()
    }
}

/// Which indexed secrets a [`Request`] carries.
#[derive(Clone, Copy)]
pub enum Secrets<'a> {
    /// `ins` (and `pins` with a previous identity) for the `sin` of the last
    /// reply, as a client does (SPEC 2.2).
    Answer,
    /// None, whatever the last reply asked.
    Omit,
    /// The answer computed with another identity's keys: a wrong secret.
    Of(&'a Identity),
}

/// One client request as a test writes it: the command, who signs it and
/// what it carries. Signed over the conversation's current `server=` value by
/// [`SqrlConversation::run`].
#[derive(Clone)]
pub struct Request<'a> {
    pub command: Command,
    pub id: &'a Identity,
    pub options: ClientOptions,
    /// `pidk`/`pids` (and `pins`) of this previous identity.
    pub previous: Option<&'a Identity>,
    /// A fresh `suk`/`vuk` for a new association.
    pub lock: bool,
    /// `urs` from this identity's unlock key and this SUK.
    pub urs: Option<(&'a Identity, ServerUnlockKey)>,
    pub button: Option<Button>,
    pub secrets: Secrets<'a>,
}

impl<'a> Request<'a> {
    pub fn new(command: Command, id: &'a Identity) -> Self {
        Self {
            command,
            id,
            options: ClientOptions::NONE,
            previous: None,
            lock: false,
            urs: None,
            button: None,
            secrets: Secrets::Answer,
        }
    }

    pub fn query(id: &'a Identity) -> Self {
        Self::new(Command::Query, id)
    }

    pub fn ident(id: &'a Identity) -> Self {
        Self::new(Command::Ident, id)
    }

    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    pub fn previous(mut self, old: &'a Identity) -> Self {
        self.previous = Some(old);
        self
    }

    /// With a fresh `suk`/`vuk` (a new association).
    pub fn new_lock(mut self) -> Self {
        self.lock = true;
        self
    }

    /// Signed with `urs` by `by`'s unlock request signing key for `suk`.
    pub fn urs(mut self, by: &'a Identity, suk: ServerUnlockKey) -> Self {
        self.urs = Some((by, suk));
        self
    }

    pub fn button(mut self, button: Button) -> Self {
        self.button = Some(button);
        self
    }

    pub fn secrets(mut self, secrets: Secrets<'a>) -> Self {
        self.secrets = secrets;
        self
    }
}

/// One client-side conversation: keeps the `server=` value to echo and where
/// to POST next.
pub struct SqrlConversation {
    pub http: reqwest::Client,
    pub url: SqrlUrl,
    /// The next `server=` value.
    pub server: String,
    /// Where the next POST goes.
    pub post_url: String,
    /// Sent as X-Forwarded-For (with a trusted-proxy config) to pose as
    /// another address.
    pub forwarded_for: Option<String>,
    pub last_reply: Option<ServerReply>,
    /// The `X-Upstream` header of the last reply: which instance behind a
    /// load balancer answered (the multi-instance test's proxy adds it).
    pub last_upstream: Option<String>,
}

impl SqrlConversation {
    pub fn new(http: &reqwest::Client, url: &str) -> Self {
        let parsed = SqrlUrl::parse(url).unwrap();
        Self {
            http: http.clone(),
            server: base64url::encode(url),
            post_url: parsed.post_url(),
            url: parsed,
            forwarded_for: None,
            last_reply: None,
            last_upstream: None,
        }
    }

    pub fn posing_as(mut self, ip: &str) -> Self {
        self.forwarded_for = Some(ip.to_owned());
        self
    }

    /// The signed form body of `request` over the current `server=` value.
    pub fn form(&self, request: &Request<'_>) -> String {
        let key = request.id.site_key(&self.url);
        let previous = request.previous.map(|old| old.site_key(&self.url));
        let mut builder =
            ClientRequest::builder(request.command, key.public_key()).options(request.options);
        if let Some(old) = &previous {
            builder = builder.previous_identity(old.public_key());
        }
        let sin = self.last_reply.as_ref().and_then(ServerReply::sin);
        // Who computes ins and pins: the signers, or (a wrong secret) someone else.
        let answering = match request.secrets {
            Secrets::Answer => Some((request.id, request.previous)),
            Secrets::Omit => None,
            Secrets::Of(other) => Some((other, request.previous.map(|_| other))),
        };
        if let (Some(sin), Some((ins_by, pins_by))) = (sin, answering) {
            builder = builder.indexed_secret(ins_by.site_key(&self.url).indexed_secret(sin));
            if let Some(pins_by) = pins_by {
                builder = builder
                    .previous_indexed_secret(pins_by.site_key(&self.url).indexed_secret(sin));
            }
        }
        if request.lock {
            let (suk, vuk) = request.id.lock();
            builder = builder.lock(suk, vuk);
        }
        if let Some(button) = request.button {
            builder = builder.button(button);
        }
        let client = builder.build().unwrap();
        let ursk = request.urs.as_ref().map(|(by, suk)| by.ursk(suk));
        RequestBody::sign(
            &client,
            &self.server,
            &key,
            previous.as_ref(),
            ursk.as_ref(),
        )
        .unwrap()
        .to_form()
    }

    /// Signs and sends `request`, and follows the reply.
    pub async fn run(&mut self, request: Request<'_>) -> ServerReply {
        let form = self.form(&request);
        self.send_form(form).await
    }

    /// Signs `client` over the current `server=` value and POSTs it.
    pub async fn send(
        &mut self,
        client: &ClientRequest,
        ids: &SiteKey,
        pids: Option<&SiteKey>,
        urs: Option<&UnlockRequestSigningKey>,
    ) -> ServerReply {
        let body = RequestBody::sign(client, &self.server, ids, pids, urs).unwrap();
        self.send_form(body.to_form()).await
    }

    /// POSTs a form body as is and follows the reply.
    pub async fn send_form(&mut self, form: String) -> ServerReply {
        let response = self.post(form).await;
        let status = response.status();
        self.last_upstream = upstream(response.headers());
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "reply body: {text}");
        let reply = ServerReply::parse(&text).unwrap_or_else(|e| panic!("bad reply {text:?}: {e}"));
        self.server = text;
        self.post_url = self.url.post_url_for_query(reply.qry()).unwrap();
        self.last_reply = Some(reply.clone());
        reply
    }

    pub async fn post_raw(&self, form: String) -> (StatusCode, String) {
        let response = self.post(form).await;
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn post(&self, form: String) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.post_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        if let Some(ip) = &self.forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        request.send().await.unwrap()
    }

    pub async fn query(&mut self, id: &Identity, options: ClientOptions) -> ServerReply {
        self.run(Request::query(id).options(options)).await
    }

    /// `ident` of a new identity (with suk/vuk) or a known one.
    pub async fn ident(&mut self, id: &Identity, options: ClientOptions, new: bool) -> ServerReply {
        let request = Request::ident(id).options(options);
        self.run(if new { request.new_lock() } else { request })
            .await
    }
}

/// The `X-Upstream` header, if any.
pub fn upstream(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("x-upstream")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

pub fn tif(reply: &ServerReply) -> u32 {
    reply.tif().bits()
}

pub const NONE: ClientOptions = ClientOptions::NONE;

pub fn opts(list: &[ClientOptions]) -> ClientOptions {
    list.iter().fold(ClientOptions::NONE, |acc, o| acc | *o)
}

pub fn assert_tif(reply: &ServerReply, expected: u32) {
    assert_eq!(
        tif(reply),
        expected,
        "expected tif {expected:x}, got {:?}",
        reply.tif()
    );
}

pub fn is_failure(reply: &ServerReply) -> bool {
    reply.tif().contains(Tif::COMMAND_FAILED)
}

/// Sends a request and returns its response body.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// The value of `name` in a form body.
pub fn form_field(form: &str, name: &str) -> String {
    form.split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= in {form}"))
        .to_owned()
}

/// POSTs every `(url, form)` at once and returns the TIF of each reply, in
/// order (races between requests).
pub async fn post_concurrently(
    http: &reqwest::Client,
    requests: Vec<(String, String)>,
) -> Vec<u32> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(url, form)| {
            let http = http.clone();
            tokio::spawn(async move {
                let request = http
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form);
                ServerReply::parse(&text(request).await)
                    .unwrap()
                    .tif()
                    .bits()
            })
        })
        .collect();
    let mut tifs = Vec::new();
    for task in tasks {
        tifs.push(task.await.unwrap());
    }
    tifs
}
