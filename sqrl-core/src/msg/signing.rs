//! The exact bytes every request signature covers (SPEC 2.4).

/// `ASCII(client_value) || ASCII(server_value)`: the two *encoded* strings as
/// sent, client first, nothing between (PITFALLS 2).
pub fn signed_message(client_value: &str, server_value: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(client_value.len() + server_value.len());
    message.extend_from_slice(client_value.as_bytes());
    message.extend_from_slice(server_value.as_bytes());
    message
}
