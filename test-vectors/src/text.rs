//! Small readers for the vector files' row syntaxes: quoted CSV, `a | b | c`
//! tables, `key = value` lines, and hex.

/// Splits one CSV row into fields, honouring double quotes (`""` is a literal quote).
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

/// The lines of a vector file that hold rows: neither blank nor a `#` comment,
/// with their 1-based line numbers and without a trailing CR.
pub fn row_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
}

/// One `label | hex` row (an S4 file to round-trip): the label and the bytes.
pub fn label_and_hex(row: &str) -> Result<(&str, Vec<u8>), String> {
    let (label, encoded) = row
        .rsplit_once('|')
        .ok_or_else(|| "expected `label | hex`".to_owned())?;
    Ok((label.trim(), hex(encoded)?))
}

/// Every row of a `label | hex` file, such as SQRLDotNetClient's S4 round trips.
pub fn labelled_hex_rows(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    row_lines(text)
        .map(|(line, row)| {
            let (label, bytes) = label_and_hex(row).map_err(|e| format!("line {line}: {e}"))?;
            Ok((label.to_owned(), bytes))
        })
        .collect()
}

/// Splits a `a | b | c` table row into trimmed cells (SQRL URLs never hold `|`).
pub fn pipe_cells(line: &str) -> Vec<&str> {
    line.split('|').map(str::trim).collect()
}

/// Decodes lowercase or uppercase hex.
pub fn hex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("invalid hex {text:?}"))
        })
        .collect()
}

/// Decodes hex into a fixed-size array.
pub fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = hex(text)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes of hex, got {len}"))
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes base64url into a fixed-size array, with a readable error.
pub fn b64_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    sqrl_core::base64url::decode_array::<N>(text).map_err(|e| format!("{text:?}: {e}"))
}

/// Compares and explains a mismatch.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_and_empty_fields() {
        assert_eq!(
            csv_fields(r#""a,b","",3,"say ""hi""""#).unwrap(),
            vec!["a,b", "", "3", "say \"hi\""]
        );
        assert!(csv_fields(r#""open"#).is_err());
    }

    #[test]
    fn labelled_hex_rows_skip_comments_and_name_bad_lines() {
        let text = "# label | hex\r\n\none | 00ff\r\ntwo, with words | A0\n";
        assert_eq!(
            labelled_hex_rows(text).unwrap(),
            vec![
                ("one".to_owned(), vec![0, 255]),
                ("two, with words".to_owned(), vec![160])
            ]
        );
        assert_eq!(
            labelled_hex_rows("# c\nno separator\n").unwrap_err(),
            "line 2: expected `label | hex`"
        );
        assert!(labelled_hex_rows("odd | abc").is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex("00ffA0").unwrap(), vec![0, 255, 160]);
        assert_eq!(to_hex(&[0, 255, 160]), "00ffa0");
        assert!(hex("abc").is_err());
        assert!(hex("zz").is_err());
    }
}
