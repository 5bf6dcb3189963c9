//! Protocol version lists (`ver=`, SPEC 2.2): `1`, `1-3,5`.

use core::fmt;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Most items accepted in one `ver=` list: real peers send one.
const MAX_ITEMS: usize = 16;

/// Why a `ver=` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The list or one of its items is empty.
    #[error("version list is empty or has an empty item")]
    Empty,
    /// An item is not a plain decimal number or `a-b` range (no signs, spaces or
    /// leading zeros).
    #[error("version list is malformed")]
    Malformed,
    /// Version 0 does not exist, or a number exceeds 65535.
    #[error("version number out of range")]
    OutOfRange,
    /// Items are not strictly ascending and disjoint (`3-1`, `1,1`, `2,1`).
    #[error("version list is not ascending")]
    NotAscending,
    /// More items than any peer sends.
    #[error("version list has too many items")]
    TooMany,
    /// The peers share no version.
    #[error("no protocol version in common")]
    NoCommonVersion,
}

/// A set of supported protocol versions, as listed in `ver=`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VersionSet {
    /// Inclusive ranges, ascending and disjoint.
    ranges: Vec<(u16, u16)>,
}

impl VersionSet {
    /// The set `{PROTOCOL_VERSION}`: what this crate sends (`ver=1`).
    pub fn current() -> Self {
        Self::single(PROTOCOL_VERSION)
    }

    /// A set of one version (0 is not a version and is raised to 1).
    pub fn single(version: u16) -> Self {
        let version = version.max(1);
        Self {
            ranges: vec![(version, version)],
        }
    }

    /// Parses a `ver=` value strictly: comma-separated decimal numbers and `a-b`
    /// ranges, ascending and disjoint, no spaces, signs or leading zeros.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for item in text.split(',') {
            if ranges.len() == MAX_ITEMS {
                return Err(VersionError::TooMany);
            }
            let (low, high) = match item.split_once('-') {
                Some((low, high)) => (parse_number(low)?, parse_number(high)?),
                None => {
                    let number = parse_number(item)?;
                    (number, number)
                }
            };
            if low > high {
                return Err(VersionError::NotAscending);
            }
            if let Some(&(_, previous_high)) = ranges.last()
                && low <= previous_high
            {
                return Err(VersionError::NotAscending);
            }
            ranges.push((low, high));
        }
        Ok(Self { ranges })
    }

    /// Whether `version` is in the set.
    pub fn contains(&self, version: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(low, high)| (low..=high).contains(&version))
    }

    /// The highest version in the set.
    pub fn highest(&self) -> u16 {
        self.ranges
            .last()
            .map_or(PROTOCOL_VERSION, |&(_, high)| high)
    }

    /// The highest version both sets hold: the version the two peers speak.
    pub fn highest_common(&self, other: &VersionSet) -> Result<u16, VersionError> {
        let mut best = None;
        for &(a_low, a_high) in &self.ranges {
            for &(b_low, b_high) in &other.ranges {
                let low = a_low.max(b_low);
                let high = a_high.min(b_high);
                if low <= high {
                    best = best.max(Some(high));
                }
            }
        }
        best.ok_or(VersionError::NoCommonVersion)
    }
}

fn parse_number(text: &str) -> Result<u16, VersionError> {
    if text.is_empty() {
        return Err(VersionError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return Err(VersionError::Malformed);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(VersionError::OutOfRange),
        Ok(number) => Ok(number),
    }
}

/// Writes the canonical `ver=` value (`1`, `1-3,5`).
impl fmt::Display for VersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, &(low, high)) in self.ranges.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionSet({self})")
    }
}

impl core::str::FromStr for VersionSet {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_canonical_lists() {
        for text in ["1", "1-3,5", "2,4-9,12", "65535"] {
            assert_eq!(VersionSet::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(VersionSet::current().to_string(), "1");
        let set = VersionSet::parse("1-3,5").unwrap();
        assert!(set.contains(2) && set.contains(5) && !set.contains(4));
        assert_eq!(set.highest(), 5);
    }

    #[test]
    fn rejects_malformed_lists() {
        use VersionError::*;
        let cases = [
            ("", Empty),
            ("1,", Empty),
            ("1,,2", Empty),
            ("-3", Empty),
            ("01", Malformed),
            ("+1", Malformed),
            (" 1", Malformed),
            ("1 ", Malformed),
            ("a", Malformed),
            ("1-2-3", Malformed),
            ("0", OutOfRange),
            ("65536", OutOfRange),
            ("3-1", NotAscending),
            ("2,1", NotAscending),
            ("1-3,3", NotAscending),
            ("1,1", NotAscending),
        ];
        for (text, error) in cases {
            assert_eq!(VersionSet::parse(text), Err(error), "{text:?}");
        }
        let many: Vec<String> = (1..=17).map(|n| (n * 2).to_string()).collect();
        assert_eq!(VersionSet::parse(&many.join(",")), Err(TooMany));
    }

    #[test]
    fn negotiates_highest_common_version() {
        let ours = VersionSet::parse("1-3,5").unwrap();
        let theirs = VersionSet::parse("2-4,9").unwrap();
        assert_eq!(ours.highest_common(&theirs), Ok(3));
        assert_eq!(theirs.highest_common(&ours), Ok(3));
        assert_eq!(
            VersionSet::parse("5-7").unwrap().highest_common(&ours),
            Ok(5)
        );
        assert_eq!(
            VersionSet::current().highest_common(&VersionSet::parse("2").unwrap()),
            Err(VersionError::NoCommonVersion)
        );
    }
}
