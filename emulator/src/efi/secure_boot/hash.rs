//! The hash algorithms Secure Boot meets: SHA-256 for nearly everything, SHA-1, -384 and -512
//! where a certificate, a signature or a `db`/`dbx` entry names them.

use sha2::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// A digest of any of them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    bytes: [u8; 64],
    len: usize,
}

impl Hash {
    pub fn new(bytes: &[u8]) -> Self {
        let mut h = Hash { bytes: [0; 64], len: bytes.len().min(64) };
        h.bytes[..h.len].copy_from_slice(&bytes[..h.len]);
        h
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Debug for Hash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_bytes().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// An incremental hash of one of the algorithms.
pub enum Hasher {
    Sha1(super::sha1::Sha1),
    Sha256(super::sha256::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Hash {
        match self {
            Hasher::Sha1(h) => Hash::new(&h.finish()),
            Hasher::Sha256(h) => Hash::new(&h.finish()),
            Hasher::Sha384(h) => Hash::new(&h.finalize()),
            Hasher::Sha512(h) => Hash::new(&h.finalize()),
        }
    }
}

/// The OIDs' encoded contents.
pub mod oid {
    pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    /// `1.2.840.113549.1.1.n`: rsaEncryption (1) and the shaNWithRSAEncryption family.
    pub const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
}

impl HashAlg {
    pub const ALL: [HashAlg; 4] = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

    pub fn from_oid(oid: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == oid)
    }

    /// The hash of a `shaNWithRSAEncryption` signature algorithm.
    pub fn from_rsa_signature_oid(oid: &[u8]) -> Option<Self> {
        let (prefix, n) = oid.split_at_checked(oid.len().checked_sub(1)?)?;
        if prefix != oid::PKCS1 {
            return None;
        }
        match n {
            [5] => Some(HashAlg::Sha1),
            [11] => Some(HashAlg::Sha256),
            [12] => Some(HashAlg::Sha384),
            [13] => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn oid(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => oid::SHA1,
            HashAlg::Sha256 => oid::SHA256,
            HashAlg::Sha384 => oid::SHA384,
            HashAlg::Sha512 => oid::SHA512,
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlg::Sha1 => Hasher::Sha1(Default::default()),
            HashAlg::Sha256 => Hasher::Sha256(Default::default()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn digest(self, parts: &[&[u8]]) -> Hash {
        let mut h = self.hasher();
        parts.iter().for_each(|p| h.update(p));
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_and_oids() {
        // FIPS 180 "abc".
        assert_eq!(std::format!("{:?}", HashAlg::Sha1.digest(&[b"a", b"bc"])), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(std::format!("{:?}", HashAlg::Sha256.digest(&[b"abc"])), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(HashAlg::Sha384.digest(&[b"abc"]).as_bytes().len(), 48);
        assert_eq!(HashAlg::Sha512.digest(&[b"abc"]).as_bytes()[..4], [0xdd, 0xaf, 0x35, 0xa1]);
        assert_eq!(HashAlg::from_oid(oid::SHA384), Some(HashAlg::Sha384));
        let sha256_with_rsa = [oid::PKCS1, &[11]].concat();
        assert_eq!(HashAlg::from_rsa_signature_oid(&sha256_with_rsa), Some(HashAlg::Sha256));
        assert_eq!(HashAlg::from_rsa_signature_oid(&[oid::PKCS1, &[1]].concat()), None, "rsaEncryption names no hash");
        assert_eq!(HashAlg::from_rsa_signature_oid(&[]), None);
    }
}
