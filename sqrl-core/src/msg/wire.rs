//! Shared framing: a size-bounded base64url `name=value` list with `ver=` first.

use super::MessageError;
use crate::base64url;
use crate::params::ParamList;

/// Decodes `encoded` (a whole `client=` value or reply body) into its list,
/// checking the size bound before any work and that `ver=` comes first.
pub(super) fn decode_list(
    encoded: &str,
    field: &'static str,
    max: usize,
) -> Result<ParamList, MessageError> {
    if encoded.len() > max {
        return Err(MessageError::TooLong { field, max });
    }
    let bytes =
        base64url::decode(encoded).map_err(|source| MessageError::Base64 { field, source })?;
    let text = String::from_utf8(bytes).map_err(|_| MessageError::NotUtf8 { field })?;
    let list = ParamList::parse(&text).map_err(|source| MessageError::Params { field, source })?;
    let first = list.iter().next().map(|(name, _)| name == "ver");
    match first {
        Some(true) => Ok(list),
        Some(false) => Err(MessageError::VersionNotFirst { field }),
        None => Err(MessageError::Missing { field, name: "ver" }),
    }
}

/// Pushes a line the writer itself produced; names and values are checked
/// earlier, so a failure here is reported rather than assumed impossible.
pub(super) fn push(
    list: &mut ParamList,
    field: &'static str,
    name: &str,
    value: &str,
) -> Result<(), MessageError> {
    list.push(name, value)
        .map_err(|source| MessageError::Params { field, source })
}

/// A value that must be non-empty printable ASCII (URLs, paths, nuts).
pub(super) fn check_ascii(name: &'static str, value: &str) -> Result<(), MessageError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(MessageError::InvalidValue {
            name,
            reason: "empty or not printable ASCII",
        })
    }
}
