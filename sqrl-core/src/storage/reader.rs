//! A checked cursor over untrusted bytes: every read either succeeds whole or
//! returns `None`, so block parsers never index a slice directly (STYLE 7).

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

    /// Takes the next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(len)?;
        self.rest = tail;
        self.offset += len;
        Some(head)
    }

    /// Takes the next `N` bytes as an array.
    pub(crate) fn take_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|bytes| bytes.try_into().ok())
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take_array::<1>().map(|[b]| b)
    }

    /// Reads a little-endian `u16`.
    pub(crate) fn u16_le(&mut self) -> Option<u16> {
        self.take_array().map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32_le(&mut self) -> Option<u32> {
        self.take_array().map(u32::from_le_bytes)
    }

    /// Peeks at a little-endian `u16` without consuming it.
    pub(crate) fn peek_u16_le(&self) -> Option<u16> {
        self.clone().u16_le()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_to_overrun() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.peek_u16_le(), Some(0x0302));
        assert_eq!(r.u16_le(), Some(0x0302));
        assert_eq!(r.offset(), 3);
        assert_eq!(r.u32_le(), Some(0x0706_0504));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
        let mut short = Reader::new(&[1, 2, 3]);
        assert_eq!(short.u32_le(), None);
        // A failed read consumes nothing.
        assert_eq!(short.remaining(), &[1, 2, 3]);
        assert_eq!(short.take(3), Some(&[1u8, 2, 3][..]));
    }
}
