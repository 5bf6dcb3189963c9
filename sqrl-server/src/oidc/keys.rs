//! The provider's token signing keys, one line of keys per algorithm:
//! ES256 (ECDSA P-256, the default), RS256 (RSA 2048, which many relying
//! parties take as the only one, and OpenID Connect's default) and EdDSA
//! (Ed25519). Keys are kept in the store, so that every instance signs with
//! the same key and publishes the same set, and rotated. ring generates the
//! EC and Ed25519 keys and makes every signature; the `rsa` crate only
//! generates RSA keys, which ring cannot.
//!
//! Rotation (per algorithm): a key signs for `key_rotation` (30 days by default). A day
//! before it stops, the next key is made and published (JWKS) without
//! signing yet, so relying parties that cache the key set have it before the
//! first token it signs. A key that stopped signing stays published until
//! the last token it signed has expired. Instances that race to make the
//! next key make two; both are published, and all instances sign with the
//! same one (the latest start, then the greatest `kid`).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use sha2::{Digest as _, Sha256};
use sqrl_core::base64url;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::sealing::{self, KeyEncryptionKey};
use crate::store::oidc::StoredSigningKey;
use crate::store::{Store, StoreError};

/// A signing algorithm the provider has keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256: the default.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA 2048.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm, the default first.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// Reads a JOSE name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    fn jose(self) -> Algorithm {
        match self {
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    /// A fresh private key: PKCS #8 DER for ES256 and EdDSA, PKCS #1 DER
    /// for RS256 (the forms ring, through jsonwebtoken, signs with).
    fn generate_der(self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let rng = SystemRandom::new();
        let failed = |_| KeyError::Key("the system random source failed".into());
        Ok(match self {
            SigningAlg::Es256 => Zeroizing::new(
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec(),
            ),
            SigningAlg::EdDsa => Zeroizing::new(
                Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec(),
            ),
            SigningAlg::Rs256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey as _;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|error| KeyError::Key(format!("RSA key generation: {error}")))?;
                let der = key
                    .to_pkcs1_der()
                    .map_err(|error| KeyError::Key(format!("RSA key encoding: {error}")))?;
                Zeroizing::new(der.as_bytes().to_vec())
            }
        })
    }
}

/// The size of generated RSA keys.
const RSA_BITS: usize = 2048;

/// How long before a key stops signing the next one is published.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// How long the loaded key set is used before the store is asked again.
const RELOAD_AFTER: u64 = 60;

/// Why no token could be signed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be made or read.
    #[error("signing key: {0}")]
    Key(String),
}

/// When keys are made and how long they live.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// How long a key signs.
    pub sign_for: Duration,
    /// How long after it stops signing a key stays published: the longest
    /// a token it signed stays valid.
    pub keep_published: Duration,
}

/// The times of a key of `alg` to be made, if one is due at `now` given the
/// keys there are: `(signs_from, signs_until, published_until)`.
pub fn due(
    keys: &[StoredSigningKey],
    alg: SigningAlg,
    policy: RotationPolicy,
    now: u64,
) -> Option<(u64, u64, u64)> {
    let sign_for = policy.sign_for.as_secs();
    let last_until = keys
        .iter()
        .filter(|key| key.alg == alg.as_str())
        .map(|key| key.signs_until)
        .max();
    let signs_from = match last_until {
        // The newest key signs beyond the publishing margin: nothing to do.
        Some(until) if until > now.saturating_add(PUBLISH_AHEAD.as_secs()) => return None,
        // Take over when the newest stops (published from now until then).
        Some(until) if until > now => until,
        // No key signs now: the first, or after a long outage. No token is
        // signed by a key nobody fetched, since none could have been signed.
        _ => now,
    };
    let signs_until = signs_from.saturating_add(sign_for);
    Some((
        signs_from,
        signs_until,
        signs_until.saturating_add(policy.keep_published.as_secs()),
    ))
}

/// The key of `alg` that signs at `now`: of those whose window holds `now`,
/// the one that started last (ties: the greatest `kid`).
pub fn signer_at(
    keys: &[StoredSigningKey],
    alg: SigningAlg,
    now: u64,
) -> Option<&StoredSigningKey> {
    keys.iter()
        .filter(|key| key.alg == alg.as_str())
        .filter(|key| key.signs_from <= now && now < key.signs_until)
        .max_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)))
}

/// A fresh key of `alg` with the given times.
pub fn generate(
    alg: SigningAlg,
    created_at: u64,
    times: (u64, u64, u64),
) -> Result<StoredSigningKey, KeyError> {
    let private_der = alg.generate_der()?;
    let public = public_parameters(alg, &private_der)?;
    // The key id names the public key: the same key, the same id.
    let kid = base64url::encode(&Sha256::digest(public.concat())[..16]);
    let (signs_from, signs_until, published_until) = times;
    Ok(StoredSigningKey {
        kid,
        alg: alg.as_str().into(),
        private_der,
        created_at,
        signs_from,
        signs_until,
        published_until,
    })
}

/// The public parameters of a stored private key: `[x, y]` of a P-256
/// point, `[n, e]` of an RSA key, `[x]` of an Ed25519 key.
fn public_parameters(alg: SigningAlg, private_der: &[u8]) -> Result<Vec<Vec<u8>>, KeyError> {
    let unreadable = |error: ring::error::KeyRejected| {
        KeyError::Key(format!("unreadable {} key: {error}", alg.as_str()))
    };
    Ok(match alg {
        SigningAlg::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                private_der,
                &SystemRandom::new(),
            )
            .map_err(unreadable)?;
            match pair.public_key().as_ref() {
                [0x04, rest @ ..] if rest.len() == 64 => {
                    let (x, y) = rest.split_at(32);
                    vec![x.to_vec(), y.to_vec()]
                }
                _ => return Err(KeyError::Key("unexpected P-256 public key form".into())),
            }
        }
        SigningAlg::Rs256 => {
            let pair = RsaKeyPair::from_der(private_der).map_err(unreadable)?;
            let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
            vec![public.n, public.e]
        }
        SigningAlg::EdDsa => {
            let pair = Ed25519KeyPair::from_pkcs8(private_der).map_err(unreadable)?;
            vec![pair.public_key().as_ref().to_vec()]
        }
    })
}

/// The algorithm of a stored key.
fn alg_of(key: &StoredSigningKey) -> Result<SigningAlg, KeyError> {
    SigningAlg::parse(&key.alg)
        .ok_or_else(|| KeyError::Key(format!("unsupported algorithm {:?}", key.alg)))
}

/// The public JWK of a stored key.
pub fn public_jwk(key: &StoredSigningKey) -> Result<Jwk, KeyError> {
    let alg = alg_of(key)?;
    let public = public_parameters(alg, &key.private_der)?;
    let part = |index: usize| base64url::encode(&public[index]);
    let (key_algorithm, algorithm) = match alg {
        SigningAlg::Es256 => (
            KeyAlgorithm::ES256,
            AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: part(0),
                y: part(1),
            }),
        ),
        SigningAlg::Rs256 => (
            KeyAlgorithm::RS256,
            AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: part(0),
                e: part(1),
            }),
        ),
        SigningAlg::EdDsa => (
            KeyAlgorithm::EdDSA,
            AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: part(0),
            }),
        ),
    };
    Ok(Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(key_algorithm),
            key_id: Some(key.kid.clone()),
            ..CommonParameters::default()
        },
        algorithm,
    })
}

/// The key jsonwebtoken signs with.
fn encoding_key(key: &StoredSigningKey) -> Result<EncodingKey, KeyError> {
    Ok(match alg_of(key)? {
        SigningAlg::Es256 => EncodingKey::from_ec_der(&key.private_der),
        SigningAlg::Rs256 => EncodingKey::from_rsa_der(&key.private_der),
        SigningAlg::EdDsa => EncodingKey::from_ed_der(&key.private_der),
    })
}

/// The loaded keys and when they were loaded.
#[derive(Default)]
struct Loaded {
    keys: Vec<StoredSigningKey>,
    at: Option<u64>,
}

/// The key set as this instance knows it: loaded from the store, made there
/// when due, reloaded every minute so that a key another instance made is
/// used here too.
pub struct KeyRing {
    policy: RotationPolicy,
    /// Seals new keys and opens sealed ones ([`super::sealing`]).
    sealing: Option<KeyEncryptionKey>,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A key ring with nothing loaded yet.
    pub fn new(policy: RotationPolicy, sealing: Option<KeyEncryptionKey>) -> Self {
        Self {
            policy,
            sealing,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// The published keys in the store at `now`, opened.
    async fn load(
        &self,
        store: &Arc<dyn Store>,
        now: u64,
    ) -> Result<Vec<StoredSigningKey>, KeyError> {
        let mut keys = store.signing_keys(now).await?;
        for key in &mut keys {
            match (&self.sealing, sealing::is_sealed(&key.private_der)) {
                (Some(kek), true) => {
                    key.private_der = kek
                        .open(&key.kid, &key.alg, &key.private_der)
                        .map_err(|reason| KeyError::Key(format!("key {}: {reason}", key.kid)))?;
                }
                (None, true) => {
                    return Err(KeyError::Key(format!(
                        "key {} is sealed: configure [oidc] key_encryption_key_file",
                        key.kid
                    )));
                }
                (Some(_), false) => {
                    tracing::warn!(
                        kid = key.kid,
                        "a signing key made before key_encryption_key_file is stored unsealed"
                    );
                }
                (None, false) => {}
            }
        }
        Ok(keys)
    }

    /// The published keys at `now`, after making one if due.
    async fn keys(
        &self,
        store: &Arc<dyn Store>,
        now: u64,
    ) -> Result<Vec<StoredSigningKey>, KeyError> {
        let mut loaded = self.loaded.lock().await;
        let fresh = loaded
            .at
            .is_some_and(|at| now < at.saturating_add(RELOAD_AFTER));
        let any_due = |keys: &[StoredSigningKey]| {
            SigningAlg::ALL
                .into_iter()
                .any(|alg| due(keys, alg, self.policy, now).is_some())
        };
        if fresh && !any_due(&loaded.keys) {
            return Ok(loaded.keys.clone());
        }
        let mut keys = self.load(store, now).await?;
        if any_due(&keys) {
            for alg in SigningAlg::ALL {
                if let Some(times) = due(&keys, alg, self.policy, now) {
                    let mut key = generate(alg, now, times)?;
                    tracing::info!(
                        kid = key.kid,
                        alg = key.alg,
                        signs_from = key.signs_from,
                        sealed = self.sealing.is_some(),
                        "new token signing key"
                    );
                    if let Some(kek) = &self.sealing {
                        let sealed = kek
                            .seal(&key.kid, &key.alg, &key.private_der)
                            .map_err(|reason| KeyError::Key(reason.into()))?;
                        key.private_der = Zeroizing::new(sealed);
                    }
                    store.add_signing_key(key).await?;
                }
            }
            keys = self.load(store, now).await?;
        }
        loaded.keys.clone_from(&keys);
        loaded.at = Some(now);
        Ok(keys)
    }

    /// The published key set (JWKS).
    pub async fn key_set(&self, store: &Arc<dyn Store>, now: u64) -> Result<JwkSet, KeyError> {
        let keys = self.keys(store, now).await?;
        Ok(JwkSet {
            keys: keys.iter().map(public_jwk).collect::<Result<_, _>>()?,
        })
    }

    /// The claims of `token` if a published key signed it for `issuer`;
    /// its expiry is not checked (an `id_token_hint` may have expired).
    pub async fn verify(
        &self,
        store: &Arc<dyn Store>,
        token: &str,
        issuer: &str,
        now: u64,
    ) -> Result<serde_json::Value, KeyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|error| KeyError::Key(error.to_string()))?;
        let keys = self.keys(store, now).await?;
        let key = keys
            .iter()
            .find(|key| header.kid.as_deref() == Some(key.kid.as_str()))
            .ok_or_else(|| KeyError::Key("no published key has that kid".into()))?;
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&public_jwk(key)?)
            .map_err(|error| KeyError::Key(error.to_string()))?;
        // The key's own algorithm, never the one the token's header names.
        let mut validation = jsonwebtoken::Validation::new(alg_of(key)?.jose());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| KeyError::Key(error.to_string()))
    }

    /// Signs `claims` as a JWT with the key of `alg` that signs at `now`:
    /// of type `typ` (`logout+jwt`), or a plain JWT.
    pub async fn sign<T: serde::Serialize>(
        &self,
        store: &Arc<dyn Store>,
        claims: &T,
        alg: SigningAlg,
        typ: Option<&str>,
        now: u64,
    ) -> Result<String, KeyError> {
        let keys = self.keys(store, now).await?;
        let key = signer_at(&keys, alg, now)
            .ok_or_else(|| KeyError::Key(format!("no {} key signs now", alg.as_str())))?;
        let mut header = Header::new(alg.jose());
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(&header, claims, &encoding_key(key)?)
            .map_err(|error| KeyError::Key(error.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            sign_for: Duration::from_secs(30 * DAY),
            keep_published: Duration::from_secs(600),
        }
    }

    fn key(kid: &str, from: u64, until: u64) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_der: Zeroizing::new(Vec::new()),
            created_at: from,
            signs_from: from,
            signs_until: until,
            published_until: until + 600,
        }
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let now = 1_000_000;
        assert_eq!(
            due(&[], SigningAlg::Es256, policy(), now),
            Some((now, now + 30 * DAY, now + 30 * DAY + 600))
        );
    }

    #[test]
    fn the_next_key_is_published_a_day_before_it_signs() {
        let start = 1_000_000;
        let keys = [key("a", start, start + 30 * DAY)];
        // Until a day before the end, nothing is due.
        assert_eq!(
            due(&keys, SigningAlg::Es256, policy(), start + 29 * DAY - 1),
            None
        );
        // Then the next key is made, to start when the current one stops.
        let now = start + 29 * DAY + 1;
        let (from, until, _) = due(&keys, SigningAlg::Es256, policy(), now).unwrap();
        assert_eq!(from, start + 30 * DAY);
        assert_eq!(until, start + 60 * DAY);
        let keys = [keys[0].clone(), key("b", from, until)];
        assert_eq!(due(&keys, SigningAlg::Es256, policy(), now), None);
        // The old key still signs until its end; then the new one does.
        assert_eq!(signer_at(&keys, SigningAlg::Es256, now).unwrap().kid, "a");
        assert_eq!(
            signer_at(&keys, SigningAlg::Es256, start + 30 * DAY)
                .unwrap()
                .kid,
            "b"
        );
    }

    #[test]
    fn racing_instances_agree_on_the_signer() {
        let keys = [key("b", 100, 200), key("a", 100, 200), key("c", 50, 200)];
        assert_eq!(signer_at(&keys, SigningAlg::Es256, 150).unwrap().kid, "b");
        assert!(signer_at(&keys, SigningAlg::Es256, 200).is_none());
    }

    #[test]
    fn each_algorithm_has_its_own_line_of_keys() {
        let now = 1_000_000;
        let keys = [key("a", now, now + 30 * DAY)];
        assert_eq!(due(&keys, SigningAlg::Es256, policy(), now), None);
        assert!(due(&keys, SigningAlg::Rs256, policy(), now).is_some());
        assert!(signer_at(&keys, SigningAlg::EdDsa, now).is_none());
    }

    #[test]
    fn a_generated_key_of_each_algorithm_signs_and_its_jwk_verifies() {
        for alg in SigningAlg::ALL {
            let key = generate(alg, 1, (1, 2, 3)).unwrap();
            assert_eq!(key.alg, alg.as_str());
            let jwk = public_jwk(&key).unwrap();
            assert_eq!(jwk.common.key_id.as_deref(), Some(key.kid.as_str()));
            let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
            let mut header = Header::new(alg.jose());
            header.kid = Some(key.kid.clone());
            let token =
                jsonwebtoken::encode(&header, &claims, &encoding_key(&key).unwrap()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.jose());
            validation.validate_aud = false;
            let decoded =
                jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(decoded.claims["sub"], "x", "{alg:?}");
            // Another key's JWK does not verify it.
            let other = public_jwk(&generate(alg, 1, (1, 2, 3)).unwrap()).unwrap();
            let other = jsonwebtoken::DecodingKey::from_jwk(&other).unwrap();
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&token, &other, &validation).is_err(),
                "{alg:?}"
            );
            // The private key never shows in Debug.
            assert!(!format!("{key:?}").contains("private_der:"));
        }
    }
}
