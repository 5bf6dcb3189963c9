//! Client commands, options and `btn` answers (SPEC 2.2).

use core::fmt;

use super::MessageError;

/// The `cmd=` of a client request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Learn how the server knows this identity. Never changes server state.
    Query,
    /// Log in, or create or replace the association.
    Ident,
    /// Stop SQRL logins for this account.
    Disable,
    /// Re-enable SQRL logins (needs `urs`).
    Enable,
    /// Delete the SQRL association (needs `urs`).
    Remove,
}

impl Command {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Query => "query",
            Command::Ident => "ident",
            Command::Disable => "disable",
            Command::Enable => "enable",
            Command::Remove => "remove",
        }
    }

    /// Parses a wire name (exact, lowercase).
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        match text {
            "query" => Ok(Command::Query),
            "ident" => Ok(Command::Ident),
            "disable" => Ok(Command::Disable),
            "enable" => Ok(Command::Enable),
            "remove" => Ok(Command::Remove),
            _ => Err(MessageError::UnknownCommand),
        }
    }

    /// Whether the command always needs an `urs` signature (SPEC 2.4). An
    /// `ident` that replaces a previous identity needs one too.
    pub fn requires_urs(self) -> bool {
        matches!(self, Command::Enable | Command::Remove)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

bitflags::bitflags! {
    /// The `opt=` flags of a client request.
    ///
    /// Parsing is tolerant: option names this crate does not know are ignored (a
    /// newer client may send more, and the server acts only on the ones it knows),
    /// and a repeated option counts once. Empty items (`cps~~suk`) and characters
    /// outside `[A-Za-z0-9]` are rejected as malformed. Writing is canonical: the
    /// known options in the order `noiptest~sqrlonly~hardlock~cps~suk`.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ClientOptions: u8 {
        /// `noiptest`: do not fail on an IP mismatch (cross-device login).
        const NOIPTEST = 0x01;
        /// `sqrlonly`: ask the site to disable non-SQRL login.
        const SQRLONLY = 0x02;
        /// `hardlock`: ask the site to disable non-SQRL account recovery.
        const HARDLOCK = 0x04;
        /// `cps`: the client provides the session; the server returns `url=`.
        const CPS = 0x08;
        /// `suk`: ask the server to return the stored SUK.
        const SUK = 0x10;
    }
}

impl ClientOptions {
    /// No option.
    pub const NONE: ClientOptions = ClientOptions::empty();

    /// The wire names, in canonical order.
    const NAMES: [(ClientOptions, &'static str); 5] = [
        (ClientOptions::NOIPTEST, "noiptest"),
        (ClientOptions::SQRLONLY, "sqrlonly"),
        (ClientOptions::HARDLOCK, "hardlock"),
        (ClientOptions::CPS, "cps"),
        (ClientOptions::SUK, "suk"),
    ];

    /// `self` with `other` added or removed.
    pub const fn with(self, other: ClientOptions, on: bool) -> Self {
        if on {
            self.union(other)
        } else {
            self.difference(other)
        }
    }

    /// Parses an `opt=` value (see the type's documentation for the policy).
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let mut options = ClientOptions::NONE;
        if text.is_empty() {
            return Ok(options);
        }
        for item in text.split('~') {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(MessageError::InvalidValue {
                    name: "opt",
                    reason: "empty option or invalid character",
                });
            }
            if let Some((flag, _)) = Self::NAMES.iter().find(|(_, name)| *name == item) {
                options |= *flag;
            }
        }
        Ok(options)
    }

    /// The names of the set options, in canonical order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

/// Writes the canonical `opt=` value (empty when no option is set).
impl fmt::Display for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, name) in self.names().enumerate() {
            if index > 0 {
                f.write_str("~")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientOptions({self})")
    }
}

/// The `btn=` answer to a server's `ask` (SPEC 2.2, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    /// `0`: the message was acknowledged (plain OK).
    Ok,
    /// `1`: the first button was chosen.
    First,
    /// `2`: the second button was chosen.
    Second,
}

impl Button {
    /// The wire digit.
    pub fn as_str(self) -> &'static str {
        match self {
            Button::Ok => "0",
            Button::First => "1",
            Button::Second => "2",
        }
    }

    /// Parses `0`, `1` or `2`.
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        match text {
            "0" => Ok(Button::Ok),
            "1" => Ok(Button::First),
            "2" => Ok(Button::Second),
            _ => Err(MessageError::InvalidValue {
                name: "btn",
                reason: "not 0, 1 or 2",
            }),
        }
    }

    /// The 1-based index of the chosen button, or `None` for [`Button::Ok`].
    pub fn index(self) -> Option<usize> {
        match self {
            Button::Ok => None,
            Button::First => Some(1),
            Button::Second => Some(2),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for command in [
            Command::Query,
            Command::Ident,
            Command::Disable,
            Command::Enable,
            Command::Remove,
        ] {
            assert_eq!(Command::parse(command.as_str()), Ok(command));
        }
        assert_eq!(Command::parse("Query"), Err(MessageError::UnknownCommand));
        assert_eq!(Command::parse("login"), Err(MessageError::UnknownCommand));
        assert!(Command::Enable.requires_urs() && !Command::Ident.requires_urs());
    }

    #[test]
    fn options_write_canonically_and_parse_tolerantly() {
        let all = ClientOptions::SUK
            | ClientOptions::CPS
            | ClientOptions::HARDLOCK
            | ClientOptions::SQRLONLY
            | ClientOptions::NOIPTEST;
        assert_eq!(all.to_string(), "noiptest~sqrlonly~hardlock~cps~suk");
        assert_eq!(
            ClientOptions::parse("suk~cps~noiptest~sqrlonly~hardlock"),
            Ok(all)
        );
        assert_eq!(ClientOptions::NONE.to_string(), "");
        assert_eq!(ClientOptions::parse(""), Ok(ClientOptions::NONE));
        // Unknown names are ignored, repeats count once.
        assert_eq!(
            ClientOptions::parse("cps~future~cps").unwrap(),
            ClientOptions::CPS
        );
        for bad in ["cps~~suk", "~cps", "cps~", "cps suk", "c=ps", "CPS~é"] {
            assert!(ClientOptions::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ClientOptions::CPS
                .with(ClientOptions::SUK, true)
                .with(ClientOptions::CPS, false),
            ClientOptions::SUK
        );
    }

    #[test]
    fn every_option_has_a_wire_name() {
        let named = ClientOptions::NAMES
            .iter()
            .fold(ClientOptions::NONE, |all, (flag, _)| all | *flag);
        assert_eq!(named, ClientOptions::all());
        assert_eq!(ClientOptions::all().names().count(), 5);
    }

    #[test]
    fn buttons() {
        for button in [Button::Ok, Button::First, Button::Second] {
            assert_eq!(Button::parse(button.as_str()), Ok(button));
        }
        for bad in ["3", "01", "", " 1", "-1"] {
            assert!(Button::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Button::Second.index(), Some(2));
        assert_eq!(Button::Ok.index(), None);
    }
}
