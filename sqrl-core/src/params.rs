//! The `name=value` parameter lists carried (base64url-encoded) in the `client`
//! and `server` values.
//!
//! Writers are strict: every line, the last included, ends in CRLF (PITFALLS 3).
//! Readers are tolerant of what real peers send (a bare LF, a missing final CRLF)
//! but reject anything ambiguous: a line without `=`, an empty name, or a name
//! given twice.

use crate::base64url;

/// Why a parameter list could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The outer base64url encoding is broken.
    #[error(transparent)]
    Base64(#[from] base64url::Base64Error),
    /// The decoded bytes are not UTF-8 text.
    #[error("parameter list is not UTF-8")]
    NotUtf8,
    /// A non-empty line has no `=`.
    #[error("line {line} has no '='")]
    MissingEquals {
        /// 1-based line number.
        line: usize,
    },
    /// A line's name is empty or holds characters a name may not.
    #[error("line {line} has an invalid name")]
    InvalidName {
        /// 1-based line number.
        line: usize,
    },
    /// A value holds a control character.
    #[error("value of '{name}' holds a control character")]
    InvalidValue {
        /// The parameter's name.
        name: String,
    },
    /// The same name appears twice.
    #[error("parameter '{name}' appears more than once")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

/// An ordered list of unique `name=value` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamList {
    entries: Vec<(String, String)>,
}

impl ParamList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the decoded text of a parameter list.
    pub fn parse(text: &str) -> Result<Self, ParamError> {
        let mut list = Self::new();
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            if line.is_empty() {
                continue;
            }
            let number = index + 1;
            let (name, value) = line
                .split_once('=')
                .ok_or(ParamError::MissingEquals { line: number })?;
            if !is_valid_name(name) {
                return Err(ParamError::InvalidName { line: number });
            }
            list.push(name, value)?;
        }
        Ok(list)
    }

    /// Decodes base64url, then parses.
    pub fn from_base64url(encoded: &str) -> Result<Self, ParamError> {
        let bytes = base64url::decode(encoded)?;
        let text = String::from_utf8(bytes).map_err(|_| ParamError::NotUtf8)?;
        Self::parse(&text)
    }

    /// Appends a parameter, refusing names that are already present and text that
    /// would break the line format.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        if !is_valid_name(name) {
            return Err(ParamError::InvalidName {
                line: self.entries.len() + 1,
            });
        }
        if value.chars().any(char::is_control) {
            return Err(ParamError::InvalidValue {
                name: name.to_owned(),
            });
        }
        if self.get(name).is_some() {
            return Err(ParamError::Duplicate {
                name: name.to_owned(),
            });
        }
        self.entries.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Iterates over `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical text: `name=value\r\n` for every parameter, in order.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.entries {
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            out.push_str("\r\n");
        }
        out
    }

    /// The canonical text, base64url-encoded: what travels on the wire.
    pub fn to_base64url(&self) -> String {
        base64url::encode(self.to_text())
    }
}

/// Names are short ASCII identifiers; anything else is a malformed line.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_crlf_after_every_line() {
        let mut list = ParamList::new();
        list.push("ver", "1").unwrap();
        list.push("cmd", "query").unwrap();
        assert_eq!(list.to_text(), "ver=1\r\ncmd=query\r\n");
    }

    #[test]
    fn reads_missing_final_crlf_and_bare_lf() {
        // wordpress-sqrl-login #18 omitted the final CRLF.
        let list = ParamList::parse("ver=1\r\nsin=0").unwrap();
        assert_eq!(list.get("sin"), Some("0"));
        let list = ParamList::parse("ver=1\nnut=abc\n").unwrap();
        assert_eq!(list.get("nut"), Some("abc"));
    }

    #[test]
    fn value_may_hold_equals() {
        let list = ParamList::parse("qry=/cli.sqrl?nut=abc\r\n").unwrap();
        assert_eq!(list.get("qry"), Some("/cli.sqrl?nut=abc"));
    }

    #[test]
    fn rejects_ambiguous_lists() {
        assert_eq!(
            ParamList::parse("ver=1\r\nver=2\r\n"),
            Err(ParamError::Duplicate { name: "ver".into() })
        );
        assert_eq!(
            ParamList::parse("ver=1\r\nnonsense\r\n"),
            Err(ParamError::MissingEquals { line: 2 })
        );
        assert_eq!(
            ParamList::parse("=1\r\n"),
            Err(ParamError::InvalidName { line: 1 })
        );
        assert!(ParamList::parse("a=b\rc\r\n").is_err());
    }

    #[test]
    fn round_trips_through_base64url() {
        let mut list = ParamList::new();
        list.push("ver", "1").unwrap();
        list.push("tif", "5").unwrap();
        let encoded = list.to_base64url();
        assert!(!encoded.contains('='));
        assert_eq!(ParamList::from_base64url(&encoded).unwrap(), list);
    }
}
