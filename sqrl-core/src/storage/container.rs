//! The S4 envelope and block framing (SPEC 5): header, then `u16 LE length`,
//! `u16 LE type`, payload, repeated.

use super::reader::Reader;
use super::{
    BLOCK_TYPE_PASSWORD, BLOCK_TYPE_PREVIOUS, BLOCK_TYPE_RESCUE, FormatError, PasswordBlock,
    PreviousKeysBlock, RescueBlock,
};
use crate::base64url;

/// Header of the binary form.
pub(crate) const BINARY_HEADER: &[u8; 8] = b"sqrldata";
/// Header of the base64url text form.
pub(crate) const TEXT_HEADER: &[u8; 8] = b"SQRLDATA";
/// The first four bytes of a bare rescue block: length 73, type 2.
const BARE_RESCUE_PREFIX: [u8; 4] = [0x49, 0x00, 0x02, 0x00];
/// base64url of those bytes: how a headerless rescue-block QR export starts (PITFALLS 21).
const BARE_RESCUE_TEXT_PREFIX: &[u8; 4] = b"SQAC";
/// Length and type fields in front of every block.
const BLOCK_HEADER_LEN: usize = 4;

/// The form an identity was read in; [`S4::to_original_form`] writes it back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum S4Form {
    /// `sqrldata` followed by binary blocks.
    Binary,
    /// `SQRLDATA` followed by base64url of the blocks.
    Text,
    /// Blocks without a header, starting with a rescue block (a raw `.sqrc` payload).
    HeaderlessBinary,
    /// base64url of headerless blocks (`SQAC…`), as QR exports carry them.
    HeaderlessText,
    /// The base56 textual identity with check characters (SPEC 5.5).
    Textual,
}

/// One framed block, uninterpreted: its type and all its bytes, header included.
///
/// Blocks of types this version does not know (SQRLDotNetClient's type 0, test
/// type 55, future types) are kept as `RawBlock`s and written back unchanged, in
/// their original position (PITFALLS 19, 23).
#[derive(Clone, PartialEq, Eq)]
pub struct RawBlock {
    block_type: u16,
    bytes: Vec<u8>,
}

impl core::fmt::Debug for RawBlock {
    // Unknown blocks may hold another client's private data (SQRLDotNetClient's
    // type 0 carries random bytes): show only the framing.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawBlock")
            .field("block_type", &self.block_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl RawBlock {
    /// The block type field.
    pub fn block_type(&self) -> u16 {
        self.block_type
    }

    /// The whole block, from its length field on.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads the envelope (header and encoding) and splits the blocks, without
    /// interpreting any block. Use [`S4::parse`] for a checked identity; this layer
    /// exists for tools that inspect blocks an `S4` refuses (for example a pre-v1
    /// identity's password block).
    pub fn read_all(input: &[u8]) -> Result<(S4Form, Vec<RawBlock>), FormatError> {
        let (form, data) = unwrap_envelope(input)?;
        let blocks = split_blocks(&data)?;
        Ok((form, blocks))
    }
}

/// A typed block of an [`S4`] identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Block {
    /// Type 1: password-protected IMK and ILK.
    Password(PasswordBlock),
    /// Type 2: rescue-code-protected IUK.
    Rescue(RescueBlock),
    /// Type 3: previous IUKs.
    PreviousKeys(PreviousKeysBlock),
    /// Any other type, kept verbatim.
    Unknown(RawBlock),
}

impl Block {
    /// The block's type field.
    pub fn block_type(&self) -> u16 {
        match self {
            Self::Password(_) => BLOCK_TYPE_PASSWORD,
            Self::Rescue(_) => BLOCK_TYPE_RESCUE,
            Self::PreviousKeys(_) => BLOCK_TYPE_PREVIOUS,
            Self::Unknown(raw) => raw.block_type,
        }
    }

    /// The block's bytes as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Password(block) => block.to_bytes(),
            Self::Rescue(block) => block.to_bytes(),
            Self::PreviousKeys(block) => block.to_bytes(),
            Self::Unknown(raw) => raw.bytes.clone(),
        }
    }

    fn from_raw(raw: RawBlock) -> Result<Self, FormatError> {
        Ok(match raw.block_type {
            BLOCK_TYPE_PASSWORD => Self::Password(PasswordBlock::parse(&raw.bytes)?),
            BLOCK_TYPE_RESCUE => Self::Rescue(RescueBlock::parse(&raw.bytes)?),
            BLOCK_TYPE_PREVIOUS => Self::PreviousKeys(PreviousKeysBlock::parse(&raw.bytes)?),
            _ => Self::Unknown(raw),
        })
    }
}

/// An S4 identity: its blocks in stored order, and the form it was read in.
///
/// A value of this type is structurally valid: at most one block each of types 1, 2
/// and 3, each with a v1 layout, and at least a password or a rescue block. Nothing
/// is decrypted until an operation needs it. Writing reproduces the bytes read, for
/// every form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S4 {
    pub(super) blocks: Vec<Block>,
    pub(super) form: S4Form,
}

impl S4 {
    /// Parses an identity in any S4 form: `sqrldata` + binary, `SQRLDATA` +
    /// base64url (CR, LF, TAB and SPACE ignored, padding optional), or a bare
    /// rescue block (raw bytes, or base64url starting `SQAC`).
    ///
    /// For the base56 textual form see [`S4::from_textual_identity`]; [`S4::import`]
    /// accepts both.
    pub fn parse(input: &[u8]) -> Result<Self, FormatError> {
        let (form, raw) = RawBlock::read_all(input)?;
        Self::from_raw_blocks(form, raw)
    }

    pub(super) fn from_raw_blocks(form: S4Form, raw: Vec<RawBlock>) -> Result<Self, FormatError> {
        let headerless = matches!(
            form,
            S4Form::HeaderlessBinary | S4Form::HeaderlessText | S4Form::Textual
        );
        if headerless && raw.first().map(RawBlock::block_type) != Some(BLOCK_TYPE_RESCUE) {
            return Err(FormatError::NotARescueBlock);
        }
        let mut blocks: Vec<Block> = Vec::with_capacity(raw.len());
        for block in raw {
            let block_type = block.block_type;
            let known = matches!(
                block_type,
                BLOCK_TYPE_PASSWORD | BLOCK_TYPE_RESCUE | BLOCK_TYPE_PREVIOUS
            );
            // PITFALLS 19: two password (or rescue, or previous) blocks leave no
            // safe choice of which one to use.
            if known && blocks.iter().any(|b| b.block_type() == block_type) {
                return Err(FormatError::DuplicateBlock { block_type });
            }
            blocks.push(Block::from_raw(block)?);
        }
        let s4 = Self { blocks, form };
        if s4.password_block().is_none() && s4.rescue_block().is_none() {
            return Err(FormatError::NoIdentityBlocks);
        }
        Ok(s4)
    }

    /// The form this identity was read in ([`S4Form::Binary`] for a new one).
    pub fn form(&self) -> S4Form {
        self.form
    }

    /// All blocks in stored order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The password block, if any (a rescue-only identity has none).
    pub fn password_block(&self) -> Option<&PasswordBlock> {
        self.blocks.iter().find_map(|b| match b {
            Block::Password(block) => Some(block),
            _ => None,
        })
    }

    /// The rescue block, if any.
    pub fn rescue_block(&self) -> Option<&RescueBlock> {
        self.blocks.iter().find_map(|b| match b {
            Block::Rescue(block) => Some(block),
            _ => None,
        })
    }

    /// The previous-keys block, if the identity was ever rekeyed.
    pub fn previous_keys_block(&self) -> Option<&PreviousKeysBlock> {
        self.blocks.iter().find_map(|b| match b {
            Block::PreviousKeys(block) => Some(block),
            _ => None,
        })
    }

    /// The blocks concatenated, without any header.
    pub fn to_headerless_bytes(&self) -> Vec<u8> {
        self.blocks.iter().flat_map(Block::to_bytes).collect()
    }

    /// The binary form: `sqrldata` followed by the blocks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = BINARY_HEADER.to_vec();
        out.extend(self.to_headerless_bytes());
        out
    }

    /// The text form: `SQRLDATA` followed by unpadded base64url of the blocks, on one
    /// line.
    pub fn to_base64url_text(&self) -> String {
        let mut out = String::from("SQRLDATA");
        out.push_str(&base64url::encode(self.to_headerless_bytes()));
        out
    }

    /// Writes the identity in the form it was read in (canonically: text forms
    /// without line breaks or padding, the textual form with every block it held).
    pub fn to_original_form(&self) -> Vec<u8> {
        match self.form {
            S4Form::Binary => self.to_bytes(),
            S4Form::Text => self.to_base64url_text().into_bytes(),
            S4Form::HeaderlessBinary => self.to_headerless_bytes(),
            S4Form::HeaderlessText => base64url::encode(self.to_headerless_bytes()).into_bytes(),
            S4Form::Textual => crate::base56::encode(&self.to_headerless_bytes()).into_bytes(),
        }
    }

    /// Replaces the block of the same type, or inserts it in GRC's order
    /// (1, 2, 3; unknown blocks keep their places).
    pub(super) fn put_block(&mut self, block: Block) {
        let block_type = block.block_type();
        // Headerless and textual forms must start with the rescue block; once a
        // password block joins, the identity is written as a full binary S4.
        if block_type == BLOCK_TYPE_PASSWORD && !matches!(self.form, S4Form::Binary | S4Form::Text)
        {
            self.form = S4Form::Binary;
        }
        if let Some(slot) = self
            .blocks
            .iter_mut()
            .find(|b| b.block_type() == block_type)
        {
            *slot = block;
            return;
        }
        let position = self
            .blocks
            .iter()
            .rposition(|b| {
                matches!(b.block_type(), BLOCK_TYPE_PASSWORD..=BLOCK_TYPE_PREVIOUS)
                    && b.block_type() < block_type
            })
            .map_or(0, |i| i + 1);
        self.blocks.insert(position, block);
    }
}

/// Strips the header and decodes the text forms, returning the raw block data.
fn unwrap_envelope(input: &[u8]) -> Result<(S4Form, Vec<u8>), FormatError> {
    if let Some(rest) = input.strip_prefix(BINARY_HEADER.as_slice()) {
        return Ok((S4Form::Binary, rest.to_vec()));
    }
    if input.starts_with(&BARE_RESCUE_PREFIX) {
        return Ok((S4Form::HeaderlessBinary, input.to_vec()));
    }
    // Text may arrive with leading blank space when pasted.
    let text = input.trim_ascii_start();
    if let Some(rest) = text.strip_prefix(TEXT_HEADER.as_slice()) {
        return Ok((S4Form::Text, decode_text(rest)?));
    }
    if text.starts_with(BARE_RESCUE_TEXT_PREFIX) {
        return Ok((S4Form::HeaderlessText, decode_text(text)?));
    }
    Err(FormatError::UnrecognisedHeader)
}

/// base64url, ignoring CR, LF, TAB and SPACE (SPEC 5), padding optional.
fn decode_text(text: &[u8]) -> Result<Vec<u8>, FormatError> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t' | b' '))
        .collect();
    Ok(base64url::decode(compact)?)
}

/// Splits block data into framed blocks, checking every length.
pub(super) fn split_blocks(data: &[u8]) -> Result<Vec<RawBlock>, FormatError> {
    let mut r = Reader::new(data);
    let mut blocks = Vec::new();
    while !r.is_empty() {
        let offset = r.offset();
        let available = r.remaining().len();
        if available < BLOCK_HEADER_LEN {
            return Err(FormatError::TruncatedBlockHeader { offset });
        }
        let length = r
            .peek_u16_le("length")
            .map_err(|_| FormatError::TruncatedBlockHeader { offset })?;
        if usize::from(length) < BLOCK_HEADER_LEN {
            return Err(FormatError::BlockTooShort { offset, length });
        }
        let bytes =
            r.take("block", usize::from(length))
                .map_err(|_| FormatError::TruncatedBlock {
                    offset,
                    length,
                    available,
                })?;
        let block_type = Reader::new(bytes)
            .take_array::<4>("header")
            .map(|[_, _, low, high]| u16::from_le_bytes([low, high]))
            .map_err(|_| FormatError::TruncatedBlockHeader { offset })?;
        blocks.push(RawBlock {
            block_type,
            bytes: bytes.to_vec(),
        });
    }
    Ok(blocks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use super::*;

    const ROUND_TRIPS: &str = include_str!(
        "../../../test-vectors/vectors/published/sqrldotnetclient/identity-roundtrip-vectors.txt"
    );
    const TEST1: &[u8] =
        include_bytes!("../../../test-vectors/vectors/published/libsqrl/test1.sqrl");
    const TEST2: &[u8] =
        include_bytes!("../../../test-vectors/vectors/published/libsqrl/test2.sqrl");

    /// `(label, bytes)` for every row of the SQRLDotNetClient round-trip file.
    pub(crate) fn round_trip_rows() -> Vec<(String, Vec<u8>)> {
        test_vectors::text::labelled_hex_rows(ROUND_TRIPS).unwrap()
    }

    #[test]
    fn every_sqrldotnetclient_row_round_trips_byte_for_byte() {
        let rows = round_trip_rows();
        assert_eq!(rows.len(), 5);
        for (label, bytes) in rows {
            let s4 = S4::parse(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(s4.to_original_form(), bytes, "{label}");
            // And through the other form and back.
            let flipped = match s4.form() {
                S4Form::Binary => s4.to_base64url_text().into_bytes(),
                _ => s4.to_bytes(),
            };
            assert_eq!(
                S4::parse(&flipped).unwrap().blocks(),
                s4.blocks(),
                "{label}"
            );
        }
    }

    #[test]
    fn rows_have_the_expected_structure() {
        let rows = round_trip_rows();
        let types = |i: usize| -> Vec<u16> {
            S4::parse(&rows[i].1)
                .unwrap()
                .blocks()
                .iter()
                .map(Block::block_type)
                .collect()
        };
        assert_eq!(types(0), [1, 2]);
        assert_eq!(types(1), [1, 2, 3]);
        assert_eq!(types(2), [2]);
        assert_eq!(types(3), [1, 2, 55]);
        assert_eq!(S4::parse(&rows[4].1).unwrap().form(), S4Form::Text);
        let rekeyed = S4::parse(&rows[1].1).unwrap();
        let previous = rekeyed.previous_keys_block().unwrap();
        assert_eq!((previous.edition(), previous.key_count()), (4, 4));
    }

    #[test]
    fn text_form_tolerates_whitespace_and_padding() {
        let rows = round_trip_rows();
        let binary = S4::parse(&rows[0].1).unwrap();
        let text = binary.to_base64url_text();
        let wrapped: String = text
            .as_bytes()
            .chunks(60)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n\t ");
        let mut padded = text.clone();
        while !(padded.len() - 8).is_multiple_of(4) {
            padded.push('=');
        }
        for form in [text.clone(), format!("  {wrapped}\n"), padded] {
            let parsed = S4::parse(form.as_bytes()).unwrap();
            assert_eq!(parsed.blocks(), binary.blocks(), "{form:?}");
        }
        // libsqrl's test2 file is SQRLDATA text broken into LF-separated lines.
        let (form, blocks) = RawBlock::read_all(TEST2).unwrap();
        assert_eq!(form, S4Form::Text);
        assert_eq!(
            blocks.iter().map(RawBlock::block_type).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn bare_rescue_blocks_are_rescue_only_identities() {
        let rows = round_trip_rows();
        let sqrc = S4::parse(&rows[2].1).unwrap();
        let bare = sqrc.to_headerless_bytes();
        assert_eq!(bare.len(), 73);
        let text = base64url::encode(&bare);
        assert!(text.starts_with("SQAC"));
        for (input, form) in [
            (bare.clone(), S4Form::HeaderlessBinary),
            (text.clone().into_bytes(), S4Form::HeaderlessText),
        ] {
            let parsed = S4::parse(&input).unwrap();
            assert_eq!(parsed.form(), form);
            assert_eq!(parsed.blocks(), sqrc.blocks());
            assert!(parsed.password_block().is_none());
            assert_eq!(parsed.to_original_form(), input);
        }
    }

    #[test]
    fn unknown_blocks_keep_their_place() {
        let rows = round_trip_rows();
        let bytes = &rows[0].1;
        // Insert a type-0 block (as SQRLDotNetClient writes) between blocks 1 and 2.
        let mut with_zero = bytes[..8 + 125].to_vec();
        let mut zero = vec![68, 0, 0, 0];
        zero.extend((0u8..64).collect::<Vec<_>>());
        with_zero.extend_from_slice(&zero);
        with_zero.extend_from_slice(&bytes[8 + 125..]);
        let s4 = S4::parse(&with_zero).unwrap();
        assert_eq!(
            s4.blocks()
                .iter()
                .map(Block::block_type)
                .collect::<Vec<_>>(),
            [1, 0, 2]
        );
        assert_eq!(s4.to_bytes(), with_zero);
    }

    #[test]
    fn framing_errors_are_typed() {
        let rows = round_trip_rows();
        let bytes = &rows[0].1;
        let mut duplicated = bytes.clone();
        duplicated.extend_from_slice(&bytes[8..8 + 125]);
        assert_eq!(
            S4::parse(&duplicated),
            Err(FormatError::DuplicateBlock { block_type: 1 })
        );
        let mut zero_length = bytes.clone();
        zero_length.extend_from_slice(&[0, 0, 7, 0]);
        assert_eq!(
            S4::parse(&zero_length),
            Err(FormatError::BlockTooShort {
                offset: 198,
                length: 0
            })
        );
        let mut three = bytes.clone();
        three.extend_from_slice(&[3, 0, 7, 0]);
        assert!(matches!(
            S4::parse(&three),
            Err(FormatError::BlockTooShort { length: 3, .. })
        ));
        let mut overlong = bytes.clone();
        overlong.extend_from_slice(&[200, 0, 7, 0, 1]);
        assert_eq!(
            S4::parse(&overlong),
            Err(FormatError::TruncatedBlock {
                offset: 198,
                length: 200,
                available: 5
            })
        );
        let mut dangling = bytes.clone();
        dangling.extend_from_slice(&[9, 0]);
        assert_eq!(
            S4::parse(&dangling),
            Err(FormatError::TruncatedBlockHeader { offset: 198 })
        );
        assert_eq!(S4::parse(b"sqrldata"), Err(FormatError::NoIdentityBlocks));
        assert_eq!(
            S4::parse(b"sqrldata\x08\x00\x37\x00abcd"),
            Err(FormatError::NoIdentityBlocks)
        );
        assert_eq!(S4::parse(b"SQRLdata"), Err(FormatError::UnrecognisedHeader));
        assert_eq!(S4::parse(b""), Err(FormatError::UnrecognisedHeader));
        assert!(matches!(
            S4::parse(b"SQRLDATA!!!!"),
            Err(FormatError::Base64(_))
        ));
        // A wrong length for a known type.
        let mut short_rescue = bytes.clone();
        short_rescue[8 + 125] = 72;
        assert_eq!(
            S4::parse(&short_rescue),
            Err(FormatError::TruncatedBlockHeader { offset: 197 })
        );
    }

    #[test]
    fn headerless_data_must_start_with_a_rescue_block() {
        let rows = round_trip_rows();
        let full = S4::parse(&rows[0].1).unwrap();
        // Headerless data starting with block 1 is not recognised at all.
        assert_eq!(
            S4::parse(&full.to_headerless_bytes()),
            Err(FormatError::UnrecognisedHeader)
        );
        let raw = split_blocks(&full.to_headerless_bytes()).unwrap();
        assert_eq!(
            S4::from_raw_blocks(S4Form::HeaderlessBinary, raw),
            Err(FormatError::NotARescueBlock)
        );
    }

    #[test]
    fn libsqrl_pre_v1_identity_is_refused_by_name() {
        // PITFALLS 16: its type-3 block has no edition (148 bytes for 4 keys).
        assert_eq!(
            S4::parse(TEST1),
            Err(FormatError::LegacyPreviousKeysBlock { length: 148 })
        );
        assert_eq!(
            S4::parse(TEST2),
            Err(FormatError::LegacyPreviousKeysBlock { length: 148 })
        );
        let message = S4::parse(TEST1).unwrap_err().to_string();
        assert!(message.contains("pre-v1"), "{message}");
        // Framing alone still reads it, so tools can inspect the other blocks.
        let (form, blocks) = RawBlock::read_all(TEST1).unwrap();
        assert_eq!(form, S4Form::Binary);
        let lengths: Vec<usize> = blocks.iter().map(|b| b.as_bytes().len()).collect();
        assert_eq!(lengths, [125, 73, 148]);
    }

    #[test]
    fn every_prefix_and_corruption_fails_cleanly() {
        let mut inputs: Vec<Vec<u8>> = round_trip_rows().into_iter().map(|(_, b)| b).collect();
        inputs.push(TEST1.to_vec());
        inputs.push(TEST2.to_vec());
        for input in &inputs {
            for len in 0..input.len() {
                // Must not panic; a strict prefix of a binary identity is never the
                // same identity.
                let _ = S4::parse(&input[..len]);
                let _ = RawBlock::read_all(&input[..len]);
            }
            for position in 0..input.len() {
                let mut changed = input.clone();
                changed[position] ^= 0x5A;
                let _ = S4::parse(&changed);
            }
        }
        // Binary prefixes that cut a block are errors, not shorter identities.
        let rows = round_trip_rows();
        let full = &rows[1].1;
        let boundaries = [8usize, 8 + 125, 8 + 125 + 73, full.len()];
        for len in 0..full.len() {
            let result = S4::parse(&full[..len]);
            if boundaries.contains(&len) && len > 8 {
                assert!(result.is_ok(), "prefix {len} ends on a block boundary");
            } else {
                assert!(result.is_err(), "prefix {len}");
            }
        }
    }

    #[test]
    fn non_utf8_and_huge_inputs_are_errors() {
        assert_eq!(
            S4::parse(&[0xFF, 0xFE, 0x80]),
            Err(FormatError::UnrecognisedHeader)
        );
        let mut text = b"SQRLDATA".to_vec();
        text.extend_from_slice(&[0xC3, 0x28, 0xFF]);
        assert!(matches!(S4::parse(&text), Err(FormatError::Base64(_))));
        let mut huge = b"SQRLDATA".to_vec();
        huge.resize(1 << 20, b'A');
        assert_eq!(
            S4::parse(&huge),
            Err(FormatError::BlockTooShort {
                offset: 0,
                length: 0
            })
        );
        let mut huge_binary = BINARY_HEADER.to_vec();
        huge_binary.resize(1 << 20, 0x37);
        assert!(matches!(
            S4::parse(&huge_binary),
            Err(FormatError::TruncatedBlock { .. })
        ));
    }
}
