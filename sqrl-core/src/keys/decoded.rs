//! Identity keys already decoded, remembered by their 32-byte encoding.
//!
//! Decoding an identity key from its bytes to a curve point takes a square
//! root in the field: about a tenth of a signature check (`cargo bench -p
//! sqrl-core`, "identity key decode"). A login brings the same `idk` twice
//! (its `query` and its `ident`) and a returning user brings it at every
//! login, so a server would decode the same few keys over and over. A fixed
//! table remembers the last point decoded for each slot; a key found there is
//! not decoded again.
//!
//! What it remembers is what decoding gave, for exactly the bytes that gave
//! it (a hit compares all 32), so a remembered key is the key decoded afresh.
//! Only keys that decoded are kept: bytes that are not a point are refused
//! every time. Slots are picked by the encoding's first bytes, which anyone
//! may choose: a key that lands on another's slot takes it, and filling the
//! table costs the others one decoding each, nothing more. The keys are
//! public; nothing secret passes through here.

use std::sync::{Mutex, MutexGuard};

use ed25519_dalek::VerifyingKey;

/// Slots in the table (a power of two). At 200 bytes each, 200 KiB: room
/// for the identities of all the logins a busy server has in flight.
const SLOTS: usize = 1024;
const _: () = assert!(SLOTS.is_power_of_two());

type Slot = Mutex<Option<VerifyingKey>>;

static TABLE: [Slot; SLOTS] = [const { Mutex::new(None) }; SLOTS];

fn slot_of(bytes: &[u8; 32]) -> &'static Slot {
    // Masked to the table's size, so the index is always in range.
    &TABLE[usize::from(u16::from_le_bytes([bytes[0], bytes[1]])) & (SLOTS - 1)]
}

fn lock(slot: &Slot) -> MutexGuard<'_, Option<VerifyingKey>> {
    // A slot holds a plain value written whole: a poisoned lock (a panic
    // elsewhere while it was held) leaves nothing half-written.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The point `bytes` encode, or `None` if they encode none.
pub(super) fn decode(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    let slot = slot_of(bytes);
    if let Some(known) = *lock(slot)
        && known.as_bytes() == bytes
    {
        return Some(known);
    }
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    *lock(slot) = Some(key);
    Some(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn signing_key(n: u32) -> SigningKey {
        let mut seed = [0x5a; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        SigningKey::from_bytes(&seed)
    }

    /// Two keys whose encodings pick the same slot.
    fn two_on_one_slot() -> (SigningKey, SigningKey) {
        let mut seen: Vec<(usize, SigningKey)> = Vec::new();
        for n in 0.. {
            let key = signing_key(n);
            let slot = std::ptr::from_ref(slot_of(key.verifying_key().as_bytes())) as usize;
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == slot) {
                return (other.clone(), key);
            }
            seen.push((slot, key));
        }
        unreachable!()
    }

    #[test]
    fn a_remembered_key_is_the_key_decoded_afresh() {
        let key = signing_key(7_000_001);
        let bytes = key.verifying_key().to_bytes();
        let first = decode(&bytes).unwrap();
        let again = decode(&bytes).unwrap();
        let fresh = VerifyingKey::from_bytes(&bytes).unwrap();
        assert_eq!(again.to_edwards(), fresh.to_edwards());
        assert_eq!(first.to_edwards(), fresh.to_edwards());
        let signature = key.sign(b"query");
        again.verify_strict(b"query", &signature).unwrap();
    }

    #[test]
    fn keys_that_share_a_slot_each_decode_to_their_own_point() {
        let (a, b) = two_on_one_slot();
        let (a_bytes, b_bytes) = (a.verifying_key().to_bytes(), b.verifying_key().to_bytes());
        for _ in 0..3 {
            for (key, bytes) in [(&a, &a_bytes), (&b, &b_bytes)] {
                let decoded = decode(bytes).unwrap();
                assert_eq!(decoded.as_bytes(), bytes);
                assert_eq!(decoded.to_edwards(), key.verifying_key().to_edwards());
                decoded
                    .verify_strict(b"ident", &key.sign(b"ident"))
                    .unwrap();
            }
        }
        // Remembered, `b` still refuses what only `a` signed.
        let b_key = decode(&b_bytes).unwrap();
        assert!(b_key.verify_strict(b"ident", &a.sign(b"ident")).is_err());
    }

    #[test]
    fn bytes_that_are_no_point_are_refused_every_time() {
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("some repeated byte is no point");
        for _ in 0..2 {
            assert!(decode(&not_a_point).is_none());
        }
    }
}
