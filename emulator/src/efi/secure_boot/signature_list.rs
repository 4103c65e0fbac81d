//! The contents of `db`, `dbx` and shim's `MokListRT`/`MokListXRT`: a run of
//! `EFI_SIGNATURE_LIST`s (UEFI 2.10 §32.4.1), each a type GUID, its sizes, a header and
//! `EFI_SIGNATURE_DATA` entries (owner GUID, then the data).

use super::hash::HashAlg;
use crate::mem::le_u32;
use r_efi::efi::Guid;

pub const CERT_X509: Guid = Guid::from_fields(0xa5c059a1, 0x94e4, 0x4aa7, 0x87, 0xb5, &[0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72]);
pub const CERT_SHA1: Guid = Guid::from_fields(0x826ca512, 0xcf10, 0x4ac9, 0xb1, 0x87, &[0xbe, 0x01, 0x49, 0x66, 0x31, 0xbd]);
pub const CERT_SHA256: Guid = Guid::from_fields(0xc1c41626, 0x504c, 0x4092, 0xac, 0xa9, &[0x41, 0xf9, 0x36, 0x93, 0x43, 0x28]);
pub const CERT_SHA384: Guid = Guid::from_fields(0xff3e5307, 0x9fd0, 0x48c9, 0x85, 0xf1, &[0x8a, 0xd5, 0x6c, 0x70, 0x1e, 0x01]);
pub const CERT_SHA512: Guid = Guid::from_fields(0x093e0fae, 0xa6c4, 0x4f50, 0x9f, 0x1b, &[0xd4, 0x1b, 0x2b, 0x89, 0xc1, 0x9a]);
pub const CERT_X509_SHA256: Guid = Guid::from_fields(0x3bd2a492, 0x96c0, 0x4079, 0xb4, 0x20, &[0xfc, 0xf9, 0x8e, 0xf1, 0x03, 0xed]);
pub const CERT_X509_SHA384: Guid = Guid::from_fields(0x7076876e, 0x80c2, 0x4ee6, 0xaa, 0xd2, &[0x28, 0xb3, 0x49, 0xa6, 0x86, 0x5b]);
pub const CERT_X509_SHA512: Guid = Guid::from_fields(0x446dbf63, 0x2502, 0x4cda, 0xbc, 0xfa, &[0x24, 0x65, 0xd2, 0xb0, 0xfe, 0x9d]);

/// One entry, by what it lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A DER certificate.
    X509(&'a [u8]),
    /// An Authenticode image digest.
    ImageHash(HashAlg, &'a [u8]),
    /// The digest of a certificate's TBSCertificate (the revocation time after it is ignored:
    /// EDK2 honours it only for time-stamped signatures, which the emulator does not check).
    CertificateHash(HashAlg, &'a [u8]),
    /// A type the emulator does not use (RSA-2048 keys, PKCS7 blobs, ...).
    Other,
}

/// A list that does not fit its variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub offset: usize,
}

fn classify<'a>(ty: &Guid, data: &'a [u8]) -> Entry<'a> {
    let hash = |alg: HashAlg| data.get(..alg.digest_len());
    let kinds = [(CERT_SHA1, HashAlg::Sha1), (CERT_SHA256, HashAlg::Sha256), (CERT_SHA384, HashAlg::Sha384), (CERT_SHA512, HashAlg::Sha512)];
    if let Some((_, alg)) = kinds.iter().find(|(g, alg)| g == ty && data.len() == alg.digest_len()) {
        return Entry::ImageHash(*alg, data);
    }
    let kinds = [(CERT_X509_SHA256, HashAlg::Sha256), (CERT_X509_SHA384, HashAlg::Sha384), (CERT_X509_SHA512, HashAlg::Sha512)];
    if let Some((_, alg)) = kinds.iter().find(|(g, _)| g == ty) {
        return hash(*alg).map_or(Entry::Other, |h| Entry::CertificateHash(*alg, h));
    }
    if *ty == CERT_X509 {
        return Entry::X509(data);
    }
    Entry::Other
}

/// Every entry of every list, in order; a list that does not fit ends the walk with an error
/// (a caller treats a broken `dbx` as revoking everything).
pub fn entries(bytes: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, Malformed>> + '_ {
    let (mut list, mut entry, mut failed) = (0usize, None::<(usize, usize, usize, Guid)>, false);
    core::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        if let Some((at, end, size, ty)) = entry {
            if at < end {
                entry = Some((at + size, end, size, ty));
                // EFI_SIGNATURE_DATA: owner GUID, then the signature.
                return Some(Ok(classify(&ty, &bytes[at + 16..at + size])));
            }
            entry = None;
        }
        if list >= bytes.len() {
            return None;
        }
        let header = (|| {
            let ty = Guid::from_bytes(bytes.get(list..list + 16)?.try_into().ok()?);
            let (list_size, header_size, size) = (le_u32(bytes, list + 16)? as usize, le_u32(bytes, list + 20)? as usize, le_u32(bytes, list + 24)? as usize);
            let end = list.checked_add(list_size).filter(|&e| e <= bytes.len())?;
            let first = list.checked_add(28)?.checked_add(header_size)?;
            // The entries must tile the rest of the list exactly.
            (size > 16 && first <= end && (end - first) % size == 0).then_some((first, end, size, ty))
        })();
        match header {
            Some(e) => {
                list = e.1;
                entry = Some(e);
            }
            None => {
                failed = true;
                return Some(Err(Malformed { offset: list }));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use efi_emulator_loader::signature_list::list;
    use std::vec::Vec;

    #[test]
    fn walks_lists_of_every_kind_and_stops_at_a_broken_one() {
        let cert = b"0\x03\x02\x01\x05";
        let x509_hash = [[7u8; 32].as_slice(), &[0u8; 16]].concat();
        let bytes = [
            list(&CERT_SHA256, &[&[1; 32], &[2; 32]]),
            list(&CERT_X509, &[cert]),
            list(&CERT_X509_SHA256, &[&x509_hash]),
            list(&CERT_SHA1, &[&[3; 20]]),
            list(&Guid::from_fields(1, 2, 3, 4, 5, &[6; 6]), &[b"unknown"]),
        ]
        .concat();
        let got: Vec<_> = entries(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            [
                Entry::ImageHash(HashAlg::Sha256, &[1; 32]),
                Entry::ImageHash(HashAlg::Sha256, &[2; 32]),
                Entry::X509(cert),
                Entry::CertificateHash(HashAlg::Sha256, &[7; 32]),
                Entry::ImageHash(HashAlg::Sha1, &[3; 20]),
                Entry::Other
            ]
        );
        assert_eq!(entries(&[]).count(), 0);
        // A list size past the variable; entries that do not tile the list.
        let mut long = list(&CERT_SHA256, &[&[1; 32]]);
        long[16] += 1;
        let mut ragged = list(&CERT_SHA256, &[&[1; 32]]);
        ragged[24] = 47;
        for bad in [long, ragged, std::vec![0; 10]] {
            let all = [list(&CERT_SHA1, &[&[3; 20]]), bad].concat();
            let got: Vec<_> = entries(&all).collect();
            assert_eq!(got, [Ok(Entry::ImageHash(HashAlg::Sha1, &[3; 20])), Err(Malformed { offset: 64 })]);
        }
    }
}
