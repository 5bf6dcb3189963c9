//! TIF, the Transaction Information Flags of every server reply (SPEC 3.1).

use core::fmt;

/// Longest `tif=` text accepted. Any length is allowed by the spec (PITFALLS 5),
/// so leading zeros are tolerated, but a bound keeps hostile input cheap.
const MAX_TIF_TEXT: usize = 32;

/// Why a `tif=` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TifError {
    /// The value is empty.
    #[error("tif is empty")]
    Empty,
    /// A character is not a hexadecimal digit (a `0x` prefix is not allowed).
    #[error("tif is not hexadecimal")]
    NotHex,
    /// The value does not fit in 32 bits.
    #[error("tif is too large")]
    Overflow,
    /// Bits that protocol version 1 does not define are set; clients must abort
    /// (SPEC 3.1, PITFALLS 5–6).
    #[error("tif {0} sets bits undefined in SQRL v1")]
    Undefined(Tif),
}

bitflags::bitflags! {
    /// A set of TIF bits.
    ///
    /// Parsed from and written as hexadecimal without `0x` (`5`, `1c0`). The value
    /// may hold bits that v1 does not define (so a reply can be parsed and shown):
    /// [`Tif::from_bits_retain`] and every operator keep them, and
    /// [`Tif::check_defined`] rejects them, as a client must.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
    pub struct Tif: u32 {
        /// `0x001`: the current identity (`idk`, `ids`) is known to the server.
        const CURRENT_ID_MATCH = 0x001;
        /// `0x002`: the previous identity (`pidk`, `pids`) is known to the server.
        const PREVIOUS_ID_MATCH = 0x002;
        /// `0x004`: the client's IP matches the IP that fetched the SQRL URL.
        const IP_MATCHED = 0x004;
        /// `0x008`: SQRL login is disabled for this identity.
        const SQRL_DISABLED = 0x008;
        /// `0x010`: a requested function is not supported (always with 0x040).
        const FUNCTION_NOT_SUPPORTED = 0x010;
        /// `0x020`: transient error; retry with the fresh nut (always with 0x040).
        const TRANSIENT_ERROR = 0x020;
        /// `0x040`: the command failed and nothing changed.
        const COMMAND_FAILED = 0x040;
        /// `0x080`: malformed request or bad signature (always with 0x040).
        const CLIENT_FAILURE = 0x080;
        /// `0x100`: the nut is bound to a different identity (with 0x0C0).
        const BAD_ID_ASSOCIATION = 0x100;
        /// `0x200`: the presented identity was superseded by a newer one (v1, 2019;
        /// older drafts gave this bit another meaning, PITFALLS 6).
        const IDENTITY_SUPERSEDED = 0x200;
    }
}

impl Tif {
    /// No bit set.
    pub const NONE: Tif = Tif::empty();
    /// Every bit protocol version 1 defines.
    pub const V1_DEFINED: Tif = Tif::all();

    /// The named bits with their wording, lowest first.
    const NAMES: [(Tif, &'static str); 10] = [
        (Tif::CURRENT_ID_MATCH, "current identity known"),
        (Tif::PREVIOUS_ID_MATCH, "previous identity known"),
        (Tif::IP_MATCHED, "IP addresses match"),
        (Tif::SQRL_DISABLED, "SQRL disabled for this identity"),
        (Tif::FUNCTION_NOT_SUPPORTED, "function not supported"),
        (Tif::TRANSIENT_ERROR, "transient error"),
        (Tif::COMMAND_FAILED, "command failed"),
        (Tif::CLIENT_FAILURE, "client failure"),
        (Tif::BAD_ID_ASSOCIATION, "bad identity association"),
        (Tif::IDENTITY_SUPERSEDED, "identity superseded"),
    ];

    /// `self` with the bits of `other` cleared.
    pub const fn without(self, other: Tif) -> Self {
        self.difference(other)
    }

    /// Whether the command failed (`0x040`). Success is judged by this bit only,
    /// never by a missing `0x001` after a new-user `ident` (PITFALLS 7).
    pub const fn is_failure(self) -> bool {
        self.contains(Tif::COMMAND_FAILED)
    }

    /// The bits v1 does not define (empty for a valid v1 value).
    pub const fn undefined_bits(self) -> Tif {
        self.difference(Tif::V1_DEFINED)
    }

    /// Returns `self` if it sets only v1 bits. A client must abort otherwise
    /// (SPEC 3.1; PITFALLS 5–6: `0x400` was "suppress SFN" in old drafts).
    pub fn check_defined(self) -> Result<Self, TifError> {
        if self.undefined_bits().is_empty() {
            Ok(self)
        } else {
            Err(TifError::Undefined(self))
        }
    }

    /// Parses hexadecimal without `0x`, of any length and either case
    /// (PITFALLS 5). Signs, prefixes, spaces and empty text are rejected.
    pub fn parse_hex(text: &str) -> Result<Self, TifError> {
        if text.is_empty() {
            return Err(TifError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TifError::NotHex);
        }
        let significant = text.trim_start_matches('0');
        if significant.len() > 8 || text.len() > MAX_TIF_TEXT {
            return Err(TifError::Overflow);
        }
        if significant.is_empty() {
            return Ok(Tif::NONE);
        }
        // Only hex digits remain, at most 8 of them: this cannot fail, but the
        // error path is kept typed rather than panicking.
        u32::from_str_radix(significant, 16)
            .map(Tif::from_bits_retain)
            .map_err(|_| TifError::Overflow)
    }

    /// The wire form: lowercase hexadecimal without `0x` or leading zeros.
    pub fn to_hex(self) -> String {
        format!("{:x}", self.bits())
    }

    /// The names of the set v1 bits, lowest first.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(bit, _)| self.contains(*bit))
            .map(|(_, name)| name)
    }

    /// The outcome in words, for a person: e.g. `5` gives
    /// "current identity known, IP addresses match".
    pub fn describe(self) -> String {
        let mut words: Vec<String> = self.names().map(str::to_owned).collect();
        let undefined = self.undefined_bits();
        if !undefined.is_empty() {
            words.push(format!("undefined bits 0x{undefined:x}"));
        }
        if words.is_empty() {
            // Meaningful on its own: a new identity from a different IP.
            "no flags (identity unknown, IP addresses differ)".to_owned()
        } else {
            words.join(", ")
        }
    }
}

/// Writes the wire form (`1c0`).
impl fmt::Display for Tif {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.bits())
    }
}

impl fmt::Debug for Tif {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tif(0x{:x}: {})", self.bits(), self.describe())
    }
}

impl core::str::FromStr for Tif {
    type Err = TifError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_hex(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const GRC_TIF_VALUES: &str =
        include_str!("../../../test-vectors/vectors/published/grc/tif-values.txt");

    #[test]
    fn bit_table_matches_published_names() {
        let mut rows = 0;
        for line in GRC_TIF_VALUES.lines().filter(|l| l.starts_with("0x")) {
            let (bit, name) = line.split_once(" | ").unwrap();
            let bit = Tif::parse_hex(bit.trim_start_matches("0x")).unwrap();
            let ours = Tif::NAMES.iter().find(|(b, _)| *b == bit).unwrap().0;
            assert_eq!(ours, bit, "{name}");
            rows += 1;
        }
        assert_eq!(rows, 10);
    }

    #[test]
    fn published_example_values() {
        let expected = [
            ("5", Tif::CURRENT_ID_MATCH | Tif::IP_MATCHED),
            ("40", Tif::COMMAND_FAILED),
            ("240", Tif::IDENTITY_SUPERSEDED | Tif::COMMAND_FAILED),
            (
                "1c0",
                Tif::BAD_ID_ASSOCIATION | Tif::CLIENT_FAILURE | Tif::COMMAND_FAILED,
            ),
            ("60", Tif::TRANSIENT_ERROR | Tif::COMMAND_FAILED),
            ("c0", Tif::CLIENT_FAILURE | Tif::COMMAND_FAILED),
            ("50", Tif::FUNCTION_NOT_SUPPORTED | Tif::COMMAND_FAILED),
        ];
        let examples: Vec<&str> = GRC_TIF_VALUES
            .lines()
            .skip_while(|l| !l.starts_with("# example"))
            .skip(1)
            .filter_map(|l| l.split_once(" | ").map(|(v, _)| v))
            .collect();
        assert_eq!(examples.len(), expected.len());
        for (text, (want_text, want)) in examples.iter().zip(expected) {
            assert_eq!(*text, want_text);
            let tif = Tif::parse_hex(text).unwrap();
            assert_eq!(tif, want, "{text}");
            assert_eq!(tif.to_hex(), *text, "writes back lowercase");
            assert_eq!(tif.check_defined(), Ok(tif));
        }
        // SPEC 3.1: "d" is known + disabled + same IP.
        assert_eq!(
            Tif::parse_hex("d").unwrap(),
            Tif::SQRL_DISABLED | Tif::IP_MATCHED | Tif::CURRENT_ID_MATCH
        );
    }

    #[test]
    fn parses_any_length_and_case() {
        assert_eq!(Tif::parse_hex("1C0"), Tif::parse_hex("1c0"));
        assert_eq!(Tif::parse_hex("0005").unwrap().bits(), 5);
        assert_eq!(Tif::parse_hex(&"0".repeat(30)).unwrap(), Tif::NONE);
        assert_eq!(Tif::parse_hex("ffffffff").unwrap().bits(), u32::MAX);
        assert_eq!("3ff".parse::<Tif>().unwrap(), Tif::V1_DEFINED);
    }

    #[test]
    fn rejects_malformed_hex() {
        assert_eq!(Tif::parse_hex(""), Err(TifError::Empty));
        for bad in ["0x5", "+5", "-5", " 5", "5 ", "g", "５", "5\r"] {
            assert_eq!(Tif::parse_hex(bad), Err(TifError::NotHex), "{bad:?}");
        }
        assert_eq!(Tif::parse_hex("100000000"), Err(TifError::Overflow));
        assert_eq!(Tif::parse_hex(&"0".repeat(33)), Err(TifError::Overflow));
        assert_eq!(
            Tif::parse_hex(&"f".repeat(1 << 20)),
            Err(TifError::Overflow)
        );
    }

    #[test]
    fn undefined_bits_are_flagged() {
        // PITFALLS 6: 0x400 was "suppress SFN origin" in old drafts.
        let old = Tif::parse_hex("405").unwrap();
        assert_eq!(old.undefined_bits(), Tif::from_bits_retain(0x400));
        assert_eq!(old.check_defined(), Err(TifError::Undefined(old)));
        assert!(old.describe().contains("undefined bits 0x400"));
        // Undefined bits survive the set operations, so a reply is shown as sent.
        assert_eq!((old | Tif::SQRL_DISABLED).bits(), 0x40d);
        assert_eq!(old.without(Tif::IP_MATCHED).to_hex(), "401");
        assert_eq!(
            (old & Tif::from_bits_retain(0x400)).undefined_bits(),
            old.undefined_bits()
        );
    }

    #[test]
    fn every_v1_bit_has_words() {
        let named = Tif::NAMES
            .iter()
            .fold(Tif::NONE, |all, (bit, _)| all | *bit);
        assert_eq!(named, Tif::V1_DEFINED);
        assert_eq!(Tif::V1_DEFINED.bits(), 0x3ff);
    }

    #[test]
    fn operators_and_words() {
        let mut tif = Tif::CURRENT_ID_MATCH;
        tif |= Tif::IP_MATCHED;
        assert!(tif.contains(Tif::IP_MATCHED));
        assert!(!tif.contains(Tif::IP_MATCHED | Tif::SQRL_DISABLED));
        assert!(tif.intersects(Tif::IP_MATCHED | Tif::SQRL_DISABLED));
        assert_eq!(tif.without(Tif::IP_MATCHED), Tif::CURRENT_ID_MATCH);
        assert_eq!(tif & Tif::IP_MATCHED, Tif::IP_MATCHED);
        assert!(!tif.is_failure());
        assert_eq!(tif.describe(), "current identity known, IP addresses match");
        assert_eq!(tif.to_string(), "5");
        assert_eq!(
            format!("{:?}", Tif::parse_hex("c0").unwrap()),
            "Tif(0xc0: command failed, client failure)"
        );
        assert!(Tif::NONE.describe().starts_with("no flags"));
    }
}
