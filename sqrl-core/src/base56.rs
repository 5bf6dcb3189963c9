//! base56 with per-line check characters (SPEC 5.5): the textual form of an identity
//! that a person can type from paper.
//!
//! The bytes are one little-endian unsigned integer written as base-56 digits, least
//! significant first, padded to the digit count of an all-`0xFF` value of the same
//! length. The digits are cut into lines of 19, each followed by a check character
//! (`SHA256(line || line_index) mod 56`), and shown as 20-character lines in groups of
//! four. The check characters let a decoder say *which* line was mistyped or
//! mis-scanned (PITFALLS 22).
//!
//! ```
//! use sqrl_core::base56;
//!
//! let text = base56::encode(&[0xc9, 0xa6, 0xc2, 0x62, 0x20, 0x06, 0xca, 0x50, 0x41, 0x4b]);
//! assert_eq!(text, "je5V Uz5i ahBd f8b");
//! assert_eq!(base56::decode(&text).unwrap(), [0xc9, 0xa6, 0xc2, 0x62, 0x20, 0x06, 0xca, 0x50, 0x41, 0x4b]);
//! ```

use sha2::{Digest, Sha256};

/// The 56 digit characters, value 0 first. `0`, `1`, `I`, `O`, `l` and `o` are left out
/// because they are easily confused when read or typed.
pub const ALPHABET: &[u8; 56] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz";

/// Data digits per line; each line also carries one check character.
pub const DIGITS_PER_LINE: usize = 19;

/// Characters between spaces in the display form.
pub const GROUP_LEN: usize = 4;

/// Largest byte string [`decode`] and [`decode_digits`] accept.
///
/// A textual identity is a 73-byte rescue block plus at most a 150-byte
/// previous-keys block; the limit leaves room for growth while keeping the
/// quadratic base conversion cheap on hostile input, and keeps the line count
/// below 256 so every line index fits the one-byte check-character suffix.
pub const MAX_DECODED_LEN: usize = 2048;

/// `log2(56)`: bits carried by one base-56 digit.
const BITS_PER_DIGIT: f64 = 5.807_354_922_057_604;

/// Why base56 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base56Error {
    /// A character that is neither whitespace nor in [`ALPHABET`].
    #[error("line {line}: {character:?} is not a base56 character")]
    InvalidCharacter {
        /// 1-based line (20-character group) the character falls in.
        line: usize,
        /// The offending character.
        character: char,
    },
    /// A line's check character does not match its digits: the line was mistyped or
    /// mis-scanned.
    #[error("line {line}: check character mismatch (the line was mistyped or misread)")]
    BadCheckCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The last line holds only a check character, no digits: the text is truncated.
    #[error("line {line}: a line needs at least one digit before its check character")]
    EmptyLine {
        /// 1-based line number.
        line: usize,
    },
    /// The number of digits is not the digit count of any byte length: characters
    /// are missing or extra.
    #[error("{digits} base56 digits is not a valid encoding length")]
    BadLength {
        /// Digits found (check characters excluded).
        digits: usize,
    },
    /// The digits encode a number too large for the byte length they imply.
    #[error("base56 value does not fit the encoded length")]
    Overflow,
    /// The text encodes more than [`MAX_DECODED_LEN`] bytes.
    #[error("base56 text longer than {MAX_DECODED_LEN} bytes")]
    TooLong,
}

/// Number of base-56 digits used for `byte_len` bytes: the digit count of an
/// all-`0xFF` value of that length, `ceil(byte_len * 8 / log2 56)`.
pub fn digit_count(byte_len: usize) -> usize {
    // 56^L is never a power of two (for L > 0), so the quotient is never an exact
    // integer and floating point rounding cannot land on the wrong side at these sizes.
    ((byte_len as f64) * 8.0 / BITS_PER_DIGIT).ceil() as usize
}

/// Number of bytes encoded by `digits` base-56 digits, `floor(digits * log2 56 / 8)`.
fn byte_count(digits: usize) -> usize {
    ((digits as f64) * BITS_PER_DIGIT / 8.0).floor() as usize
}

fn digit_value(character: u8) -> Option<u8> {
    ALPHABET
        .iter()
        .position(|&a| a == character)
        .and_then(|p| u8::try_from(p).ok())
}

/// Encodes bytes as a plain digit string (no check characters, no spaces): the
/// little-endian integer in base 56, least significant digit first, padded with
/// `2` (digit 0) to [`digit_count`] digits.
pub fn encode_digits(bytes: &[u8]) -> String {
    let mut limbs = LeNumber::from_le_bytes(bytes);
    let count = digit_count(bytes.len());
    let mut out = String::with_capacity(count);
    for _ in 0..count {
        let digit = limbs.div_rem_small(56);
        out.push(char::from(ALPHABET[usize::from(digit)]));
    }
    out
}

/// Decodes a plain digit string (no check characters; whitespace not allowed) back
/// into bytes. The inverse of [`encode_digits`].
pub fn decode_digits(digits: &str) -> Result<Vec<u8>, Base56Error> {
    if digits.len() > digit_count(MAX_DECODED_LEN) {
        return Err(Base56Error::TooLong);
    }
    let values = digits
        .chars()
        .map(|c| {
            u8::try_from(c)
                .ok()
                .and_then(digit_value)
                .ok_or(Base56Error::InvalidCharacter {
                    line: 1,
                    character: c,
                })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    digits_to_bytes(&values)
}

/// The check character of one line: `SHA256(chunk || line_index) mod 56`, reading the
/// digest as a little-endian integer. `line_index` is 0-based.
pub fn check_char(chunk: &str, line_index: u8) -> char {
    let mut hasher = Sha256::new();
    hasher.update(chunk.as_bytes());
    hasher.update([line_index]);
    let digest = hasher.finalize();
    // Horner's rule from the most significant (last) byte.
    let remainder = digest
        .iter()
        .rev()
        .fold(0u32, |acc, &b| (acc * 256 + u32::from(b)) % 56);
    // remainder < 56, so the index is in range; `get` keeps the code panic-free.
    ALPHABET
        .get(remainder as usize)
        .map_or('2', |&c| char::from(c))
}

/// Encodes bytes in the full textual layout: lines of 19 digits plus a check
/// character, a space every four characters, lines joined with `\n` (no trailing
/// newline).
///
/// Meant for identity-sized input (see [`MAX_DECODED_LEN`]): the base conversion
/// is quadratic in the length, and [`decode`] refuses longer text.
pub fn encode(bytes: &[u8]) -> String {
    let digits = encode_digits(bytes);
    let mut lines = Vec::new();
    // The digit string is ASCII, so byte chunks are character chunks.
    for (index, chunk) in digits.as_bytes().chunks(DIGITS_PER_LINE).enumerate() {
        let chunk = String::from_utf8_lossy(chunk);
        let mut line: Vec<char> = chunk.chars().collect();
        // The hash suffix is one byte; up to MAX_DECODED_LEN there are fewer
        // than 256 lines, beyond it the index wraps.
        line.push(check_char(&chunk, index as u8));
        let grouped: Vec<String> = line
            .chunks(GROUP_LEN)
            .map(|g| g.iter().collect::<String>())
            .collect();
        lines.push(grouped.join(" "));
    }
    lines.join("\n")
}

/// Decodes the textual layout produced by [`encode`].
///
/// Whitespace (spaces, tabs, line breaks) is ignored anywhere, so the text may be
/// typed on one line or as displayed. Lines are the successive 20-character groups of
/// the remaining characters; each one's check character is verified and the first
/// bad one is reported by its 1-based number.
pub fn decode(text: &str) -> Result<Vec<u8>, Base56Error> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(DIGITS_PER_LINE + 1);
    let max_chars =
        digit_count(MAX_DECODED_LEN) + digit_count(MAX_DECODED_LEN) / DIGITS_PER_LINE + 1;
    let mut seen = 0usize;
    for character in text.chars().filter(|c| !c.is_whitespace()) {
        seen += 1;
        if seen > max_chars {
            return Err(Base56Error::TooLong);
        }
        let line = lines.len() + 1;
        let byte = u8::try_from(character)
            .ok()
            .filter(|b| digit_value(*b).is_some())
            .ok_or(Base56Error::InvalidCharacter { line, character })?;
        current.push(byte);
        if current.len() == DIGITS_PER_LINE + 1 {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }

    let mut values = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let Some((&check, body)) = line.split_last() else {
            continue;
        };
        if body.is_empty() {
            return Err(Base56Error::EmptyLine { line: number });
        }
        let body_text = String::from_utf8_lossy(body);
        if u32::from(check_char(&body_text, index as u8)) != u32::from(check) {
            return Err(Base56Error::BadCheckCharacter { line: number });
        }
        values.extend(body.iter().filter_map(|&b| digit_value(b)));
    }
    digits_to_bytes(&values)
}

/// Rebuilds the bytes from digit values (least significant first).
fn digits_to_bytes(values: &[u8]) -> Result<Vec<u8>, Base56Error> {
    let len = byte_count(values.len());
    if len > MAX_DECODED_LEN {
        return Err(Base56Error::TooLong);
    }
    if digit_count(len) != values.len() {
        return Err(Base56Error::BadLength {
            digits: values.len(),
        });
    }
    let mut number = LeNumber::zero();
    for &digit in values.iter().rev() {
        number.mul_add_small(56, u32::from(digit));
    }
    number.to_le_bytes(len).ok_or(Base56Error::Overflow)
}

/// A little-endian arbitrary-size unsigned integer in 32-bit limbs; just enough
/// arithmetic for base conversion.
struct LeNumber {
    limbs: Vec<u32>,
}

impl LeNumber {
    fn zero() -> Self {
        Self { limbs: Vec::new() }
    }

    fn from_le_bytes(bytes: &[u8]) -> Self {
        let limbs = bytes
            .chunks(4)
            .map(|chunk| {
                chunk
                    .iter()
                    .rev()
                    .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
            })
            .collect();
        Self { limbs }
    }

    /// Divides in place by `divisor` (non-zero, < 2^16) and returns the remainder.
    fn div_rem_small(&mut self, divisor: u32) -> u8 {
        let mut remainder: u64 = 0;
        for limb in self.limbs.iter_mut().rev() {
            let current = (remainder << 32) | u64::from(*limb);
            // current < divisor * 2^32, so the quotient fits in 32 bits.
            *limb = (current / u64::from(divisor)) as u32;
            remainder = current % u64::from(divisor);
        }
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        remainder as u8
    }

    /// `self = self * factor + addend`.
    fn mul_add_small(&mut self, factor: u32, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    /// The value as exactly `len` little-endian bytes, or `None` if it does not fit.
    fn to_le_bytes(&self, len: usize) -> Option<Vec<u8>> {
        let mut bytes: Vec<u8> = self.limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        if bytes.iter().skip(len).any(|&b| b != 0) {
            return None;
        }
        bytes.resize(len, 0);
        Some(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::base64url;

    const VECTORS: &str =
        include_str!("../../test-vectors/vectors/published/sqrldev/base56-vectors.txt");
    const FULL_VECTORS: &str =
        include_str!("../../test-vectors/vectors/published/sqrldev/base56-full-format-vectors.txt");
    const LIBSQRL_VECTOR: &str = include_str!(
        "../../test-vectors/vectors/published/libsqrl/base56check-identity-vector.txt"
    );

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Splits a CSV row of double-quoted and bare fields.
    fn fields(row: &str) -> Vec<String> {
        row.split(',')
            .map(|f| f.trim_matches('"').to_owned())
            .collect()
    }

    fn data_rows(file: &str) -> impl Iterator<Item = &str> {
        file.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .skip(1) // header row
    }

    #[test]
    fn sqrldev_digit_and_check_vectors() {
        let mut count = 0;
        for row in data_rows(VECTORS) {
            let f = fields(row);
            let bytes = hex(&f[0]);
            let line: u8 = f[1].parse().unwrap();
            assert_eq!(encode_digits(&bytes), f[2], "digits of {}", f[0]);
            assert_eq!(check_char(&f[2], line).to_string(), f[3], "check of {row}");
            assert_eq!(decode_digits(&f[2]).unwrap(), bytes);
            count += 1;
        }
        assert_eq!(count, 120);
    }

    #[test]
    fn sqrldev_full_format_vectors() {
        let mut count = 0;
        for row in data_rows(FULL_VECTORS) {
            let f = fields(row);
            let bytes = hex(&f[1]);
            assert_eq!(base64url::decode(&f[0]).unwrap(), bytes);
            let expected = f[2].replace("\\n", "\n");
            assert_eq!(encode(&bytes), expected, "row {count}");
            assert_eq!(decode(&expected).unwrap(), bytes, "row {count}");
            count += 1;
        }
        assert_eq!(count, 128);
    }

    #[test]
    fn libsqrl_identity_vector_decodes_to_a_rescue_block() {
        let text = LIBSQRL_VECTOR
            .lines()
            .find_map(|l| l.strip_prefix("text = "))
            .unwrap();
        let bytes = decode(text).unwrap();
        assert_eq!(bytes.len(), 73);
        assert_eq!(bytes[..4], [0x49, 0x00, 0x02, 0x00]);
        // Re-encoding gives the same characters (the vector is unspaced).
        let reencoded: String = encode(&bytes).split_whitespace().collect();
        assert_eq!(reencoded, text);
    }

    #[test]
    fn a_corrupted_line_is_named() {
        let bytes: Vec<u8> = (0u8..73).collect();
        let text = encode(&bytes);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert!(lines.len() >= 4);
        // Change one character of the third line to another alphabet character.
        let third = lines[2].clone();
        let first = third.chars().next().unwrap();
        let replacement = if first == 'A' { 'B' } else { 'A' };
        lines[2] = format!("{replacement}{}", &third[1..]);
        let corrupted = lines.join("\n");
        assert_eq!(
            decode(&corrupted),
            Err(Base56Error::BadCheckCharacter { line: 3 })
        );
        // The last (short) line is checked too.
        let last = lines.len() - 1;
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let tail = lines[last].clone();
        let end = tail.chars().last().unwrap();
        let replacement = if end == 'A' { 'B' } else { 'A' };
        lines[last] = format!("{}{replacement}", &tail[..tail.len() - 1]);
        assert_eq!(
            decode(&lines.join("\n")),
            Err(Base56Error::BadCheckCharacter { line: last + 1 })
        );
    }

    #[test]
    fn invalid_characters_and_lengths_are_typed_errors() {
        assert_eq!(
            decode("je5V Uz5i ahBd f80"),
            Err(Base56Error::InvalidCharacter {
                line: 1,
                character: '0'
            })
        );
        assert!(matches!(
            decode("je5V Uz5i ahBd f8é"),
            Err(Base56Error::InvalidCharacter { .. })
        ));
        // A dropped character breaks the check of its line.
        assert_eq!(
            decode("je5V Uz5i ahBd f8"),
            Err(Base56Error::BadCheckCharacter { line: 1 })
        );
        // Four digits is not the length of any byte string (2 bytes use 3).
        assert_eq!(
            decode_digits("2222"),
            Err(Base56Error::BadLength { digits: 4 })
        );
        // Three digits of the largest value overflow two bytes.
        assert_eq!(decode_digits("zzz"), Err(Base56Error::Overflow));
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn whitespace_anywhere_is_ignored() {
        let bytes: Vec<u8> = (0u8..40).map(|b| b.wrapping_mul(37)).collect();
        let text = encode(&bytes);
        let squeezed: String = text.split_whitespace().collect();
        let spread: String = squeezed.chars().flat_map(|c| [c, ' ', '\t']).collect();
        assert_eq!(decode(&squeezed).unwrap(), bytes);
        assert_eq!(decode(&spread).unwrap(), bytes);
    }

    #[test]
    fn huge_input_is_rejected_quickly() {
        let text = "2".repeat(1 << 20);
        assert_eq!(decode(&text), Err(Base56Error::TooLong));
        assert_eq!(decode_digits(&text), Err(Base56Error::TooLong));
    }

    #[test]
    fn round_trips_every_length() {
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            let all_ff = vec![0xffu8; len];
            for value in [&bytes, &all_ff] {
                let digits = encode_digits(value);
                assert_eq!(digits.len(), digit_count(len));
                assert_eq!(&decode_digits(&digits).unwrap(), value);
                assert_eq!(&decode(&encode(value)).unwrap(), value);
            }
        }
    }
}
