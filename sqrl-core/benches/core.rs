//! `cargo bench -p sqrl-core`: prints what the hot operations cost.
//!
//! Each figure is the median of several timed samples, with the sample count
//! shown. Ratios compare against the primitive the operation is built on, so a
//! regression in our wrapping (not in the primitive) is visible.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use sqrl_core::enscrypt::{DEFAULT_LOG_N, EnScryptParams, SCRYPT_P, SCRYPT_R, enscrypt};
use std::net::{IpAddr, Ipv4Addr};

use sqrl_core::client::{Device, Querying, TransactionOptions};
use sqrl_core::keys::IdentityUnlockKey;
use sqrl_core::rand_core::OsRng;
use sqrl_core::server::{Endpoint, Incoming, Nut, Policy, Records, WaitingBrowser};
use sqrl_core::url::{SiteKeyString, SqrlUrl};

/// Times `op` in `samples` batches of `batch` calls; returns the median per call.
fn median_per_call(samples: usize, batch: u32, mut op: impl FnMut()) -> Duration {
    op(); // warm-up
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed() / batch
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn show(name: &str, per_call: Duration, note: &str) {
    let micros = per_call.as_secs_f64() * 1e6;
    println!("{name:<44} {micros:>12.2} µs/op   {note}");
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    println!("sqrl-core benchmark (median of samples; release profile)\n");

    let params = scrypt::Params::new(DEFAULT_LOG_N, SCRYPT_R, SCRYPT_P, 32).unwrap();
    let bare = median_per_call(15, 4, || {
        let mut out = [0u8; 32];
        scrypt::scrypt(
            black_box(b"password"),
            black_box(&[7u8; 32]),
            &params,
            &mut out,
        )
        .unwrap();
        black_box(out);
    });
    show(
        "scrypt (N=2^9, r=256, p=1), bare call",
        bare,
        "15 samples x 4 calls",
    );

    const ITERATIONS: u32 = 16;
    let per_iteration = median_per_call(7, 1, || {
        let key = enscrypt(
            black_box(b"password"),
            black_box(&[7u8; 16]),
            EnScryptParams {
                log_n: DEFAULT_LOG_N,
                iterations: ITERATIONS,
            },
            &mut |_| {},
        )
        .unwrap();
        black_box(key);
    }) / ITERATIONS;
    let ratio = per_iteration.as_secs_f64() / bare.as_secs_f64();
    show(
        "EnScrypt, per iteration",
        per_iteration,
        &format!("7 samples x {ITERATIONS} iterations; {ratio:.3}x bare scrypt (target <= 1.1x)"),
    );

    let iuk = IdentityUnlockKey::from_bytes([0x42; 32]);
    let imk = iuk.master_key();
    let site = SiteKeyString::new("sqrl.example.com/login");
    let derive = median_per_call(21, 2000, || {
        black_box(imk.site_key(black_box(&site)));
    });
    show(
        "per-site key derivation (HMAC + Ed25519 keygen)",
        derive,
        "21 samples x 2000",
    );

    let site_key = imk.site_key(&site);
    let message = vec![0x61u8; 400]; // about the size of client || server on the wire
    let sign = median_per_call(21, 2000, || {
        black_box(site_key.sign(black_box(&message)));
    });
    show("Ed25519 sign (400-byte request)", sign, "21 samples x 2000");

    let idk = site_key.public_key();
    let signature = site_key.sign(&message);
    let verify = median_per_call(21, 2000, || {
        idk.verify(black_box(&message), black_box(&signature))
            .unwrap();
    });
    show(
        "Ed25519 verify_strict (400-byte request)",
        verify,
        "21 samples x 2000",
    );

    let idk_bytes = idk.to_bytes();
    let decode = median_per_call(21, 2000, || {
        black_box(ed25519_dalek::VerifyingKey::from_bytes(black_box(&idk_bytes)).unwrap());
    });
    show(
        "identity key decode (point decompression)",
        decode,
        &format!(
            "21 samples x 2000; {:.2}x one verify",
            decode.as_secs_f64() / verify.as_secs_f64()
        ),
    );
    let remembered = median_per_call(21, 2000, || {
        black_box(sqrl_core::keys::IdentityKey::from_bytes(black_box(&idk_bytes)).unwrap());
    });
    show(
        "identity key read again (remembered point)",
        remembered,
        &format!(
            "21 samples x 2000; {:.3}x the decode",
            remembered.as_secs_f64() / decode.as_secs_f64()
        ),
    );

    // A complete server-side step for a signed `query`: parse the form body,
    // check the server= echo, nut, signature and IP, decide, and build the
    // signed-for reply with a fresh nut. Storage is the driver's, not timed here.
    let endpoint = Endpoint::from_origin("https://sqrl.example.com", "/cli.sqrl").unwrap();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let browser = WaitingBrowser {
        ip,
        attempt: "bench".into(),
    };
    let invitation = endpoint.invite(Nut::generate(&mut OsRng), None, browser, u64::MAX);
    let url = SqrlUrl::parse(&invitation.url).unwrap();
    let client_key = imk.site_key(url.site_key_string());
    let (_, request) = Querying::start(
        url,
        client_key,
        Vec::new(),
        TransactionOptions::new(Device::CrossDevice),
    )
    .unwrap();
    let target = request
        .url()
        .split_once("sqrl.example.com")
        .unwrap()
        .1
        .to_owned();
    let policy = Policy::new();
    let validate = median_per_call(21, 1000, || {
        let incoming = Incoming::parse(&target, black_box(request.body()), ip);
        let decision = incoming.decide(
            &policy,
            Some(invitation.conversation.clone()),
            Records::default(),
            1,
        );
        assert!(decision.is_success());
        let issued = decision.finish(Nut::generate(&mut OsRng), None).unwrap();
        drop(black_box(issued));
    });
    let ratio = validate.as_secs_f64() / verify.as_secs_f64();
    show(
        "server: validate + decide + reply (query)",
        validate,
        &format!("21 samples x 1000; {ratio:.2}x one Ed25519 verify"),
    );
}
