//! A reader of DER (X.690) for the few structures Secure Boot needs: one TLV at a time, never
//! allocating, every length checked against what is left. Indefinite lengths (BER) and tags of
//! more than one byte are refused: no Authenticode signature or X.509 certificate uses them.

/// Universal tags, and the context-specific ones the structures use.
pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
/// `[n]` constructed (EXPLICIT, or IMPLICIT over a SET/SEQUENCE).
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// What was wrong with the encoding, named for the structure being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DerError(pub &'static str);

/// One element: its tag, its contents, and its whole encoding (what signatures and hashes cover).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub whole: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The elements inside a constructed one.
    pub fn inner(&self) -> Der<'a> {
        Der::new(self.value)
    }
}

/// A cursor over a sequence of elements.
#[derive(Clone, Copy, Debug)]
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever its tag.
    pub fn any(&mut self, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let b = self.rest;
        let (&tag, after) = b.split_first().ok_or(DerError(what))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError(what));
        }
        let (&first, after) = after.split_first().ok_or(DerError(what))?;
        let (len, after) = match first {
            0..=0x7f => (first as usize, after),
            0x81..=0x84 => {
                let n = (first & 0x7f) as usize;
                let bytes = after.get(..n).ok_or(DerError(what))?;
                (bytes.iter().fold(0usize, |a, &x| (a << 8) | x as usize), &after[n..])
            }
            _ => return Err(DerError(what)),
        };
        let value = after.get(..len).ok_or(DerError(what))?;
        let header = b.len() - after.len();
        let whole = &b[..header + len];
        self.rest = &after[len..];
        Ok(Tlv { tag, value, whole })
    }

    /// The next element, which must have `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let t = self.any(what)?;
        if t.tag != tag {
            return Err(DerError(what));
        }
        Ok(t)
    }

    /// The next element if it has `tag` (OPTIONAL and DEFAULT fields).
    pub fn optional(&mut self, tag: u8, what: &'static str) -> Result<Option<Tlv<'a>>, DerError> {
        if self.rest.first() == Some(&tag) {
            self.any(what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A SEQUENCE's contents.
    pub fn sequence(&mut self, what: &'static str) -> Result<Der<'a>, DerError> {
        Ok(self.expect(SEQUENCE, what)?.inner())
    }

    /// An OBJECT IDENTIFIER's encoded contents (compared as bytes).
    pub fn oid(&mut self, what: &'static str) -> Result<&'a [u8], DerError> {
        Ok(self.expect(OID, what)?.value)
    }

    /// An AlgorithmIdentifier: its OID; parameters (NULL or absent for every algorithm here)
    /// are skipped.
    pub fn algorithm(&mut self, what: &'static str) -> Result<&'a [u8], DerError> {
        let mut a = self.sequence(what)?;
        let oid = a.oid(what)?;
        Ok(oid)
    }

    /// A non-negative INTEGER's magnitude, big-endian without leading zero bytes.
    pub fn unsigned(&mut self, what: &'static str) -> Result<&'a [u8], DerError> {
        let v = self.expect(INTEGER, what)?.value;
        if v.is_empty() || v[0] & 0x80 != 0 {
            return Err(DerError(what));
        }
        let zeros = v.iter().take_while(|&&b| b == 0).count();
        Ok(&v[zeros..])
    }

    /// A BIT STRING of whole bytes (no unused bits), as keys and signatures are.
    pub fn bit_string(&mut self, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.expect(BIT_STRING, what)?.value.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err(DerError(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths_and_refuses_what_does_not_fit() {
        let mut long = std::vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0xab, 256));
        let bytes = [&[0x30, 0x03, 0x02, 0x01, 0x05][..], &long].concat();
        let mut d = Der::new(&bytes);
        let seq = d.expect(SEQUENCE, "seq").unwrap();
        assert_eq!(seq.whole, &bytes[..5]);
        assert_eq!(seq.inner().unsigned("int").unwrap(), [5]);
        let octets = d.any("octets").unwrap();
        assert_eq!((octets.tag, octets.value.len(), octets.whole.len()), (OCTET_STRING, 256, 260));
        assert!(d.is_empty());
        // One byte short; indefinite length; a multi-byte tag; a negative INTEGER.
        for bad in [&long[..259], &[0x30, 0x80, 0, 0][..], &[0x1f, 0x01, 0x00][..], &[0x02, 0x01, 0x80][..]] {
            let mut d = Der::new(bad);
            assert!(d.any("x").is_err() || d.unsigned("x").is_err(), "{bad:x?}");
        }
        assert_eq!(Der::new(&[0x02, 0x03, 0x00, 0x80, 0x01]).unsigned("x").unwrap(), [0x80, 0x01]);
        assert_eq!(Der::new(&[0x03, 0x02, 0x00, 0x7f]).bit_string("x").unwrap(), [0x7f]);
        assert!(Der::new(&[0x03, 0x02, 0x01, 0x7e]).bit_string("x").is_err(), "unused bits");
    }
}
