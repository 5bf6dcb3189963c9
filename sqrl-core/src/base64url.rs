//! base64url (RFC 4648 section 5) as SQRL uses it everywhere: the encoder never
//! emits `=` padding; the decoder tolerates it (peers that pad exist) but is
//! otherwise strict: no whitespace, no standard-alphabet characters, no
//! non-canonical trailing bits.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Encodes without padding; decodes only unpadded text.
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decodes text that carries padding: then it must be the canonical amount.
const PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Why a base64url string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Error {
    /// The text is not valid unpadded (or correctly padded) base64url.
    #[error("invalid base64url: {0}")]
    Invalid(String),
    /// The decoded value does not have the fixed length the field requires.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// The length the field requires.
        expected: usize,
        /// The decoded length.
        actual: usize,
    },
}

/// Whether `byte` belongs to the base64url alphabet (`A-Z a-z 0-9 - _`): the
/// characters a nut or an encoded field may hold.
pub fn is_alphabet(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    UNPADDED.encode(bytes)
}

/// Decodes base64url, with or without `=` padding.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, Base64Error> {
    let text = text.as_ref();
    let engine = if text.ends_with(b"=") {
        &PADDED
    } else {
        &UNPADDED
    };
    engine
        .decode(text)
        .map_err(|e| Base64Error::Invalid(e.to_string()))
}

/// Decodes base64url into a fixed-size array, failing on any other length.
pub fn decode_array<const N: usize>(text: impl AsRef<[u8]>) -> Result<[u8; N], Base64Error> {
    let bytes = decode(text)?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| Base64Error::WrongLength {
        expected: N,
        actual,
    })
}

/// Decodes base64url and additionally accepts the standard alphabet's `+` and `/`.
///
/// Only for the CPS localhost path: a widely copied page script converted only
/// the *first* `+` and `/` to the URL-safe alphabet, so a client must accept both
/// (PITFALLS 33). Everywhere else use the strict [`decode`].
pub fn decode_lenient(text: &str) -> Result<Vec<u8>, Base64Error> {
    let normalised: String = text
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    decode(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_never_pads() {
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode([0xfb, 0xff]), "-_8");
    }

    #[test]
    fn decoder_tolerates_padding_only() {
        assert_eq!(decode("Zg==").unwrap(), b"f");
        assert_eq!(decode("Zg").unwrap(), b"f");
        assert!(decode("Zg=").is_err());
        assert!(decode("Z g").is_err());
        assert!(decode("+/8").is_err());
        assert!(
            decode("Zh").is_err(),
            "non-canonical trailing bits must be rejected"
        );
    }

    #[test]
    fn lenient_decoder_accepts_standard_alphabet() {
        assert_eq!(decode_lenient("+/8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_lenient("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn fixed_length_decode() {
        assert!(decode_array::<2>("Zm8").is_ok());
        assert_eq!(
            decode_array::<3>("Zm8"),
            Err(Base64Error::WrongLength {
                expected: 3,
                actual: 2
            })
        );
    }
}
