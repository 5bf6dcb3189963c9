//! Proof Key for Code Exchange (RFC 7636), `S256` only: the code's
//! challenge is base64url(SHA-256(verifier)). `plain` is refused, since it
//! protects nothing once the authorization request is seen.

use sha2::{Digest as _, Sha256};
use sqrl_core::base64url;
use subtle::ConstantTimeEq as _;

/// Whether `text` is a verifier or challenge RFC 7636 allows: 43 to 128
/// unreserved characters.
pub fn well_formed(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `verifier` answers `challenge`, compared in constant time.
pub fn verifies(verifier: &str, challenge: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let computed = base64url::encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifies() {
        // RFC 7636, Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifies(verifier, challenge));
        assert!(!verifies(&verifier.replace('d', "e"), challenge));
        assert!(!verifies(challenge, challenge));
        assert!(!verifies("short", challenge));
    }
}
