//! The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256, under
//! the endpoint's secret, of `"{Webhook-Id}.{Webhook-Timestamp}.{body}"`.
//! Any Standard Webhooks verifier library checks it with the same `whsec_`
//! secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The prefix of a secret in its text form.
const PREFIX: &str = "whsec_";

/// Fewest and most key bytes a secret may hold (the Standard Webhooks range).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// An endpoint's signing key: the bytes of a `whsec_…` secret. Wiped on
/// drop, never printed.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<Vec<u8>>);

impl SigningKey {
    /// Reads `whsec_` followed by the base64 of 24 to 64 random bytes
    /// (e.g. `echo "whsec_$(openssl rand -base64 32)"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Err(format!("must start with {PREFIX}"));
        };
        let key = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| format!("must be {PREFIX} followed by base64"))?,
        );
        if !KEY_BYTES.contains(&key.len()) {
            return Err(format!(
                "must hold {} to {} bytes after {PREFIX}, not {}",
                KEY_BYTES.start(),
                KEY_BYTES.end(),
                key.len()
            ));
        }
        Ok(Self(key))
    }

    /// The `Webhook-Signature` header value for one delivery.
    pub fn sign(&self, id: &str, timestamp: u64, body: &str) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts every key length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_secrets_outside_the_format() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            &format!("whsec_{}", STANDARD.encode([1u8; 65])),
        ] {
            assert!(SigningKey::parse(bad).is_err(), "{bad}");
        }
        assert!(
            !format!(
                "{:?}",
                SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            )
            .contains("Mf")
        );
    }
}
