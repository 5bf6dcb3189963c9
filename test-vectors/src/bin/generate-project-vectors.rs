//! Writes the project's regression snapshots: sqrl-core's own output for
//! `urs`, `pins`, a type-3 identity and whole exchanges, for which nothing is
//! published. They catch a change in that output; they are not conformance
//! vectors. Run once; the results are committed:
//! `cargo run -p test-vectors --bin generate-project-vectors -- test-vectors/vectors/project`
//!
//! Inputs come from a fixed seed, so running it again gives the same files except
//! where noted. Each file is then cross-checked by `tools/crosscheck.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use sqrl_core::base64url;
use sqrl_core::keys::{IdentityUnlockKey, RandomLockKey};
use sqrl_core::secret::Password;
use sqrl_core::storage::{CreateOptions, KdfCost, RekeyAuthority, S4};
use test_vectors::SNAPSHOT_SOURCE;
use test_vectors::exchange::{self, SCENARIOS, SeededStream};
use test_vectors::text::to_hex;

/// The rest of the first line after [`SNAPSHOT_SOURCE`].
const SNAPSHOT_NOTE: &str = ", not a conformance vector: sqrl-core's own output, written by `cargo run -p test-vectors --bin generate-project-vectors` and cross-checked by test-vectors/tools/crosscheck.py (Python cryptography + hashlib, independent of sqrl-core). It shows that the output has not changed; agreement with other implementations is what the published vectors show.";

fn seed(label: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(label.as_bytes()).into()
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: generate-project-vectors DIR"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!("{SNAPSHOT_SOURCE}{SNAPSHOT_NOTE}");
    let mut rng = SeededStream::new(seed("sqrl-rs project vectors v1"));

    // urs: the rescue-path signature a server verifies with the VUK it stored.
    let mut urs = format!(
        "{source}\nIUK(hex),RLK(hex),SUK(hex),VUK(hex),Message(base64_url),URS(base64_url)\n"
    );
    for i in 0..8 {
        let iuk = IdentityUnlockKey::generate(&mut rng);
        let mut rlk_bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rng, &mut rlk_bytes);
        let (suk, vuk) = RandomLockKey::from_bytes(rlk_bytes)
            .lock(&iuk.lock_key())
            .unwrap();
        let message = format!(
            "{}{}",
            base64url::encode(format!("ver=1\r\ncmd=enable\r\nidk=vector{i}\r\n")),
            base64url::encode(format!("qrl://sqrl.example.com/cli.sqrl?nut=n{i}"))
        );
        let signature = iuk
            .unlock_request_signing_key(&suk)
            .unwrap()
            .sign(message.as_bytes());
        writeln!(
            urs,
            "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            to_hex(iuk.as_bytes()),
            to_hex(&rlk_bytes),
            to_hex(suk.as_bytes()),
            to_hex(&vuk.to_bytes()),
            base64url::encode(&message),
            signature.to_base64url()
        )
        .unwrap();
    }
    std::fs::write(dir.join("urs-vectors.txt"), urs).unwrap();

    // pins: indexed secrets of a previous identity.
    let mut pins =
        format!("{source}\nPIUK(base64_url),Domain,SIN,PIDK(base64_url),PINS(base64_url)\n");
    for (i, (domain, sin)) in [
        ("example.com", "0"),
        ("example.com", "secret"),
        ("sqrl.grc.com/demo", "ThisIsn'tVeryRandom"),
        ("example.com/CaseSensitive", "C5VKv6UoN2j1LX"),
    ]
    .iter()
    .enumerate()
    {
        let piuk = IdentityUnlockKey::generate(&mut rng);
        let key = piuk
            .master_key()
            .site_key(&sqrl_core::url::SiteKeyString::new(*domain));
        writeln!(
            pins,
            "\"{}\",\"{domain}\",\"{sin}\",\"{}\",\"{}\"",
            base64url::encode(piuk.as_bytes()),
            key.public_key().to_base64url(),
            key.indexed_secret(sin).to_base64url()
        )
        .unwrap();
        let _ = i;
    }
    std::fs::write(dir.join("pins-vectors.txt"), pins).unwrap();

    // A type-3 block under a known password: create, then rekey twice.
    let password = Password::from("correct horse battery staple");
    let options = CreateOptions {
        password_cost: KdfCost::Iterations(3),
        rescue_cost: KdfCost::Iterations(2),
        ..CreateOptions::default()
    };
    let (mut s4, mut code) = S4::create(&mut rng, &password, &options, &mut |_, _| {}).unwrap();
    let mut retired = Vec::new();
    for _ in 0..2 {
        retired.insert(0, s4.recover_unlock_key(&code, &mut |_, _| {}).unwrap());
        code = s4
            .rekey(
                &mut rng,
                RekeyAuthority::RescueCode(&code),
                &password,
                &options,
                &mut |_, _| {},
            )
            .unwrap();
    }
    let iuk = s4.recover_unlock_key(&code, &mut |_, _| {}).unwrap();
    let text = format!(
        "{source}\n# identity with previous keys (type 3), password and rescue code known\npassword = {}\nrescue_code = {}\niuk = {}\nedition = 2\npiuks = {}\ns4 = {}\n",
        password.as_str(),
        code.as_digits(),
        to_hex(iuk.as_bytes()),
        retired
            .iter()
            .map(|k| to_hex(k.as_bytes()))
            .collect::<Vec<_>>()
            .join(","),
        s4.to_base64url_text()
    );
    std::fs::write(dir.join("type3-identity.txt"), text).unwrap();
    let _ = Duration::ZERO;

    // Complete exchanges between the client helper and the reference server.
    for scenario in SCENARIOS {
        let seed = seed(&format!("exchange {scenario}"));
        let steps = exchange::run(scenario, seed).unwrap();
        let mut text = format!(
            "{source}\n# exchange: sqrl-core client transaction against sqrl-core's reference server; replayed from the seed\nscenario = {scenario}\nseed = {}\norigin = {}\n",
            to_hex(&seed),
            exchange::ORIGIN
        );
        for step in steps {
            writeln!(
                text,
                "\npost = {}\nbody = {}\nreply = {}\ntif = {}",
                step.post, step.body, step.reply, step.tif
            )
            .unwrap();
        }
        std::fs::write(dir.join(format!("exchange-{scenario}.txt")), text).unwrap();
    }
    println!("wrote project vectors to {}", dir.display());
}
