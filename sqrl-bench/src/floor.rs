//! The Ed25519 floor: the CPU a server cannot avoid spending on a login.
//!
//! A cross-device login is two signed requests (`query`, `ident`), and the
//! server must verify `ids` on each (SPEC 2.4), strictly (STYLE 24). No
//! implementation can do a login in less CPU than those two verifications;
//! the ratio of this floor to the server's measured CPU per login says how
//! much of its work is the protocol's irreducible cryptography and how much
//! is everything else (HTTP, storage, logging).

use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;

use crate::cpu::thread_time;

/// Verifications per login: `ids` on `query` and on `ident`.
pub const VERIFICATIONS_PER_LOGIN: u32 = 2;

/// The measured floor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// Length of the signed message (the `client=` and `server=` values).
    pub message_bytes: usize,
    /// Verifications timed.
    pub iterations: u32,
    /// Mean CPU time of one `verify_strict` on this machine.
    pub verify_us: f64,
    /// [`VERIFICATIONS_PER_LOGIN`] of them: the floor per login.
    pub per_login_us: f64,
    /// Whether the time is thread CPU time (else wall time, where the
    /// thread CPU clock is missing).
    pub thread_cpu_time: bool,
}

/// Times `iterations` strict verifications of a signature over a
/// `message_bytes`-long message, on the calling thread.
pub fn measure(message_bytes: usize, iterations: u32) -> Floor {
    let iterations = iterations.max(1);
    // A fixed key: the cost of verification does not depend on which key.
    let key = SigningKey::from_bytes(&[0x5a; 32]);
    let public = key.verifying_key();
    // Base64url text, like the real signed message.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let message: Vec<u8> = (0..message_bytes)
        .map(|i| {
            alphabet
                .get(i * 7 % alphabet.len())
                .copied()
                .unwrap_or(b'A')
        })
        .collect();
    let signature = key.sign(&message);
    // Warm the caches and the branch predictors first.
    for _ in 0..iterations.min(200) {
        let _ = public.verify_strict(std::hint::black_box(&message), &signature);
    }
    let cpu_before = thread_time();
    let wall_before = Instant::now();
    let mut failures = 0u32;
    for _ in 0..iterations {
        if public
            .verify_strict(std::hint::black_box(&message), &signature)
            .is_err()
        {
            failures += 1;
        }
    }
    let wall = wall_before.elapsed();
    std::hint::black_box(failures);
    let (elapsed, thread_cpu_time): (Duration, bool) = match (cpu_before, thread_time()) {
        (Some(before), Some(after)) => (after.saturating_sub(before), true),
        _ => (wall, false),
    };
    let verify_us = elapsed.as_secs_f64() * 1e6 / f64::from(iterations);
    Floor {
        message_bytes,
        iterations,
        verify_us,
        per_login_us: verify_us * f64::from(VERIFICATIONS_PER_LOGIN),
        thread_cpu_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_positive_floor() {
        let floor = measure(600, 50);
        assert!(floor.verify_us > 0.0);
        assert_eq!(floor.per_login_us, 2.0 * floor.verify_us);
        assert_eq!(floor.message_bytes, 600);
    }
}
