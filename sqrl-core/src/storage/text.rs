//! The textual identity (SPEC 5.5): the rescue block, optionally followed by the
//! previous-keys block, in base56 with per-line check characters, for printing on
//! paper and typing back in.

use super::container::{BINARY_HEADER, S4, S4Form, TEXT_HEADER, split_blocks};
use super::{Block, FormatError, StorageError};
use crate::base56;

impl S4 {
    /// The textual identity: base56 lines of the rescue block, followed by the
    /// previous-keys block when `include_previous` is set and the identity has one.
    ///
    /// It holds nothing usable without the rescue code; importing it gives a
    /// rescue-only identity that needs the code (and a new password) to be used.
    pub fn to_textual_identity(&self, include_previous: bool) -> Result<String, StorageError> {
        let rescue = self
            .rescue_block()
            .ok_or(StorageError::MissingBlock("rescue block"))?;
        let mut bytes = rescue.to_bytes();
        if include_previous && let Some(previous) = self.previous_keys_block() {
            bytes.extend(previous.to_bytes());
        }
        Ok(base56::encode(&bytes))
    }

    /// Reads a textual identity. Whitespace is ignored; a mistyped line is reported
    /// by its 1-based number ([`base56::Base56Error::BadCheckCharacter`]).
    pub fn from_textual_identity(text: &str) -> Result<Self, FormatError> {
        let bytes = base56::decode(text)?;
        let raw = split_blocks(&bytes)?;
        Self::from_raw_blocks(S4Form::Textual, raw)
    }

    /// Reads an identity in any form a user may hand over: every S4 form accepted by
    /// [`S4::parse`], or the base56 textual identity.
    ///
    /// Input made only of base56 characters and whitespace is read as a textual
    /// identity first (its errors name the bad line); if that fails and the input
    /// starts like a bare base64url rescue block (`SQAC…`), that reading is tried too.
    pub fn import(input: &[u8]) -> Result<Self, FormatError> {
        let trimmed = input.trim_ascii_start();
        if trimmed.starts_with(BINARY_HEADER) || trimmed.starts_with(TEXT_HEADER) {
            return Self::parse(input);
        }
        let text = core::str::from_utf8(input).ok();
        let looks_textual = text.is_some_and(|t| {
            !t.trim().is_empty()
                && t.chars().all(|c| {
                    c.is_whitespace() || (c.is_ascii() && base56::ALPHABET.contains(&(c as u8)))
                })
        });
        match text {
            Some(text) if looks_textual => match Self::from_textual_identity(text) {
                Ok(s4) => Ok(s4),
                Err(textual_error) => Self::parse(input).map_err(|_| textual_error),
            },
            _ => Self::parse(input),
        }
    }

    /// Keeps only the rescue block (and, if asked, the previous-keys block): what a
    /// `.sqrc` file or a rescue-only QR export holds.
    pub fn rescue_only(&self, include_previous: bool) -> Result<Self, StorageError> {
        let blocks: Vec<Block> = self
            .blocks
            .iter()
            .filter(|b| match b {
                Block::Rescue(_) => true,
                Block::PreviousKeys(_) => include_previous,
                _ => false,
            })
            .cloned()
            .collect();
        if !blocks.iter().any(|b| matches!(b, Block::Rescue(_))) {
            return Err(StorageError::MissingBlock("rescue block"));
        }
        Ok(Self {
            blocks,
            form: S4Form::Binary,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::base56::Base56Error;
    use crate::base64url;
    use crate::storage::container::tests::round_trip_rows;

    const LIBSQRL_TEXT: &str = include_str!(
        "../../../test-vectors/vectors/published/libsqrl/base56check-identity-vector.txt"
    );

    #[test]
    fn textual_identity_of_the_rescue_block_round_trips() {
        let rows = round_trip_rows();
        let rekeyed = S4::parse(&rows[1].1).unwrap();
        let rescue_only = rekeyed.to_textual_identity(false).unwrap();
        let with_previous = rekeyed.to_textual_identity(true).unwrap();
        assert!(with_previous.len() > rescue_only.len());

        let back = S4::from_textual_identity(&rescue_only).unwrap();
        assert_eq!(back.form(), S4Form::Textual);
        assert_eq!(back.blocks(), &rekeyed.blocks()[1..2]);
        assert_eq!(back.to_original_form(), rescue_only.as_bytes());

        let back = S4::import(with_previous.as_bytes()).unwrap();
        assert_eq!(back.blocks(), &rekeyed.blocks()[1..3]);
        assert_eq!(back.to_original_form(), with_previous.as_bytes());
    }

    #[test]
    fn libsqrl_textual_identity_is_a_rescue_block() {
        let text = LIBSQRL_TEXT
            .lines()
            .find_map(|l| l.strip_prefix("text = "))
            .unwrap();
        let s4 = S4::import(text.as_bytes()).unwrap();
        assert_eq!(s4.form(), S4Form::Textual);
        assert!(s4.rescue_block().is_some());
        assert!(s4.password_block().is_none());
    }

    #[test]
    fn import_reports_the_bad_line() {
        let rows = round_trip_rows();
        let text = S4::parse(&rows[0].1)
            .unwrap()
            .to_textual_identity(false)
            .unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let second = lines[1].clone();
        let swapped: String = {
            let mut chars: Vec<char> = second.chars().collect();
            let (a, b) = (chars[0], chars[1]);
            assert_ne!(a, b, "pick a line whose first two characters differ");
            chars.swap(0, 1);
            chars.into_iter().collect()
        };
        lines[1] = swapped;
        assert_eq!(
            S4::import(lines.join("\n").as_bytes()),
            Err(FormatError::Base56(Base56Error::BadCheckCharacter {
                line: 2
            }))
        );
    }

    #[test]
    fn import_accepts_every_s4_form() {
        for (label, bytes) in round_trip_rows() {
            let parsed = S4::parse(&bytes).unwrap();
            assert_eq!(S4::import(&bytes).unwrap(), parsed, "{label}");
        }
        // A headerless base64url rescue block (QR export).
        let rows = round_trip_rows();
        let sqrc = S4::parse(&rows[2].1).unwrap();
        let qr = base64url::encode(sqrc.to_headerless_bytes());
        let imported = S4::import(qr.as_bytes()).unwrap();
        assert_eq!(imported.form(), S4Form::HeaderlessText);
        assert_eq!(imported.blocks(), sqrc.blocks());
    }

    #[test]
    fn every_prefix_of_a_textual_identity_fails_cleanly() {
        let rows = round_trip_rows();
        let full = S4::parse(&rows[1].1).unwrap();
        let text = full.to_textual_identity(true).unwrap();
        for len in 0..text.len() {
            let prefix = &text[..len];
            let result = S4::from_textual_identity(prefix);
            assert!(result.is_err(), "prefix {len}");
            let _ = S4::import(prefix.as_bytes());
        }
        assert!(S4::from_textual_identity(&text).is_ok());
    }

    #[test]
    fn import_of_huge_or_non_utf8_input_is_an_error() {
        let huge = "2".repeat(1 << 20);
        assert_eq!(
            S4::import(huge.as_bytes()),
            Err(FormatError::Base56(Base56Error::TooLong))
        );
        assert_eq!(
            S4::import(&[0x80, 0xFF, 0x00, 0x41]),
            Err(FormatError::UnrecognisedHeader)
        );
        assert_eq!(S4::import(b""), Err(FormatError::UnrecognisedHeader));
        assert_eq!(S4::import(b"  \n"), Err(FormatError::UnrecognisedHeader));
    }

    #[test]
    fn a_rescue_only_import_becomes_binary_once_it_has_a_password() {
        use crate::secret::Password;
        use crate::storage::{CreateOptions, KdfCost, RescueCode};
        use rand_core::OsRng;

        let options = CreateOptions {
            password_cost: KdfCost::Iterations(1),
            rescue_cost: KdfCost::Iterations(1),
            ..CreateOptions::default()
        };
        let (full, code): (S4, RescueCode) =
            S4::create(&mut OsRng, &Password::from("pw"), &options, &mut |_, _| {}).unwrap();
        let text = full.to_textual_identity(false).unwrap();
        let mut restored = S4::import(text.as_bytes()).unwrap();
        restored
            .reset_password(
                &mut OsRng,
                &code,
                &Password::from("pw2"),
                KdfCost::Iterations(1),
                &mut |_, _| {},
            )
            .unwrap();
        assert_eq!(restored.form(), S4Form::Binary);
        let written = restored.to_original_form();
        assert!(written.starts_with(b"sqrldata"));
        assert_eq!(S4::parse(&written).unwrap(), restored);
    }

    #[test]
    fn rescue_only_drops_the_password_block() {
        let rows = round_trip_rows();
        let full = S4::parse(&rows[1].1).unwrap();
        let only = full.rescue_only(false).unwrap();
        assert_eq!(only.blocks(), &full.blocks()[1..2]);
        let with_previous = full.rescue_only(true).unwrap();
        assert_eq!(with_previous.blocks(), &full.blocks()[1..3]);
        // The .sqrc row is exactly this form.
        let sqrc = S4::parse(&rows[2].1).unwrap();
        assert_eq!(sqrc.rescue_only(false).unwrap().to_bytes(), rows[2].1);
    }
}
