//! EnHash: sixteen chained SHA-256 rounds XORed together (SPEC 4.1). It turns the
//! IUK into the IMK and a per-site seed into the key of its indexed secrets.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Number of chained SHA-256 rounds.
pub const ENHASH_ROUNDS: usize = 16;

/// Computes EnHash of a 32-byte input.
pub fn enhash(input: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut acc = Zeroizing::new([0u8; 32]);
    let mut h = Zeroizing::new(*input);
    for _ in 0..ENHASH_ROUNDS {
        let digest = Sha256::digest(h.as_slice());
        h.copy_from_slice(&digest);
        for (a, b) in acc.iter_mut().zip(h.iter()) {
            *a ^= b;
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64url;

    #[test]
    fn first_published_vector() {
        // sqrldev enhash-vectors.txt, row 1.
        let out = enhash(&[0u8; 32]);
        assert_eq!(
            base64url::encode(*out),
            "_FHmfDKg6e6rE-hV-1dGCrtbmVUnQtByMvqkCXxdfuU"
        );
    }
}
