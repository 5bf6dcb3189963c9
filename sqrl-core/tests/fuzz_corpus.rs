//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`) through the same
//! entry points the fuzzers call, so CI exercises them without a fuzzer. Each
//! entry point asserts its parser's promises (round trips, the failure table,
//! no change on refusal); these tests also check that the corpus reaches the
//! cases those promises are about, so a property cannot pass by never running.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqrl_core::fuzzing::{SERVER_REQUEST_URL, TARGETS, server_policies, server_request_outcome};
use sqrl_core::keys::{IdentityUnlockKey, RandomLockKey};
use sqrl_core::msg::{ClientRequest, Command, RequestBody, ServerValue};
use sqrl_core::server::{Failure, Policy};
use sqrl_core::url::SqrlUrl;

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus for {name} missing at {}: {e}", dir.display()));
    let mut inputs: Vec<_> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "empty corpus for {name}");
    inputs
}

#[test]
fn replay_fuzz_corpus() {
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        for (path, input) in &inputs {
            let outcome = std::panic::catch_unwind(|| target(input));
            assert!(
                outcome.is_ok(),
                "{name}: {} broke a promise",
                path.display()
            );
        }
        println!("{name}: {} inputs replayed", inputs.len());
    }
}

/// The seed inputs `signed-*` in the server-request corpus: valid signed
/// requests from one identity (a `query`, an `ident` that creates the
/// association, and an `ident` without its lock keys). Fuzzers rarely forge a
/// signature, so these make the properties meet requests that succeed and
/// requests refused after their account change was decided. Deterministic:
/// fixed keys, and Ed25519 signs deterministically.
fn signed_requests() -> Vec<(&'static str, Vec<u8>)> {
    let url = SqrlUrl::parse(SERVER_REQUEST_URL).unwrap();
    let iuk = IdentityUnlockKey::from_bytes([7; 32]);
    let site = iuk.master_key().site_key(url.site_key_string());
    let server = ServerValue::for_url(&url);
    let (suk, vuk) = RandomLockKey::from_bytes([9; 32])
        .lock(&iuk.lock_key())
        .unwrap();
    let query = ClientRequest::builder(Command::Query, site.public_key());
    let ident = ClientRequest::builder(Command::Ident, site.public_key());
    [
        ("signed-query", query),
        ("signed-ident-new-user", ident.clone().lock(suk, vuk)),
        ("signed-ident-without-lock", ident),
    ]
    .into_iter()
    .map(|(name, builder)| {
        let client = builder.build().unwrap();
        let body = RequestBody::sign(&client, &server, &site, None, None).unwrap();
        let input = format!("/cli.sqrl?nut={}\n{}", url.nut(), body.to_form());
        (name, input.into_bytes())
    })
    .collect()
}

/// The name of a failure's variant, or "success".
fn outcome_kind(outcome: Option<Failure>) -> String {
    match outcome {
        None => "success".to_owned(),
        Some(failure) => {
            let debug = format!("{failure:?}");
            debug.split('(').next().unwrap_or_default().to_owned()
        }
    }
}

/// The server-request properties hold vacuously unless the inputs reach
/// successes, failures of several kinds, and a refusal after an account
/// change was decided.
#[test]
fn server_request_inputs_reach_successes_and_failures() {
    let inputs = corpus("server_request");
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for policy in server_policies() {
        for (_, input) in &inputs {
            let kind = outcome_kind(server_request_outcome(input, &policy));
            *outcomes.entry(kind).or_default() += 1;
        }
    }
    println!("{outcomes:?}");
    for kind in [
        "success",
        "Malformed",
        "Signature",
        "MissingLock",
        "UnansweredSin",
    ] {
        assert!(outcomes.contains_key(kind), "no {kind} in {outcomes:?}");
    }
}

#[test]
fn signed_seeds_are_in_the_corpus_and_succeed_without_a_sin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_request");
    let seeds = signed_requests();
    for (name, input) in &seeds {
        let saved = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            &saved, input,
            "{name} differs from what signed_requests builds"
        );
    }
    let inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, input)| input).collect();
    let [query, create, no_lock] = inputs.try_into().unwrap();
    let policy = Policy::new();
    assert_eq!(server_request_outcome(&query, &policy), None);
    assert_eq!(server_request_outcome(&create, &policy), None);
    assert_eq!(
        server_request_outcome(&no_lock, &policy),
        Some(Failure::MissingLock)
    );
}
