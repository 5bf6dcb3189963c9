//! Encoding vectors.

use crate::text::{expect_eq, hex};

/// `hex,base64url`: both directions.
pub fn base64url(row: &str) -> Result<(), String> {
    let (input, output) = row
        .split_once(',')
        .ok_or_else(|| "expected hex,text".to_owned())?;
    let bytes = hex(input)?;
    expect_eq(
        "encode",
        sqrl_core::base64url::encode(&bytes).as_str(),
        output,
    )?;
    let decoded = sqrl_core::base64url::decode(output).map_err(|e| e.to_string())?;
    expect_eq("decode", decoded, bytes)
}
