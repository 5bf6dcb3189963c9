//! The server's `ask=` question (SPEC 3):
//! `b64u(message)[~b64u(button1[;url1])[~b64u(button2[;url2])]]`.

use super::MessageError;
use crate::base64url;

/// A button of an [`Ask`]: a label and an optional root-anchored URL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskButton {
    label: String,
    url: Option<String>,
}

impl AskButton {
    /// A button. The label may not hold `;` (it separates the URL); the URL,
    /// if any, must be printable ASCII and either a root-anchored path (SPEC 3)
    /// or, tolerated for servers that send one, an absolute `https://` or
    /// `http://` URL.
    pub fn new(label: impl Into<String>, url: Option<String>) -> Result<Self, MessageError> {
        let label = label.into();
        if label.contains(';') {
            return Err(invalid("button label holds ';'"));
        }
        if let Some(url) = &url {
            check_url(url)?;
        }
        Ok(Self { label, url })
    }

    /// The label as sent. Render it as plain text ([`plain_text`]).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The URL path, if the button carries one.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    fn parse(encoded: &str) -> Result<Self, MessageError> {
        let text = decode_text(encoded)?;
        let (label, url) = match text.split_once(';') {
            Some((label, url)) => (label.to_owned(), Some(url.to_owned())),
            None => (text, None),
        };
        Self::new(label, url)
    }

    fn to_wire(&self) -> String {
        match &self.url {
            Some(url) => base64url::encode(format!("{};{url}", self.label)),
            None => base64url::encode(&self.label),
        }
    }
}

/// A question the server asks the user, with up to two buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    message: String,
    buttons: Vec<AskButton>,
}

impl Ask {
    /// A message with no button (the user can only acknowledge it: `btn=0`).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            buttons: Vec::new(),
        }
    }

    /// Adds a button; at most two exist.
    pub fn with_button(mut self, button: AskButton) -> Result<Self, MessageError> {
        if self.buttons.len() == 2 {
            return Err(invalid("more than two buttons"));
        }
        self.buttons.push(button);
        Ok(self)
    }

    /// The same question with `text` as its first paragraph.
    pub fn with_preface(mut self, text: &str) -> Self {
        self.message = if self.message.is_empty() {
            text.to_owned()
        } else {
            format!("{text}\n\n{}", self.message)
        };
        self
    }

    /// The message as sent. Render it as plain text ([`plain_text`]).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The buttons (zero, one or two).
    pub fn buttons(&self) -> &[AskButton] {
        &self.buttons
    }

    /// Parses an `ask=` value. Every part is base64url of UTF-8 text.
    pub fn parse(value: &str) -> Result<Self, MessageError> {
        let mut parts = value.split('~');
        let message = decode_text(parts.next().unwrap_or_default())?;
        let mut ask = Ask::new(message);
        for part in parts {
            ask = ask.with_button(AskButton::parse(part)?)?;
        }
        Ok(ask)
    }

    /// The `ask=` wire value.
    pub fn to_wire(&self) -> String {
        let mut out = base64url::encode(&self.message);
        for button in &self.buttons {
            out.push('~');
            out.push_str(&button.to_wire());
        }
        out
    }
}

/// Text from a server made safe for a terminal or a label: every control
/// character except newline becomes U+FFFD, so a hostile `ask` cannot move the
/// cursor or recolour the screen (SPEC 3: "render as plain text").
pub fn plain_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn decode_text(encoded: &str) -> Result<String, MessageError> {
    let bytes = base64url::decode(encoded).map_err(|source| MessageError::Base64 {
        field: "ask",
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| MessageError::NotUtf8 { field: "ask" })
}

fn check_url(url: &str) -> Result<(), MessageError> {
    let anchored = url.starts_with('/') && !url.starts_with("//");
    let absolute = url.starts_with("https://") || url.starts_with("http://");
    if (anchored || absolute) && url.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            "button URL is neither a root-anchored path nor an http(s) URL",
        ))
    }
}

fn invalid(reason: &'static str) -> MessageError {
    MessageError::InvalidValue {
        name: "ask",
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_buttons_and_urls() {
        let ask = Ask::new("Passer à la nouvelle identité ?")
            .with_button(AskButton::new("Oui", Some("/yes?x=1".into())).unwrap())
            .unwrap()
            .with_button(AskButton::new("Non", None).unwrap())
            .unwrap();
        let wire = ask.to_wire();
        assert_eq!(
            wire,
            format!(
                "{}~{}~{}",
                base64url::encode("Passer à la nouvelle identité ?"),
                base64url::encode("Oui;/yes?x=1"),
                base64url::encode("Non")
            )
        );
        let parsed = Ask::parse(&wire).unwrap();
        assert_eq!(parsed, ask);
        assert_eq!(parsed.buttons()[0].url(), Some("/yes?x=1"));
        assert_eq!(parsed.buttons()[1].label(), "Non");
        assert_eq!(
            Ask::parse(&base64url::encode("hi"))
                .unwrap()
                .buttons()
                .len(),
            0
        );
    }

    #[test]
    fn rejects_malformed_asks() {
        let text = |s: &str| base64url::encode(s);
        let cases = [
            format!("{}~{}", text("m"), "!!"),
            format!("{}~{}~{}~{}", text("m"), text("a"), text("b"), text("c")),
            format!("{}~{}", text("m"), text("a;not-a-path")),
            format!("{}~{}", text("m"), text("a;//evil.example/")),
            base64url::encode([0xff, 0xfe]),
            "m=".to_owned(),
        ];
        for case in cases {
            assert!(Ask::parse(&case).is_err(), "{case:?}");
        }
        assert!(AskButton::new("a;b", None).is_err());
        assert!(AskButton::new("ok", Some("https://example.com/x".into())).is_ok());
    }

    #[test]
    fn plain_text_neutralises_terminal_controls() {
        assert_eq!(plain_text("a\u{1b}[2Jb\nc\rd"), "a\u{fffd}[2Jb\nc\u{fffd}d");
    }
}
