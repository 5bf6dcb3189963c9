//! A checked cursor over untrusted bytes: every read either succeeds whole or
//! names the field that did not fit, so block parsers never index a slice
//! directly (STYLE 7) and a bad file says where it went wrong.

/// Why a block's bytes do not hold its fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A field runs past the end of the bytes.
    #[error("field `{field}` needs {needed} bytes but only {available} remain")]
    Short {
        /// The field being read (`"salt"`, `"tag"`).
        field: &'static str,
        /// The field's length.
        needed: usize,
        /// Bytes left where it starts.
        available: usize,
    },
    /// Bytes remain after the last field.
    #[error("{count} bytes trail the last field")]
    Trailing {
        /// How many.
        count: usize,
    },
}

impl FieldError {
    /// This error as the parse failure of a block of `block_type`.
    pub(crate) fn in_block(self, block_type: u16) -> super::FormatError {
        super::FormatError::BlockFields {
            block_type,
            error: self,
        }
    }
}

/// Reads fixed-size little-endian fields from the front of a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            offset: 0,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Whether everything has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Succeeds only when everything has been consumed.
    pub(crate) fn finish(&self) -> Result<(), FieldError> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(FieldError::Trailing { count }),
        }
    }

    /// Reads the remaining fields with `read`, then checks that none trail.
    pub(crate) fn read_to_end<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, FieldError>,
    ) -> Result<T, FieldError> {
        let value = read(self)?;
        self.finish()?;
        Ok(value)
    }

    /// Takes the next `len` bytes as `field`. A failed read consumes nothing.
    pub(crate) fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], FieldError> {
        let (head, tail) = self.rest.split_at_checked(len).ok_or(FieldError::Short {
            field,
            needed: len,
            available: self.rest.len(),
        })?;
        self.rest = tail;
        self.offset += len;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub(crate) fn take_array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], FieldError> {
        let bytes = self.take(field, N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, FieldError> {
        self.take_array::<1>(field).map(|[b]| b)
    }

    /// Reads a little-endian `u16`.
    pub(crate) fn u16_le(&mut self, field: &'static str) -> Result<u16, FieldError> {
        self.take_array(field).map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32_le(&mut self, field: &'static str) -> Result<u32, FieldError> {
        self.take_array(field).map(u32::from_le_bytes)
    }

    /// Peeks at a little-endian `u16` without consuming it.
    pub(crate) fn peek_u16_le(&self, field: &'static str) -> Result<u16, FieldError> {
        self.clone().u16_le(field)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_to_overrun() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.peek_u16_le("b"), Ok(0x0302));
        assert_eq!(r.u16_le("b"), Ok(0x0302));
        assert_eq!(r.offset(), 3);
        assert_eq!(r.u32_le("c"), Ok(0x0706_0504));
        assert!(r.is_empty());
        assert_eq!(r.finish(), Ok(()));
        assert!(r.u8("d").is_err());
        let mut short = Reader::new(&[1, 2, 3]);
        assert!(short.u32_le("e").is_err());
        // A failed read consumes nothing.
        assert_eq!(short.remaining(), &[1, 2, 3]);
        assert_eq!(short.take("f", 3), Ok(&[1u8, 2, 3][..]));
    }

    #[test]
    fn a_short_field_is_named_with_its_lengths() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        r.u16_le("length").unwrap();
        assert_eq!(
            r.u32_le("iterations"),
            Err(FieldError::Short {
                field: "iterations",
                needed: 4,
                available: 3
            })
        );
        assert_eq!(
            r.take_array::<16>("salt"),
            Err(FieldError::Short {
                field: "salt",
                needed: 16,
                available: 3
            })
        );
        assert_eq!(
            r.peek_u16_le("type").map(|_| ()),
            Ok(()),
            "the failed reads left the bytes in place"
        );
    }

    #[test]
    fn trailing_bytes_are_counted() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        r.u16_le("length").unwrap();
        assert_eq!(r.finish(), Err(FieldError::Trailing { count: 3 }));
        assert_eq!(
            r.finish().unwrap_err().to_string(),
            "3 bytes trail the last field"
        );
    }
}
