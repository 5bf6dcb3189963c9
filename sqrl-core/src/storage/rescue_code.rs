//! The 24-digit rescue code (SPEC 5.4): the only key to the IUK.

use core::str::FromStr;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Number of decimal digits in a rescue code.
pub const RESCUE_CODE_DIGITS: usize = 24;

/// Digits per displayed group (`1234-5678-…`).
const GROUP_LEN: usize = 4;

/// Why text is not a rescue code. The errors never echo the text (it is a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RescueCodeError {
    /// A character other than an ASCII digit, a dash or whitespace.
    #[error("a rescue code holds only digits (dashes and spaces are ignored)")]
    InvalidCharacter,
    /// Not exactly 24 digits.
    #[error("a rescue code has {RESCUE_CODE_DIGITS} digits, not {digits}")]
    WrongLength {
        /// Digits found.
        digits: usize,
    },
}

/// A rescue code: exactly 24 ASCII digits, without separators.
///
/// EnScrypt always sees these 24 digits and nothing else: one client encrypted the
/// dashed form on import and could never decrypt it again (PITFALLS 17), so every
/// way in goes through [`RescueCode::parse`], which strips dashes and whitespace.
/// Wiped on drop, compared in constant time, redacted in `Debug`; it deliberately
/// has no `Display` so it cannot slip into a log line.
#[derive(Clone)]
pub struct RescueCode(Zeroizing<[u8; RESCUE_CODE_DIGITS]>);

impl RescueCode {
    /// Generates a uniformly random code: 32 random bytes read as one big
    /// (little-endian) number, long-divided by 10 twenty-four times, the remainders
    /// giving the digits (SPEC 5.4). 2^256 dwarfs 10^24, so the bias is nil.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut number = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(number.as_mut_slice());
        let mut digits = Zeroizing::new([0u8; RESCUE_CODE_DIGITS]);
        for digit in digits.iter_mut() {
            let mut remainder: u16 = 0;
            for byte in number.iter_mut().rev() {
                let current = (remainder << 8) | u16::from(*byte);
                // current < 10 * 256, so the quotient fits a byte.
                *byte = (current / 10) as u8;
                remainder = current % 10;
            }
            *digit = b'0' + remainder as u8;
        }
        Self(digits)
    }

    /// Parses a code as typed or printed: dashes and whitespace anywhere are
    /// removed, and exactly 24 ASCII digits must remain.
    pub fn parse(text: &str) -> Result<Self, RescueCodeError> {
        let mut digits = Zeroizing::new([0u8; RESCUE_CODE_DIGITS]);
        let mut count = 0usize;
        for character in text.chars() {
            if character == '-' || character.is_whitespace() {
                continue;
            }
            if !character.is_ascii_digit() {
                return Err(RescueCodeError::InvalidCharacter);
            }
            if let Some(slot) = digits.get_mut(count) {
                // An ASCII digit always fits a byte.
                *slot = character as u8;
            }
            count += 1;
        }
        if count != RESCUE_CODE_DIGITS {
            return Err(RescueCodeError::WrongLength { digits: count });
        }
        Ok(Self(digits))
    }

    /// The 24 digits, as EnScrypt consumes them.
    pub fn as_digits(&self) -> &str {
        // Only ASCII digits are ever stored, so this never falls back.
        core::str::from_utf8(self.0.as_slice()).unwrap_or_default()
    }

    /// The display form: six groups of four digits joined with dashes.
    pub fn to_grouped_string(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(RESCUE_CODE_DIGITS + 5));
        for (index, group) in self.0.chunks(GROUP_LEN).enumerate() {
            if index > 0 {
                out.push('-');
            }
            out.extend(group.iter().map(|&b| char::from(b)));
        }
        out
    }

    /// The bytes EnScrypt consumes (the ASCII digits).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl FromStr for RescueCode {
    type Err = RescueCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl ConstantTimeEq for RescueCode {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

impl PartialEq for RescueCode {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for RescueCode {}

impl core::fmt::Debug for RescueCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RescueCode(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand_core::{OsRng, RngCore};

    use super::*;

    /// Replays fixed bytes as "randomness".
    struct FixedRng(u8);

    impl RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            u32::from(self.0)
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.0)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(self.0);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(self.0);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for FixedRng {}

    #[test]
    fn generation_is_long_division_of_the_random_number() {
        // All-zero randomness is the number 0: every remainder is 0.
        assert_eq!(
            RescueCode::generate(&mut FixedRng(0)).as_digits(),
            "0".repeat(24)
        );
        // All-0xFF is 2^256 - 1; its 24 lowest decimal digits, least significant first.
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        let expected: String = max.chars().rev().take(24).collect();
        assert_eq!(
            RescueCode::generate(&mut FixedRng(0xFF)).as_digits(),
            expected
        );
    }

    #[test]
    fn generated_codes_are_24_digits_and_vary() {
        let a = RescueCode::generate(&mut OsRng);
        let b = RescueCode::generate(&mut OsRng);
        assert_eq!(a.as_digits().len(), RESCUE_CODE_DIGITS);
        assert!(a.as_digits().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[test]
    fn display_groups_and_parsing_strips_separators() {
        let code = RescueCode::parse("894268272655451828340130").unwrap();
        let grouped = code.to_grouped_string();
        assert_eq!(grouped.as_str(), "8942-6827-2655-4518-2834-0130");
        for form in [
            grouped.as_str(),
            "8942 6827 2655 4518 2834 0130",
            " 8942-6827 -2655\t4518\n2834-0130 ",
            "89-42682726554518283401-30",
        ] {
            assert_eq!(RescueCode::parse(form).unwrap(), code, "{form:?}");
        }
        assert_eq!(code.as_bytes(), b"894268272655451828340130");
    }

    #[test]
    fn rejects_anything_but_24_digits() {
        assert_eq!(
            RescueCode::parse("8942-6827-2655-4518-2834-013"),
            Err(RescueCodeError::WrongLength { digits: 23 })
        );
        assert_eq!(
            RescueCode::parse("8942-6827-2655-4518-2834-01300"),
            Err(RescueCodeError::WrongLength { digits: 25 })
        );
        assert_eq!(
            RescueCode::parse("8942-6827-2655-4518-2834-013O"),
            Err(RescueCodeError::InvalidCharacter)
        );
        // Non-ASCII digits are not rescue-code digits.
        assert_eq!(
            RescueCode::parse("８９４２６８２７２６５５４５１８２８３４０１３０"),
            Err(RescueCodeError::InvalidCharacter)
        );
        assert_eq!(
            RescueCode::parse(""),
            Err(RescueCodeError::WrongLength { digits: 0 })
        );
        let huge = "1".repeat(1 << 20);
        assert_eq!(
            RescueCode::parse(&huge),
            Err(RescueCodeError::WrongLength { digits: 1 << 20 })
        );
    }

    #[test]
    fn debug_is_redacted() {
        let code = RescueCode::parse("894268272655451828340130").unwrap();
        let printed = format!("{code:?}");
        assert!(!printed.contains("8942"));
        assert_eq!(printed, "RescueCode(<redacted>)");
    }
}
