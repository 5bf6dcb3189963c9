//! Nuts (SPEC 1.1, 8.1): the single-use nonces that name one step of a
//! conversation, and the request target (`path?x=N&nut=...`) that carries them.

use rand_core::CryptoRngCore;

use crate::base64url;
use crate::msg::MAX_NUT_LEN;

/// Random bytes in a nut this crate mints: 128 bits, 22 base64url characters,
/// enough for a farm of servers without coordination (SPEC 1.1).
pub const NUT_BYTES: usize = 16;

/// Why a nut was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NutError {
    /// The nut is empty or longer than [`MAX_NUT_LEN`].
    #[error("nut is empty or too long")]
    Length,
    /// The nut holds a character outside the base64url alphabet.
    #[error("nut holds a character outside the base64url alphabet")]
    Character,
}

/// A nut: opaque, unpredictable, base64url-safe text, used once.
///
/// Nuts travel in the clear (in QR codes and URLs); what makes one worth
/// nothing to an observer is that it is consumed on first use (SPEC 3.2 step 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nut(String);

impl Nut {
    /// Mints a fresh nut of [`NUT_BYTES`] random bytes.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; NUT_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(base64url::encode(bytes))
    }

    /// Accepts a nut received from a peer or read back from storage.
    pub fn parse(text: &str) -> Result<Self, NutError> {
        if text.is_empty() || text.len() > MAX_NUT_LEN {
            return Err(NutError::Length);
        }
        if !text.bytes().all(crate::base64url::is_alphabet) {
            return Err(NutError::Character);
        }
        Ok(Self(text.to_owned()))
    }

    /// The nut as it appears in URLs and replies.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for Nut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for Nut {
    type Err = NutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The target of a POST to the client endpoint: its path, the `x=` path
/// extension if the conversation's URL had one, and the nut.
///
/// The next reply's `qry` is built from it, so it keeps `x=` (PITFALLS 12: some
/// clients were confused by a `qry` that dropped it) and swaps in the new nut.
/// Other query parameters of the first URL (`can=`, site-specific ones) are not
/// carried into `qry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    path: String,
    path_extension: Option<String>,
    nut: Option<Nut>,
}

impl RequestTarget {
    /// Reads a request target (`/cli.sqrl?nut=...`). Tolerant: a missing,
    /// repeated or malformed `nut=` gives `nut() == None` (the request then
    /// fails as an unknown nut), and a path that is not root-anchored
    /// printable ASCII is replaced by `/`.
    pub fn parse(path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let path = if path.starts_with('/')
            && !path.starts_with("//")
            && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        {
            path.to_owned()
        } else {
            "/".to_owned()
        };
        let mut nuts = query_values(query, "nut");
        let nut = match (nuts.next(), nuts.next()) {
            (Some(value), None) => Nut::parse(value).ok(),
            _ => None,
        };
        let mut extensions = query_values(query, "x");
        let path_extension = match (extensions.next(), extensions.next()) {
            (Some(value), None)
                if !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(value.to_owned())
            }
            _ => None,
        };
        Self {
            path,
            path_extension,
            nut,
        }
    }

    /// The nut that names the conversation step this request continues: the
    /// key under which the driver stored the [`super::Conversation`].
    pub fn nut(&self) -> Option<&Nut> {
        self.nut.as_ref()
    }

    /// The path (`/cli.sqrl`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `qry=` value that sends the next request to the same endpoint with
    /// `next_nut`: `path?[x=N&]nut=next`.
    pub fn qry(&self, next_nut: &Nut) -> String {
        match &self.path_extension {
            Some(x) => format!("{}?x={x}&nut={next_nut}", self.path),
            None => format!("{}?nut={next_nut}", self.path),
        }
    }
}

fn query_values<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query
        .split('&')
        .filter_map(move |pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            _ => None,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_nuts_are_22_url_safe_characters() {
        let nut = Nut::generate(&mut rand_core::OsRng);
        assert_eq!(nut.as_str().len(), 22);
        assert_eq!(Nut::parse(nut.as_str()), Ok(nut));
    }

    #[test]
    fn parse_rejects_bad_nuts() {
        assert_eq!(Nut::parse(""), Err(NutError::Length));
        assert_eq!(
            Nut::parse(&"a".repeat(MAX_NUT_LEN + 1)),
            Err(NutError::Length)
        );
        assert_eq!(Nut::parse("abc+def"), Err(NutError::Character));
        assert_eq!(Nut::parse("abc%20"), Err(NutError::Character));
        assert!(Nut::parse("1WM9lfF1ST-z").is_ok());
    }

    #[test]
    fn target_keeps_path_and_x_and_swaps_the_nut() {
        let target = RequestTarget::parse("/jimbo/cli.sqrl?x=6&nut=old&can=abc");
        assert_eq!(target.nut().map(Nut::as_str), Some("old"));
        let next = Nut::parse("new").unwrap();
        assert_eq!(target.qry(&next), "/jimbo/cli.sqrl?x=6&nut=new");

        let plain = RequestTarget::parse("/cli.sqrl?nut=abc");
        assert_eq!(plain.qry(&next), "/cli.sqrl?nut=new");
    }

    #[test]
    fn target_is_tolerant_of_hostile_input() {
        assert_eq!(RequestTarget::parse("/cli.sqrl").nut(), None);
        assert_eq!(RequestTarget::parse("/cli.sqrl?nut=a&nut=b").nut(), None);
        assert_eq!(RequestTarget::parse("/cli.sqrl?nut=a%2Bb").nut(), None);
        let odd = RequestTarget::parse("//evil.example/x?x=1e9&nut=n");
        assert_eq!(odd.path(), "/");
        assert_eq!(odd.qry(&Nut::parse("m").unwrap()), "/?nut=m");
    }
}
