//! Complete client/server exchanges, made reproducible.
//!
//! A scenario runs sqrl-core's client transaction helper against its reference
//! server ([`sqrl_core::server::memory::MemoryServer`]), both drawing randomness
//! from a seeded deterministic stream, and records every request and reply. The
//! project's exchange vectors are such records: the runner replays the scenario
//! with the recorded seed and requires every byte to match, and an independent
//! script (`tools/crosscheck.py`) checks their signatures and echo chain.

use std::net::{IpAddr, Ipv4Addr};

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use sqrl_core::client::{
    CommandStep, Commanding, Device, OutgoingRequest, Queried, QueryStatus, QueryStep, Querying,
    TransactionOptions,
};
use sqrl_core::keys::{IdentityUnlockKey, SiteKey};
use sqrl_core::server::memory::MemoryServer;
use sqrl_core::server::{Endpoint, Policy};
use sqrl_core::url::SqrlUrl;

/// A deterministic byte stream: SHA-256(seed || counter) blocks. For reproducible
/// vectors only; it is not a source of secrets.
#[derive(Debug, Clone)]
pub struct SeededStream {
    seed: [u8; 32],
    counter: u64,
    buffer: Vec<u8>,
}

impl SeededStream {
    /// A stream for `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            buffer: Vec::new(),
        }
    }
}

impl RngCore for SeededStream {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.buffer.is_empty() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_le_bytes());
                self.counter += 1;
                self.buffer = h.finalize().to_vec();
            }
            *byte = self.buffer.remove(0);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Marked as cryptographic so sqrl-core's key generation accepts it; the vectors
// it makes are public test data, never real identities.
impl CryptoRng for SeededStream {}

/// One request and the reply it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The URL POSTed to.
    pub post: String,
    /// The form body.
    pub body: String,
    /// The reply body.
    pub reply: String,
    /// The reply's TIF, hex.
    pub tif: String,
}

/// The scenarios the project records.
pub const SCENARIOS: &[&str] = &["new-user", "returning-user", "replace-previous"];

/// The SQRL endpoint every scenario uses.
pub const ORIGIN: &str = "http://sqrl.example.com:8080";

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

struct Recorder<'a> {
    server: &'a mut MemoryServer<SeededStream>,
    steps: Vec<Step>,
}

impl Recorder<'_> {
    fn send(&mut self, request: &OutgoingRequest) -> Result<String, String> {
        let target = request
            .url()
            .strip_prefix(ORIGIN)
            .ok_or_else(|| format!("request left the origin: {}", request.url()))?;
        let handled = self.server.handle(target, request.body(), IP);
        self.steps.push(Step {
            post: request.url().to_owned(),
            body: request.body().to_owned(),
            reply: handled.body.clone(),
            tif: handled.tif.to_hex(),
        });
        Ok(handled.body)
    }

    fn query(&mut self, site: SiteKey, previous: Vec<SiteKey>) -> Result<Queried, String> {
        let invitation = self.server.start_login(IP, None);
        let url = SqrlUrl::parse(&invitation.url).map_err(|e| e.to_string())?;
        let options = TransactionOptions::new(Device::CrossDevice);
        let (mut state, mut request) =
            Querying::start(url, site, previous, options).map_err(|e| e.to_string())?;
        loop {
            let reply = self.send(&request)?;
            match state.receive(&reply).map_err(|e| e.to_string())? {
                QueryStep::Send(next, next_request) => (state, request) = (next, next_request),
                QueryStep::Done(queried) => return Ok(queried),
                QueryStep::IpMismatch(_) => return Err("unexpected IP mismatch".to_owned()),
            }
        }
    }

    fn command(&mut self, started: (Commanding, OutgoingRequest)) -> Result<(), String> {
        let (mut state, mut request) = started;
        loop {
            let reply = self.send(&request)?;
            match state.receive(&reply).map_err(|e| e.to_string())? {
                CommandStep::Send(next, next_request) => (state, request) = (next, next_request),
                CommandStep::Done(_) => return Ok(()),
            }
        }
    }
}

/// Runs a scenario with a seed and returns its steps.
pub fn run(scenario: &str, seed: [u8; 32]) -> Result<Vec<Step>, String> {
    let mut rng = SeededStream::new(seed);
    let mut server_seed = [0u8; 32];
    rng.fill_bytes(&mut server_seed);
    let endpoint = Endpoint::from_origin(ORIGIN, "/cli.sqrl").map_err(|e| e.to_string())?;
    let mut server = MemoryServer::new(endpoint, Policy::new(), SeededStream::new(server_seed));
    let mut recorder = Recorder {
        server: &mut server,
        steps: Vec::new(),
    };

    let first = IdentityUnlockKey::generate(&mut rng);
    let site_of = |iuk: &IdentityUnlockKey, url_site: &sqrl_core::url::SiteKeyString| {
        iuk.master_key().site_key(url_site)
    };
    let site = sqrl_core::url::SiteKeyString::new("sqrl.example.com");

    let log_in = |recorder: &mut Recorder<'_>, rng: &mut SeededStream| {
        let queried = recorder.query(site_of(&first, &site), Vec::new())?;
        let started = queried
            .ident(&first.lock_key(), rng)
            .map_err(|e| e.to_string())?;
        recorder.command(started)
    };

    // Every scenario starts with a first login that creates the association.
    log_in(&mut recorder, &mut rng)?;

    match scenario {
        "new-user" => {}
        "returning-user" => log_in(&mut recorder, &mut rng)?,
        "replace-previous" => {
            let second = IdentityUnlockKey::generate(&mut rng);
            let queried = recorder.query(site_of(&second, &site), vec![site_of(&first, &site)])?;
            recorder.command(
                queried
                    .ident_replacing_previous(&second.lock_key(), &first, &mut rng)
                    .map_err(|e| e.to_string())?,
            )?;
            // The retired identity is now superseded: its query reports 0x200.
            let reported = match recorder.query(site_of(&first, &site), Vec::new()) {
                Ok(queried) => queried.status() == QueryStatus::Superseded,
                Err(_) => false,
            };
            if !reported {
                return Err("the retired identity was not reported as superseded".into());
            }
        }
        other => return Err(format!("unknown scenario {other:?}")),
    }
    Ok(recorder.steps)
}
