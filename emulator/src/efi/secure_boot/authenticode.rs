//! Authenticode: the digest of a PE image "as signed", and its certificate table. What a
//! Secure Boot verifier checks a signature against (UEFI 2.10 §32.2.6, the PE/COFF
//! specification's "Calculating the PE Image Hash"), computed as EDK2's DxeImageVerificationLib
//! computes it:
//!
//! 1. the headers up to `CheckSum`, then from after it up to the certificate table's data
//!    directory entry, then from after that entry to `SizeOfHeaders` (without a certificate
//!    directory, from after `CheckSum` to `SizeOfHeaders`);
//! 2. each section's raw data, in the order of `PointerToRawData`;
//! 3. what follows, up to the certificate table: the file's size less the bytes hashed so far
//!    and the certificate table's size.
//!
//! The certificate table is a list of `WIN_CERTIFICATE`s (length, revision, type, data), each
//! 8-byte aligned, at the file offset the security directory names. Both readers take hostile
//! input: every offset is checked, nothing allocates.

use super::hash::{Hash, HashAlg};
use crate::efi::pe::PeImage;
use crate::mem::{le_u16, le_u32};
use core::fmt;

/// The data directory of the certificate table (its "RVA" is a file offset).
pub const SECURITY_DIRECTORY: u32 = 4;
/// `WIN_CERT_REVISION_2_0`.
pub const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`: a PKCS#7 SignedData (what sbsign and signtool write).
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
/// `WIN_CERT_TYPE_EFI_GUID`: a `WIN_CERTIFICATE_UEFI_GUID` (EFI_CERT_TYPE_PKCS7_GUID and others).
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;

/// Why an image has no digest or no certificate table as signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticodeError {
    pub what: &'static str,
    pub value: u64,
}

impl fmt::Display for AuthenticodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authenticode: {} ({:#x})", self.what, self.value)
    }
}

fn fail<T>(what: &'static str, value: impl Into<u64>) -> Result<T, AuthenticodeError> {
    Err(AuthenticodeError { what, value: value.into() })
}

/// The certificate table's extent in the file, when the image has one.
pub fn certificate_table(pe: &PeImage) -> Result<Option<core::ops::Range<usize>>, AuthenticodeError> {
    let Some((offset, size)) = pe.directory(SECURITY_DIRECTORY) else { return Ok(None) };
    let (start, end) = (offset as usize, offset as u64 + size as u64);
    if end > pe.file().len() as u64 || (start as u32) < pe.size_of_headers {
        return fail("certificate table outside the file, or inside its headers", offset);
    }
    Ok(Some(start..end as usize))
}

/// The Authenticode digest of `pe` with `alg` (SHA-256 for every signature this emulator
/// meets; SHA-1, -384 and -512 where a signature or a `db`/`dbx` entry asks for them).
pub fn digest_with(alg: HashAlg, pe: &PeImage) -> Result<Hash, AuthenticodeError> {
    let file = pe.file();
    let mut h = alg.hasher();
    let checksum = pe.optional_header_offset() + 64;
    let headers = pe.size_of_headers as usize;
    if headers > file.len() || checksum + 4 > headers {
        return fail("SizeOfHeaders", headers as u64);
    }
    h.update(&file[..checksum]);
    match pe.directory_entry_offset(SECURITY_DIRECTORY) {
        Some(entry) if entry + 8 <= headers => {
            h.update(&file[checksum + 4..entry]);
            h.update(&file[entry + 8..headers]);
        }
        _ => h.update(&file[checksum + 4..headers]),
    }
    // Sections by PointerToRawData, without allocating: each step takes the next one after the
    // last offset hashed (ties by table order).
    let mut hashed = headers as u64;
    let mut last: Option<(u32, usize)> = None;
    loop {
        let next = pe
            .sections()
            .enumerate()
            .filter(|(_, s)| s.raw_size != 0)
            .filter(|(i, s)| last.is_none_or(|(o, j)| (s.raw_offset, *i) > (o, j)))
            .min_by_key(|(i, s)| (s.raw_offset, *i));
        let Some((i, s)) = next else { break };
        let range = s.raw_offset as usize..s.raw_offset as usize + s.raw_size as usize;
        h.update(file.get(range).ok_or(AuthenticodeError { what: "section raw data outside the file", value: s.raw_offset as u64 })?);
        hashed += s.raw_size as u64;
        last = Some((s.raw_offset, i));
    }
    let certs = certificate_table(pe)?.map_or(0, |r| r.len() as u64);
    let file_len = file.len() as u64;
    if file_len > hashed + certs {
        h.update(&file[hashed as usize..(file_len - certs) as usize]);
    }
    Ok(h.finish())
}

/// One `WIN_CERTIFICATE` of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinCertificate<'a> {
    pub revision: u16,
    pub certificate_type: u16,
    /// `bCertificate`: after the 8-byte header, `dwLength` - 8 bytes.
    pub data: &'a [u8],
}

/// The certificates of the table, in order; an entry that does not fit ends the walk with an
/// error.
pub fn certificates<'a>(pe: &PeImage<'a>) -> impl Iterator<Item = Result<WinCertificate<'a>, AuthenticodeError>> + 'a {
    let file = pe.file();
    let (mut at, end, mut first_error) = match certificate_table(pe) {
        Ok(Some(r)) => (r.start, r.end, None),
        Ok(None) => (0, 0, None),
        Err(e) => (0, 0, Some(e)),
    };
    let mut failed = false;
    core::iter::from_fn(move || {
        if let Some(e) = first_error.take() {
            return Some(Err(e));
        }
        if failed || at >= end {
            return None;
        }
        let entry = (|| {
            let len = le_u32(file, at)? as usize;
            let (revision, certificate_type) = (le_u16(file, at + 4)?, le_u16(file, at + 6)?);
            let data = file.get(at + 8..at.checked_add(len).filter(|&e| e <= end && len >= 8)?)?;
            Some((len, WinCertificate { revision, certificate_type, data }))
        })();
        match entry {
            Some((len, cert)) => {
                at += len.next_multiple_of(8);
                Some(Ok(cert))
            }
            None => {
                failed = true;
                Some(Err(AuthenticodeError { what: "WIN_CERTIFICATE dwLength past the certificate table", value: at as u64 }))
            }
        }
    })
}

#[cfg(test)]
mod tests;
