//! The Secure Boot verifier on arbitrary input: a signature database and a PE file, each read
//! as hostile. Input: a little-endian u16 length, that many bytes of `db` (also used as `dbx`
//! and the MOK lists, so revocation paths run too), then the PE file. The verdict is an error
//! or an acceptance, never a panic; the parsers below it (DER, X.509, PKCS#7, signature lists,
//! the certificate table) run on the same bytes directly too.
#![no_main]
use efi_emulator::efi::pe::PeImage;
use efi_emulator::efi::secure_boot::authenticode::{certificates, digest_with};
use efi_emulator::efi::secure_boot::hash::HashAlg;
use efi_emulator::efi::secure_boot::pkcs7::Authenticode;
use efi_emulator::efi::secure_boot::signature_list::entries;
use efi_emulator::efi::secure_boot::verify::{verify, Databases};
use efi_emulator::efi::secure_boot::x509::Certificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let (db, file) = rest.split_at(usize::from(u16::from_le_bytes(*len)).min(rest.len()));
    for e in entries(db).take(4096) {
        if let Ok(efi_emulator::efi::secure_boot::signature_list::Entry::X509(der)) = e {
            if let Ok(c) = Certificate::parse(der) {
                let _ = c.signed_by(&c);
                let _ = format!("{} {}", c.subject, c.issuer);
            }
        }
    }
    if let Ok(a) = Authenticode::parse(file) {
        let _ = a.verify_signer();
    }
    let Ok(pe) = PeImage::parse(file) else { return };
    let _ = digest_with(HashAlg::Sha256, &pe);
    for c in certificates(&pe).take(64) {
        let Ok(c) = c else { break };
        let start = c.data.as_ptr() as usize - file.as_ptr() as usize;
        assert!(start + c.data.len() <= file.len());
    }
    let _ = verify(&pe, &Databases { db, dbx: &[], mok: &[], mokx: &[] });
    let _ = verify(&pe, &Databases { db, dbx: db, mok: db, mokx: db });
});
