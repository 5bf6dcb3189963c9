//! Protocol-value vectors: TIF bits and the combined values servers send.

use sqrl_core::msg::Tif;

use crate::text::{expect_eq, pipe_cells};

/// `0x001 | name` (a single defined bit) or `5 | description` (a combined value as
/// sent on the wire, hex without `0x`). A description that spells the value as
/// `0x100|0x80|0x40` must agree with it.
pub fn tif(row: &str) -> Result<(), String> {
    let cells = pipe_cells(row);
    let [value, description, ..] = cells.as_slice() else {
        return Err("expected `value | description`".into());
    };
    if let Some(bit) = value.strip_prefix("0x") {
        let tif = Tif::parse_hex(bit).map_err(|e| e.to_string())?;
        tif.check_defined().map_err(|e| e.to_string())?;
        expect_eq("bits set", tif.bits().count_ones(), 1)?;
        expect_eq("names for the bit", tif.names().count(), 1)?;
        return Ok(());
    }
    let tif = Tif::parse_hex(value).map_err(|e| e.to_string())?;
    tif.check_defined().map_err(|e| e.to_string())?;
    expect_eq("written back", tif.to_hex(), value.to_ascii_lowercase())?;
    if let Some(spelled) = spelled_value(description) {
        expect_eq("value spelled in the description", tif.bits(), spelled)?;
    }
    Ok(())
}

/// The first `0xA|0xB|...` expression in a description, OR-ed together.
fn spelled_value(description: &str) -> Option<u32> {
    description
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|word| word.starts_with("0x") && word.contains('|'))
        .find_map(|expression| {
            expression
                .split('|')
                .map(|part| u32::from_str_radix(part.trim_start_matches("0x"), 16).ok())
                .try_fold(0, |acc, bit| bit.map(|b| acc | b))
        })
}
