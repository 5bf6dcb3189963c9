//! EnScrypt: iterated scrypt whose outputs are XORed together (SPEC 4.2).
//!
//! Two modes: a fixed iteration count (decrypting, where the count is stored) and a
//! time budget (encrypting, where the count reached is stored). Both report
//! progress through a callback so a user interface can draw a bar.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// scrypt `log2(N)` every SQRL implementation uses (N = 512, 16 MiB per call with r = 256).
pub const DEFAULT_LOG_N: u8 = 9;
/// scrypt block size parameter fixed by SQRL.
pub const SCRYPT_R: u32 = 256;
/// scrypt parallelism parameter fixed by SQRL.
pub const SCRYPT_P: u32 = 1;
/// Largest `log2(N)` accepted: 2^14 x 32 KiB = 512 MiB per call. Anything larger in a
/// file is corruption or an attack on memory, not a real identity.
pub const MAX_LOG_N: u8 = 14;
/// Largest iteration count accepted from storage (several hours of work at
/// SQRL's parameters). Bounds the work an untrusted file can demand.
pub const MAX_ITERATIONS: u32 = 1 << 20;

/// Why EnScrypt refused to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnScryptError {
    /// Zero iterations would yield an all-zero key.
    #[error("EnScrypt needs at least one iteration")]
    NoIterations,
    /// The iteration count exceeds [`MAX_ITERATIONS`].
    #[error("EnScrypt iteration count {0} exceeds the limit of {MAX_ITERATIONS}")]
    TooManyIterations(u32),
    /// `log2(N)` is zero or exceeds [`MAX_LOG_N`].
    #[error("scrypt log2(N) of {0} is outside 1..={MAX_LOG_N}")]
    InvalidLogN(u8),
}

/// How far an EnScrypt run has come; passed to the progress callback after each
/// iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Iterations done so far.
    pub iterations_done: u32,
    /// Fraction of the work done, from 0.0 to 1.0 (by count, or by time in timed mode).
    pub fraction: f64,
}

/// The parameters stored beside an EnScrypt-derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnScryptParams {
    /// scrypt `log2(N)`.
    pub log_n: u8,
    /// Number of scrypt calls.
    pub iterations: u32,
}

fn scrypt_params(log_n: u8) -> Result<scrypt::Params, EnScryptError> {
    if log_n == 0 || log_n > MAX_LOG_N {
        return Err(EnScryptError::InvalidLogN(log_n));
    }
    scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|_| EnScryptError::InvalidLogN(log_n))
}

/// One EnScrypt round state: the XOR accumulator and the salt for the next call.
struct Rounds<'a> {
    password: &'a [u8],
    params: scrypt::Params,
    acc: Zeroizing<[u8; 32]>,
    salt: Zeroizing<Vec<u8>>,
    done: u32,
}

impl<'a> Rounds<'a> {
    fn new(password: &'a [u8], salt: &[u8], log_n: u8) -> Result<Self, EnScryptError> {
        Ok(Self {
            password,
            params: scrypt_params(log_n)?,
            acc: Zeroizing::new([0u8; 32]),
            salt: Zeroizing::new(salt.to_vec()),
            done: 0,
        })
    }

    fn step(&mut self) {
        let mut out = Zeroizing::new([0u8; 32]);
        // `scrypt` only fails for an output length outside its limits; 32 is fixed.
        #[allow(clippy::expect_used)]
        scrypt::scrypt(self.password, &self.salt, &self.params, out.as_mut_slice())
            .expect("a 32-byte scrypt output is always valid");
        for (a, b) in self.acc.iter_mut().zip(out.iter()) {
            *a ^= b;
        }
        self.salt.clear();
        self.salt.extend_from_slice(out.as_slice());
        self.done += 1;
    }
}

/// Runs EnScrypt for a fixed number of iterations.
pub fn enscrypt(
    password: &[u8],
    salt: &[u8],
    params: EnScryptParams,
    progress: &mut dyn FnMut(Progress),
) -> Result<Zeroizing<[u8; 32]>, EnScryptError> {
    if params.iterations == 0 {
        return Err(EnScryptError::NoIterations);
    }
    if params.iterations > MAX_ITERATIONS {
        return Err(EnScryptError::TooManyIterations(params.iterations));
    }
    let mut rounds = Rounds::new(password, salt, params.log_n)?;
    while rounds.done < params.iterations {
        rounds.step();
        progress(Progress {
            iterations_done: rounds.done,
            fraction: f64::from(rounds.done) / f64::from(params.iterations),
        });
    }
    Ok(rounds.acc)
}

/// Runs EnScrypt until `budget` has passed (at least one iteration) and returns the
/// key with the parameters needed to derive it again.
pub fn enscrypt_timed(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    budget: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Zeroizing<[u8; 32]>, EnScryptParams), EnScryptError> {
    let mut rounds = Rounds::new(password, salt, log_n)?;
    let start = Instant::now();
    loop {
        rounds.step();
        let elapsed = start.elapsed();
        let fraction = if budget.is_zero() {
            1.0
        } else {
            (elapsed.as_secs_f64() / budget.as_secs_f64()).min(1.0)
        };
        progress(Progress {
            iterations_done: rounds.done,
            fraction,
        });
        if elapsed >= budget || rounds.done >= MAX_ITERATIONS {
            break;
        }
    }
    let params = EnScryptParams {
        log_n,
        iterations: rounds.done,
    };
    Ok((rounds.acc, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn anchor_vector_one_iteration() {
        let key = enscrypt(
            b"",
            b"",
            EnScryptParams {
                log_n: 9,
                iterations: 1,
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            hex(key.as_slice()),
            "a8ea62a6e1bfd20e4275011595307aa302645c1801600ef5cd79bf9d884d911c"
        );
    }

    #[test]
    fn timed_mode_is_reproducible_by_count() {
        let mut reports = 0;
        let (key, params) =
            enscrypt_timed(b"pw", b"salt", 9, Duration::ZERO, &mut |_| reports += 1).unwrap();
        assert_eq!(params.iterations, 1);
        assert_eq!(reports, 1);
        let again = enscrypt(b"pw", b"salt", params, &mut |_| {}).unwrap();
        assert_eq!(*key, *again);
    }

    #[test]
    fn progress_reports_every_iteration() {
        let mut seen = Vec::new();
        enscrypt(
            b"",
            b"",
            EnScryptParams {
                log_n: 9,
                iterations: 3,
            },
            &mut |p| seen.push(p.iterations_done),
        )
        .unwrap();
        assert_eq!(seen, vec![1, 2, 3]);
    }

    #[test]
    fn rejects_absurd_parameters() {
        let p = |log_n, iterations| EnScryptParams { log_n, iterations };
        assert_eq!(
            enscrypt(b"", b"", p(9, 0), &mut |_| {}).unwrap_err(),
            EnScryptError::NoIterations
        );
        assert_eq!(
            enscrypt(b"", b"", p(9, u32::MAX), &mut |_| {}).unwrap_err(),
            EnScryptError::TooManyIterations(u32::MAX)
        );
        assert_eq!(
            enscrypt(b"", b"", p(40, 1), &mut |_| {}).unwrap_err(),
            EnScryptError::InvalidLogN(40)
        );
        assert_eq!(
            enscrypt(b"", b"", p(0, 1), &mut |_| {}).unwrap_err(),
            EnScryptError::InvalidLogN(0)
        );
    }
}
