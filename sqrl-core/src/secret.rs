//! Building blocks for secret values: wiped on drop, compared in constant time, and
//! never printed by `Debug`.

use zeroize::Zeroizing;

/// Declares a fixed-size secret byte array newtype.
///
/// The type zeroizes its bytes on drop, implements `PartialEq` through
/// [`subtle::ConstantTimeEq`], and prints only its name from `Debug`.
macro_rules! secret_bytes {
    ($(#[$meta:meta])* $vis:vis struct $name:ident([u8; $len:expr]);) => {
        $(#[$meta])*
        #[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        $vis struct $name([u8; $len]);

        impl $name {
            /// Wraps raw secret bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Borrows the raw secret bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl subtle::ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self, other).into()
            }
        }

        impl Eq for $name {}

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}
pub(crate) use secret_bytes;

/// A password as the user typed it. EnScrypt always sees its UTF-8 bytes
/// (one published client used ASCII in one mode and UTF-8 in the other, and
/// could then never decrypt a non-ASCII password).
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password. The `String` is moved in and wiped when the `Password` drops.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The UTF-8 bytes that EnScrypt consumes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The password text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Password {
    fn from(text: &str) -> Self {
        Self::new(text.to_owned())
    }
}

impl subtle::ConstantTimeEq for Password {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self, other).into()
    }
}

impl Eq for Password {}

impl core::fmt::Debug for Password {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    secret_bytes! {
        struct Demo([u8; 4]);
    }

    #[test]
    fn debug_never_prints_secret_bytes() {
        let demo = Demo::from_bytes([0xAB; 4]);
        let printed = format!("{demo:?}");
        assert_eq!(printed, "Demo(<redacted>)");
        assert_eq!(demo.as_bytes(), &[0xAB; 4]);
        let password = Password::from("hunter2");
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(
            Demo::from_bytes([1, 2, 3, 4]),
            Demo::from_bytes([1, 2, 3, 4])
        );
        assert_ne!(
            Demo::from_bytes([1, 2, 3, 4]),
            Demo::from_bytes([1, 2, 3, 5])
        );
        assert_eq!(Password::from("a"), Password::from("a"));
        assert_ne!(Password::from("a"), Password::from("ab"));
    }
}
