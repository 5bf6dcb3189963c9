//! Why a request failed, and the one table from each failure to the TIF bits
//! its reply carries.

use crate::msg::{MessageError, Tif};

/// Why a request failed: for logs and metrics (the client learns only the TIF).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The body does not parse (TIF 0xC0, or 0x50 for an unknown command).
    #[error("malformed request: {0}")]
    Malformed(MessageError),
    /// `ids`/`pids` missing or wrong, or `urs` wrong (TIF 0xC0).
    #[error("signature check failed: {0}")]
    Signature(MessageError),
    /// `urs` is required (`enable`, `remove`, identity replacement) but absent
    /// (TIF 0xC0).
    #[error("urs is required for this command")]
    MissingUrs,
    /// `urs` was sent but the server holds no VUK to check it with (TIF 0xC0):
    /// a signature that cannot be verified is not accepted.
    #[error("urs sent but no stored VUK to verify it")]
    UnverifiableUrs,
    /// The previous reply carried `sin` and this request lacks `ins` (or
    /// `pins` with a `pidk`) (TIF 0xC0).
    #[error("{0}= required by the previous reply's sin")]
    MissingIndexedSecret(&'static str),
    /// A `sin` is configured but this command, which may change state,
    /// answers none: its conversation skipped the `query` whose reply carries
    /// the `sin` (TIF 0xC0 plus state; see [`super::Policy::with_sin`]).
    #[error("a sin is configured but this {0} answered none (a transaction starts with query)")]
    UnansweredSin(&'static str),
    /// The presented `ins` (or, for an account known only by `pidk`, `pins`)
    /// differs from the indexed secret kept for the account
    /// ([`super::Records::current_secret`]; TIF 0xC0 plus the state known
    /// before the command).
    #[error("ins/pins differs from the indexed secret stored for this account")]
    IndexedSecretMismatch,
    /// A new association (`ident` of an unknown identity, or identity
    /// replacement) without `suk`/`vuk` (TIF 0xC0).
    #[error("ident of a new association lacks suk/vuk")]
    MissingLock,
    /// The nut names no conversation (TIF 0x60).
    #[error("unknown or already used nut")]
    UnknownNut,
    /// The nut's conversation has expired (TIF 0x60).
    #[error("expired nut")]
    ExpiredNut,
    /// A non-CPS `ident` in a conversation continued from an unknown or expired
    /// nut: no page waits for it, so confirming would log no one in (TIF 0x60).
    #[error("no login page is waiting for this conversation")]
    NoWaitingPage,
    /// `server=` is not what the server sent last (TIF 0x60).
    #[error("server= value does not echo the last reply")]
    ServerValueMismatch,
    /// The client's IP differs from the browser's and `noiptest` is absent
    /// (TIF exactly 0x40).
    #[error("client IP differs from the browser's")]
    IpMismatch,
    /// No protocol version in common (TIF 0x50).
    #[error("no protocol version in common")]
    UnsupportedVersion,
    /// The conversation is bound to another identity (TIF 0x1C0).
    #[error("nut bound to another identity")]
    BoundToOtherIdentity,
    /// `idk` is on the superseded list and the command is not `query`
    /// (TIF 0x240).
    #[error("identity superseded")]
    Superseded,
    /// `ident` of a disabled account (TIF 0x48 plus state).
    #[error("SQRL disabled for this account")]
    Disabled,
    /// `disable`, `enable` or `remove` of an identity the server does not know
    /// (TIF 0x40 plus state).
    #[error("identity unknown")]
    UnknownIdentity,
    /// The mutation could not be applied (the in-memory reference server's
    /// answer when its records changed under a decision) (TIF 0x60: retry).
    #[error("account changed concurrently")]
    Conflict,
    /// The server could not build its own reply from the values it supplies
    /// (a misconfiguration, never the client's request): no reply goes out,
    /// and the request counts as failed (TIF 0x40).
    #[error("reply could not be built: {0}")]
    ReplyNotBuilt(MessageError),
}

impl Failure {
    /// A short stable name for logs and metric labels (`unknown-nut`,
    /// `signature`): the kind of failure, never its details.
    pub fn name(&self) -> &'static str {
        match self {
            Failure::Malformed(_) => "malformed",
            Failure::Signature(_) => "signature",
            Failure::MissingUrs => "missing-urs",
            Failure::UnverifiableUrs => "unverifiable-urs",
            Failure::MissingIndexedSecret(_) => "missing-indexed-secret",
            Failure::UnansweredSin(_) => "unanswered-sin",
            Failure::IndexedSecretMismatch => "indexed-secret-mismatch",
            Failure::MissingLock => "missing-lock",
            Failure::UnknownNut => "unknown-nut",
            Failure::ExpiredNut => "expired-nut",
            Failure::NoWaitingPage => "no-waiting-page",
            Failure::ServerValueMismatch => "server-value-mismatch",
            Failure::IpMismatch => "ip-mismatch",
            Failure::UnsupportedVersion => "unsupported-version",
            Failure::BoundToOtherIdentity => "bound-to-other-identity",
            Failure::Superseded => "superseded",
            Failure::Disabled => "disabled",
            Failure::UnknownIdentity => "unknown-identity",
            Failure::Conflict => "conflict",
            Failure::ReplyNotBuilt(_) => "reply-not-built",
        }
    }

    /// The TIF bits that name this failure, whatever the server knows of the
    /// identity: the one table from failures to bits (SPEC 3.1, 3.2). A reply
    /// adds the state bits [`Failure::reply_tif`] says.
    pub fn tif(&self) -> Tif {
        let failed = Tif::COMMAND_FAILED;
        let client = Tif::CLIENT_FAILURE | failed;
        let transient = Tif::TRANSIENT_ERROR | failed;
        match self {
            // 0xC0, or 0x50 for an unknown command or version.
            Failure::Malformed(error) => error.tif(),
            Failure::Signature(_)
            | Failure::MissingUrs
            | Failure::UnverifiableUrs
            | Failure::MissingIndexedSecret(_)
            | Failure::UnansweredSin(_)
            | Failure::IndexedSecretMismatch
            | Failure::MissingLock => client,
            Failure::UnknownNut
            | Failure::ExpiredNut
            | Failure::NoWaitingPage
            | Failure::ServerValueMismatch
            | Failure::Conflict => transient,
            Failure::IpMismatch | Failure::UnknownIdentity | Failure::ReplyNotBuilt(_) => failed,
            Failure::UnsupportedVersion => Tif::FUNCTION_NOT_SUPPORTED | failed,
            Failure::BoundToOtherIdentity => Tif::BAD_ID_ASSOCIATION | client,
            Failure::Superseded => Tif::IDENTITY_SUPERSEDED | failed,
            Failure::Disabled => Tif::SQRL_DISABLED | failed,
        }
    }

    /// The TIF of the reply to this failure, given the state bits the server
    /// `known` when it failed (0x04 when the IPs matched; 0x01, 0x02 and 0x08
    /// once `ids` verified). SPEC 3.2: a failure reports every state bit the
    /// server honestly knows, with two exceptions.
    pub fn reply_tif(&self, known: Tif) -> Tif {
        let reported = match self {
            // SPEC 2.2, PITFALLS 26: an IP mismatch is exactly 0x40, so the
            // client can tell it from every other failure.
            Failure::IpMismatch => Tif::NONE,
            // A superseded identity is known to no account: only the IP test
            // is state worth reporting.
            Failure::Superseded => known & Tif::IP_MATCHED,
            _ => known,
        };
        self.tif() | reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::VersionError;

    /// One failure of every kind, with the bits the table must give it.
    fn rows() -> Vec<(Failure, u32)> {
        let samples = [
            Failure::Malformed(MessageError::UnknownCommand),
            Failure::Malformed(MessageError::Version(VersionError::NoCommonVersion)),
            Failure::Malformed(MessageError::MalformedForm),
            Failure::Signature(MessageError::KeyMismatch("idk")),
            Failure::MissingUrs,
            Failure::UnverifiableUrs,
            Failure::MissingIndexedSecret("ins"),
            Failure::UnansweredSin("ident"),
            Failure::IndexedSecretMismatch,
            Failure::MissingLock,
            Failure::UnknownNut,
            Failure::ExpiredNut,
            Failure::NoWaitingPage,
            Failure::ServerValueMismatch,
            Failure::IpMismatch,
            Failure::UnsupportedVersion,
            Failure::BoundToOtherIdentity,
            Failure::Superseded,
            Failure::Disabled,
            Failure::UnknownIdentity,
            Failure::Conflict,
            Failure::ReplyNotBuilt(MessageError::MalformedForm),
        ];
        samples
            .into_iter()
            .map(|failure| {
                // Exhaustive: a new variant does not compile until it has a row.
                let bits = match &failure {
                    Failure::Malformed(
                        MessageError::UnknownCommand
                        | MessageError::Version(VersionError::NoCommonVersion),
                    ) => 0x50,
                    Failure::Malformed(_) => 0xC0,
                    Failure::Signature(_) => 0xC0,
                    Failure::MissingUrs => 0xC0,
                    Failure::UnverifiableUrs => 0xC0,
                    Failure::MissingIndexedSecret(_) => 0xC0,
                    Failure::UnansweredSin(_) => 0xC0,
                    Failure::IndexedSecretMismatch => 0xC0,
                    Failure::MissingLock => 0xC0,
                    Failure::UnknownNut => 0x60,
                    Failure::ExpiredNut => 0x60,
                    Failure::NoWaitingPage => 0x60,
                    Failure::ServerValueMismatch => 0x60,
                    Failure::IpMismatch => 0x40,
                    Failure::UnsupportedVersion => 0x50,
                    Failure::BoundToOtherIdentity => 0x1C0,
                    Failure::Superseded => 0x240,
                    Failure::Disabled => 0x48,
                    Failure::UnknownIdentity => 0x40,
                    Failure::Conflict => 0x60,
                    Failure::ReplyNotBuilt(_) => 0x40,
                };
                (failure, bits)
            })
            .collect()
    }

    #[test]
    fn every_failure_maps_to_its_bits() {
        let rows = rows();
        for (failure, bits) in &rows {
            assert_eq!(failure.tif(), Tif::from_bits_retain(*bits), "{failure:?}");
            assert!(failure.tif().is_failure(), "{failure:?} must set 0x40");
            assert_eq!(failure.tif().check_defined(), Ok(failure.tif()));
        }
        // One sample per variant: with the exhaustive match above, a new
        // variant needs both a sample and its bits before this passes.
        let kinds: std::collections::HashSet<_> = rows
            .iter()
            .map(|(failure, _)| std::mem::discriminant(failure))
            .collect();
        assert_eq!(kinds.len(), 20);
    }

    #[test]
    fn every_kind_has_its_own_label_safe_name() {
        let rows = rows();
        let mut names: Vec<(&str, std::mem::Discriminant<Failure>)> = rows
            .iter()
            .map(|(failure, _)| (failure.name(), std::mem::discriminant(failure)))
            .collect();
        for (name, _) in &names {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
        }
        names.sort_by_key(|(name, _)| *name);
        names.dedup();
        // One name per kind: samples of the same kind share it, two kinds never do.
        let distinct: std::collections::HashSet<_> = names.iter().map(|(name, _)| *name).collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(distinct.len(), 20);
    }

    #[test]
    fn replies_add_the_known_state_except_where_the_spec_says_not() {
        let known = Tif::CURRENT_ID_MATCH | Tif::SQRL_DISABLED | Tif::IP_MATCHED;
        for (failure, bits) in rows() {
            let want = match failure {
                // Exactly 0x40, whatever is known.
                Failure::IpMismatch => 0x40,
                // The IP test only.
                Failure::Superseded => 0x244,
                _ => bits | known.bits(),
            };
            assert_eq!(
                failure.reply_tif(known),
                Tif::from_bits_retain(want),
                "{failure:?}"
            );
            assert_eq!(failure.reply_tif(Tif::NONE), failure.tif(), "{failure:?}");
        }
    }
}
