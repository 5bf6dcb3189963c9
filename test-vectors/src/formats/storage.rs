//! Storage vectors: base56, the textual identity, and S4 identity files.

use sqrl_core::base56;
use sqrl_core::keys::IdentityUnlockKey;
use sqrl_core::secret::Password;
use sqrl_core::storage::{
    FormatError, PasswordBlock, RawBlock, RescueBlock, RescueCode, S4, StorageError,
};

use crate::text::{csv_fields, expect_eq, hex, hex_array, label_and_hex, to_hex};

/// `"hex",line,"digits","check"`: the digit string of the bytes and the check
/// character of those digits as line `line`.
pub fn base56_digits(row: &str) -> Result<(), String> {
    let fields = csv_fields(row)?;
    let [input, line, digits, check] = fields.as_slice() else {
        return Err("expected 4 fields".into());
    };
    let bytes = hex(input)?;
    expect_eq(
        "digits",
        base56::encode_digits(&bytes).as_str(),
        digits.as_str(),
    )?;
    let line: u8 = line
        .parse()
        .map_err(|_| format!("bad line number {line:?}"))?;
    expect_eq(
        "check character",
        base56::check_char(digits, line).to_string(),
        check.clone(),
    )?;
    expect_eq(
        "digits decoded",
        base56::decode_digits(digits).map_err(|e| e.to_string())?,
        bytes,
    )
}

/// `"b64","hex","formatted text"` (`\n` written as backslash-n): both directions.
pub fn base56_full(row: &str) -> Result<(), String> {
    let fields = csv_fields(row)?;
    let [b64, input, formatted] = fields.as_slice() else {
        return Err("expected 3 fields".into());
    };
    let bytes = hex(input)?;
    expect_eq(
        "base64url column",
        sqrl_core::base64url::decode(b64).map_err(|e| e.to_string())?,
        bytes.clone(),
    )?;
    let formatted = formatted.replace("\\n", "\n");
    expect_eq("encoded", base56::encode(&bytes), formatted.clone())?;
    expect_eq(
        "decoded",
        base56::decode(&formatted).map_err(|e| e.to_string())?,
        bytes,
    )
}

/// `label | hex`: an S4 file that must parse and be written back byte for byte.
pub fn s4_round_trip(row: &str) -> Result<(), String> {
    let (_, bytes) = label_and_hex(row)?;
    let parsed = S4::parse(&bytes).map_err(|e| e.to_string())?;
    if parsed.to_original_form() != bytes {
        return Err("written bytes differ from the input".into());
    }
    Ok(())
}

/// A bare S4 file. It passes if it parses and writes back byte for byte, or if it
/// is rejected with an error that names the pre-v1 layout: a legacy identity must
/// never be silently mis-read.
pub fn s4_file(bytes: &[u8]) -> Result<(), String> {
    match S4::parse(bytes) {
        Ok(parsed) if parsed.to_original_form() == bytes => Ok(()),
        Ok(_) => Err("written bytes differ from the file".into()),
        Err(e @ FormatError::LegacyPreviousKeysBlock { .. }) => {
            // Rejected, as required; the message must say why.
            let message = e.to_string();
            if message.contains("pre-v1") {
                Ok(())
            } else {
                Err(format!(
                    "legacy file rejected without saying why: {message}"
                ))
            }
        }
        Err(e) => Err(format!("rejected: {e}")),
    }
}

fn key_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
}

fn value<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    key_values(text)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("no `{key} = ...` line"))
}

/// libsqrl's textual identity: decodes with valid check characters to a block of
/// the stated length and prefix.
pub fn base56_identity(text: &str) -> Result<(), String> {
    let decoded = base56::decode(value(text, "text")?).map_err(|e| e.to_string())?;
    let length: usize = value(text, "decoded_length")?
        .parse()
        .map_err(|_| "bad decoded_length".to_owned())?;
    expect_eq("decoded length", decoded.len(), length)?;
    let prefix = hex(value(text, "decoded_prefix_hex")?)?;
    expect_eq(
        "decoded prefix",
        decoded.get(..prefix.len()),
        Some(prefix.as_slice()),
    )
}

/// First token of a `key = value  (comment)` value.
fn first_token<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    value(text, key)?
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("empty `{key}`"))
}

/// A pre-v1 libsqrl identity with its published secrets. Its blocks 1 and 2 must
/// decrypt to the published keys (so the KDF and AEAD agree), and the identity as a
/// whole must be rejected: its type-3 layout and its ILK derivation are not v1.
pub fn legacy_identity(text: &str) -> Result<(), String> {
    let stored = value(text, "SQRLDATA form")?;
    match S4::parse(stored.as_bytes()) {
        Err(FormatError::LegacyPreviousKeysBlock { .. }) => {}
        Ok(_) => return Err("pre-v1 identity accepted by S4::parse".into()),
        Err(e) => return Err(format!("rejected for the wrong reason: {e}")),
    }
    let (_, blocks) = RawBlock::read_all(stored.as_bytes()).map_err(|e| e.to_string())?;
    let block = |kind: u16| {
        blocks
            .iter()
            .find(|b| b.block_type() == kind)
            .ok_or_else(|| format!("no type-{kind} block"))
    };
    let password = Password::from(value(text, "password")?);
    let (imk, ilk) = PasswordBlock::parse(block(1)?.as_bytes())
        .map_err(|e| e.to_string())?
        .decrypt(&password, &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    expect_eq(
        "IMK",
        to_hex(imk.as_bytes()),
        first_token(text, "IMK (\"MK\")")?.to_owned(),
    )?;
    expect_eq(
        "stored ILK (legacy derivation)",
        to_hex(ilk.as_bytes()),
        first_token(text, "ILK (legacy derivation)")?.to_owned(),
    )?;
    let code = RescueCode::parse(first_token(text, "rescue_code")?).map_err(|e| e.to_string())?;
    let iuk = RescueBlock::parse(block(2)?.as_bytes())
        .map_err(|e| e.to_string())?
        .decrypt(&code, &mut |_, _| {})
        .map_err(|e| e.to_string())?;
    let published = IdentityUnlockKey::from_bytes(hex_array(first_token(text, "IUK")?)?);
    expect_eq("IUK", &iuk, &published)?;
    expect_eq("IMK = EnHash(IUK)", iuk.master_key(), imk)?;
    expect_eq(
        "v1 ILK = X25519(IUK)",
        to_hex(iuk.lock_key().as_bytes()),
        first_token(text, "ILK (GRC derivation X25519_base(IUK), computed here)")?.to_owned(),
    )?;
    // Without its legacy type-3 block the file parses, but the full import check
    // must still refuse it: its stored ILK is not X25519(IUK).
    let mut v1_layout = b"sqrldata".to_vec();
    v1_layout.extend_from_slice(block(1)?.as_bytes());
    v1_layout.extend_from_slice(block(2)?.as_bytes());
    let s4 = S4::parse(&v1_layout).map_err(|e| e.to_string())?;
    match s4.verify(&password, &code, &mut |_, _| {}) {
        Err(StorageError::LegacyKeyDerivation) => Ok(()),
        Ok(_) => Err("legacy ILK derivation accepted by S4::verify".into()),
        Err(e) => Err(format!("verify failed for the wrong reason: {e}")),
    }
}
