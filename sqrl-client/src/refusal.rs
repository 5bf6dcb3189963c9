//! Why a site turned a command down, in a form a script can act on: a stable
//! failure code (see [`Refusal::code`]) and the TIF of the reply that said so.

use sqrl_core::client::ClientError;
use sqrl_core::msg::Tif;

/// A site refused the command, or its query answer ruled the command out
/// before anything was sent (exit code 6).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The query found the identity replaced by a newer one (TIF `0x200`).
    #[error(
        "this identity has been replaced by a newer one at {site}; import the current identity on this device"
    )]
    Superseded {
        /// The site key string.
        site: String,
        /// The query reply's TIF.
        tif: Tif,
    },
    /// A login, but the site has SQRL disabled for this identity (TIF `0x008`).
    #[error(
        "SQRL login is disabled for this identity at {site}; re-enable it with `sqrl enable` and your rescue code"
    )]
    LoginDisabled {
        /// The site key string.
        site: String,
        /// The query reply's TIF.
        tif: Tif,
    },
    /// `disable`, `enable` or `remove` at a site that does not know the identity.
    #[error("{site} does not know this identity")]
    UnknownIdentity {
        /// The site key string.
        site: String,
        /// The query reply's TIF.
        tif: Tif,
    },
    /// `disable`, `enable` or `remove` at a site that knows only a previous identity.
    #[error(
        "{site} knows only a previous identity of yours; log in first to move it to this identity"
    )]
    PreviousIdentityOnly {
        /// The site key string.
        site: String,
        /// The query reply's TIF.
        tif: Tif,
    },
    /// The site's reply refused the command (the protocol's reason).
    #[error("{site}: {error}")]
    Reply {
        /// The site key string.
        site: String,
        /// What the reply said.
        error: ClientError,
    },
}

impl Refusal {
    /// The stable failure code, in snake case. Scripts may rely on these:
    ///
    /// | code | meaning |
    /// | --- | --- |
    /// | `identity_superseded` | the site knows a newer identity than this one |
    /// | `sqrl_disabled` | SQRL login is disabled for this identity at the site |
    /// | `identity_unknown` | the site does not know this identity |
    /// | `previous_identity_only` | the site knows only a previous identity; log in first |
    /// | `page_expired` | the login page is stale; reload it |
    /// | `bad_id_association` | the login code belongs to another identity |
    /// | `function_not_supported` | the site does not support the command |
    /// | `client_failure` | the site rejected the request as malformed or badly signed |
    /// | `command_failed` | the site refused the command for another reason |
    /// | `ip_mismatch` | the site saw this device at another address than the browser |
    /// | `ip_match_unconfirmed` | the site did not confirm the addresses match (same-device) |
    /// | `refused` | any other refusal |
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Superseded { .. } => "identity_superseded",
            Refusal::LoginDisabled { .. } => "sqrl_disabled",
            Refusal::UnknownIdentity { .. } => "identity_unknown",
            Refusal::PreviousIdentityOnly { .. } => "previous_identity_only",
            Refusal::Reply { error, .. } => reply_code(error),
        }
    }

    /// The TIF of the reply behind the refusal, if there was one.
    pub fn tif(&self) -> Option<Tif> {
        match self {
            Refusal::Superseded { tif, .. }
            | Refusal::LoginDisabled { tif, .. }
            | Refusal::UnknownIdentity { tif, .. }
            | Refusal::PreviousIdentityOnly { tif, .. } => Some(*tif),
            Refusal::Reply { error, .. } => error.tif(),
        }
    }
}

/// The code of a refusal the protocol layer reported.
pub fn reply_code(error: &ClientError) -> &'static str {
    match error {
        ClientError::Superseded(_) => "identity_superseded",
        ClientError::Disabled => "sqrl_disabled",
        ClientError::PageExpired => "page_expired",
        ClientError::BadIdAssociation(_) => "bad_id_association",
        ClientError::NotSupported(_) => "function_not_supported",
        ClientError::Rejected(_) => "client_failure",
        ClientError::CommandFailed(_) => "command_failed",
        ClientError::IpMismatch => "ip_mismatch",
        ClientError::IpMatchUnconfirmed(_) => "ip_match_unconfirmed",
        _ => "refused",
    }
}

/// A login stopped because the site saw this device at another network
/// address than the browser that showed the login code (exit code 10).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddressMismatch {
    /// `--same-device`, and the site saw another address or did not confirm it.
    #[error(
        "{site} {what} the browser that showed the login code, and --same-device requires \
         the same address: the login page may not be in this computer's browser (a code \
         relayed from someone else's page looks like this); nobody was signed in",
        what = same_device_words(.error)
    )]
    SameDevice {
        /// The site key string.
        site: String,
        /// What the reply said ([`ClientError::IpMismatch`] or
        /// [`ClientError::IpMatchUnconfirmed`]).
        error: ClientError,
    },
    /// Another device, with no terminal to confirm on and no `--allow-relayed-code`.
    #[error(
        "{site} saw this request come from a different network address than the browser \
         that showed the login code; stopped without signing anyone in (if you opened \
         that page yourself on another device or network, run again on a terminal and \
         confirm, or pass --allow-relayed-code)"
    )]
    Unconfirmed {
        /// The site key string.
        site: String,
    },
    /// The CPS agent's login (same device by definition).
    #[error("{site} saw this device at a different network address than the browser")]
    Agent {
        /// The site key string.
        site: String,
    },
}

fn same_device_words(error: &ClientError) -> &'static str {
    match error {
        ClientError::IpMismatch => "saw this device at a different network address than",
        _ => "did not confirm that this device has the network address of",
    }
}

impl AddressMismatch {
    /// The stable failure code: `ip_mismatch` or `ip_match_unconfirmed`.
    pub fn code(&self) -> &'static str {
        match self {
            AddressMismatch::SameDevice { error, .. } => reply_code(error),
            AddressMismatch::Unconfirmed { .. } | AddressMismatch::Agent { .. } => "ip_mismatch",
        }
    }

    /// The TIF of the reply that showed the mismatch.
    pub fn tif(&self) -> Option<Tif> {
        match self {
            AddressMismatch::SameDevice { error, .. } => error.tif(),
            AddressMismatch::Unconfirmed { .. } | AddressMismatch::Agent { .. } => {
                ClientError::IpMismatch.tif()
            }
        }
    }
}

/// The machine names of TIF bits, as `--json` output lists them.
const TIF_FLAG_NAMES: [(Tif, &str); 10] = [
    (Tif::CURRENT_ID_MATCH, "current_id_match"),
    (Tif::PREVIOUS_ID_MATCH, "previous_id_match"),
    (Tif::IP_MATCHED, "ip_matched"),
    (Tif::SQRL_DISABLED, "sqrl_disabled"),
    (Tif::FUNCTION_NOT_SUPPORTED, "function_not_supported"),
    (Tif::TRANSIENT_ERROR, "transient_error"),
    (Tif::COMMAND_FAILED, "command_failed"),
    (Tif::CLIENT_FAILURE, "client_failure"),
    (Tif::BAD_ID_ASSOCIATION, "bad_id_association"),
    (Tif::IDENTITY_SUPERSEDED, "identity_superseded"),
];

/// The snake-case names of the v1 bits set in `tif`, lowest first (bits v1
/// does not define have no name; the hex value still carries them).
pub fn tif_flag_names(tif: Tif) -> Vec<&'static str> {
    TIF_FLAG_NAMES
        .into_iter()
        .filter(|(bit, _)| tif.contains(*bit))
        .map(|(_, name)| name)
        .collect()
}

/// `tif` and `tif_flags` for a JSON object: the hex wire form and the names.
pub fn tif_json(tif: Option<Tif>) -> (serde_json::Value, serde_json::Value) {
    match tif {
        Some(tif) => (tif.to_hex().into(), tif_flag_names(tif).into()),
        None => (serde_json::Value::Null, serde_json::Value::Null),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_bit_has_one_distinct_name() {
        let all = tif_flag_names(Tif::V1_DEFINED);
        assert_eq!(all.len(), 10);
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert!(tif_flag_names(Tif::NONE).is_empty());
    }

    #[test]
    fn names_follow_the_bits() {
        let tif = Tif::COMMAND_FAILED | Tif::CLIENT_FAILURE | Tif::from_bits_retain(0x400);
        assert_eq!(tif_flag_names(tif), ["command_failed", "client_failure"]);
        let (hex, names) = tif_json(Some(tif));
        assert_eq!(hex, "4c0");
        assert_eq!(
            names,
            serde_json::json!(["command_failed", "client_failure"])
        );
    }

    #[test]
    fn refusals_carry_their_code_and_tif() {
        let tif = Tif::COMMAND_FAILED | Tif::CLIENT_FAILURE;
        let reply = Refusal::Reply {
            site: "example.com".into(),
            error: ClientError::Rejected(tif),
        };
        assert_eq!(reply.code(), "client_failure");
        assert_eq!(reply.tif(), Some(tif));
        assert!(reply.to_string().starts_with("example.com: "), "{reply}");
        let disabled = Refusal::LoginDisabled {
            site: "example.com".into(),
            tif: Tif::SQRL_DISABLED,
        };
        assert_eq!(disabled.code(), "sqrl_disabled");
        assert_eq!(disabled.tif(), Some(Tif::SQRL_DISABLED));
    }
}
