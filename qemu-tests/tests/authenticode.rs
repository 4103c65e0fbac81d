//! Secure Boot verification of real signed binaries (host side): Authenticode digests against
//! the digest each signature carries, and the verifier's verdicts against the databases of
//! Debian's EDK2 variable stores: Microsoft's over Debian's shim, Debian's over its GRUB and
//! kernels, and sbsign's over the emulator Image signed at test time with EDK2's test key.

use efi_emulator::efi::pe::PeImage;
use efi_emulator::efi::secure_boot::authenticode::{certificates, digest_with, WIN_CERT_TYPE_PKCS_SIGNED_DATA};
use efi_emulator::efi::secure_boot::hash::HashAlg;
use efi_emulator::efi::secure_boot::signature_list::{CERT_SHA256, CERT_X509};
use efi_emulator::efi::secure_boot::verify::{verify, Accepted, Databases, Reason};
use efi_emulator_loader::signature_list::list;
use qemu_tests::payloads;
use std::path::Path;

/// The SHA-256 digest an Authenticode signature signs: its SpcIndirectDataContent holds a
/// DigestInfo, `SEQUENCE { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32) }`; those
/// bytes occur nowhere else in a PKCS#7 SignedData (the signer's own digest algorithm is not
/// followed by a 32-byte OCTET STRING).
fn signed_digest(pkcs7: &[u8]) -> Vec<u8> {
    const SHA256_NULL_OCTETS32: [u8; 15] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
    let at = pkcs7.windows(SHA256_NULL_OCTETS32.len()).position(|w| w == SHA256_NULL_OCTETS32).expect("a SHA-256 DigestInfo in the signature");
    pkcs7[at + SHA256_NULL_OCTETS32.len()..][..32].to_vec()
}

/// Our digest of `path` equals the one its first signature carries.
fn agrees(path: &Path) {
    let file = std::fs::read(path).unwrap();
    let pe = PeImage::parse(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let first = certificates(&pe).next().expect("signed").unwrap();
    assert_eq!(first.certificate_type, WIN_CERT_TYPE_PKCS_SIGNED_DATA, "{}", path.display());
    let ours = digest_with(HashAlg::Sha256, &pe).unwrap();
    assert_eq!(ours.as_bytes(), signed_digest(first.data), "{}: our Authenticode digest differs from the signed one", path.display());
}

#[test]
fn digests_match_what_real_signatures_sign() {
    let p = payloads();
    let loaders = p.loaders().unwrap();
    agrees(&loaders.shim.path);
    agrees(&loaders.grub.signed);
    for k in &p.kernels {
        agrees(&k.image);
    }
}

#[test]
fn digest_matches_what_sbsign_signs() {
    let (keys, unsigned, signed) = qemu_tests::snakeoil_and_emulator("authenticode");
    agrees(&signed);
    // Signing changes nothing the digest covers: the unsigned file has the same one.
    let (a, b) = (std::fs::read(&unsigned).unwrap(), std::fs::read(&signed).unwrap());
    assert_eq!(digest_with(HashAlg::Sha256, &PeImage::parse(&a).unwrap()).unwrap(), digest_with(HashAlg::Sha256, &PeImage::parse(&b).unwrap()).unwrap());
    let _ = std::fs::remove_dir_all(keys.dir);
}

use xtask::harness::secure_boot::MS_VARS;

fn variable(store: &str, name: &str) -> Vec<u8> {
    use xtask::harness::secure_boot::{read_variable, IMAGE_SECURITY_DATABASE};
    let bytes = std::fs::read(store).unwrap_or_else(|e| panic!("{store}: {e} (cargo xtask setup installs qemu-efi-aarch64)"));
    read_variable(&bytes, name, &IMAGE_SECURITY_DATABASE).unwrap_or_else(|| panic!("no {name} in {store}"))
}

fn verdict(path: &Path, dbs: &Databases) -> Result<String, Reason> {
    let file = std::fs::read(path).unwrap();
    let pe = PeImage::parse(&file).unwrap();
    match verify(&pe, dbs) {
        Ok(Accepted::Signed { signer, anchor }) => Ok(format!("{signer} by {anchor}")),
        Ok(Accepted::HashListed(alg)) => Ok(format!("hash {alg:?}")),
        Err(r) => Err(r.reason),
    }
}

/// Microsoft's db and dbx as Debian's AAVMF ships them: its UEFI CA 2011 signed the shim, not
/// Debian's GRUB or kernels (shim vouches for those with Debian's certificate).
#[test]
fn microsoft_db_accepts_shim_and_nothing_debian_signed_itself() {
    let (db, dbx) = (variable(MS_VARS, "db"), variable(MS_VARS, "dbx"));
    let dbs = Databases { db: &db, dbx: &dbx, ..Default::default() };
    let p = payloads();
    let loaders = p.loaders().unwrap();
    let shim = verdict(&loaders.shim.path, &dbs).expect("shim accepted");
    assert!(shim.contains("Microsoft Windows UEFI Driver Publisher") && shim.contains("Microsoft Corporation UEFI CA 2011"), "{shim}");
    assert_eq!(verdict(&loaders.grub.signed, &dbs), Err(Reason::UnknownSigner));
    for k in &p.kernels {
        assert_eq!(verdict(&k.image, &dbs), Err(Reason::UnknownSigner), "{}", k.image.display());
    }
    // One byte of shim's code changed: its signature no longer matches.
    let mut tampered = std::fs::read(&loaders.shim.path).unwrap();
    let pe = PeImage::parse(&tampered).unwrap();
    let text = pe.sections().find(|s| s.name() == ".text").unwrap().raw_offset as usize;
    tampered[text + 0x100] ^= 0x01;
    let pe = PeImage::parse(&tampered).unwrap();
    assert_eq!(verify(&pe, &dbs).unwrap_err().reason, Reason::DigestMismatch);
    // Shim's hash added to dbx: refused although its signer is trusted.
    let original = std::fs::read(&loaders.shim.path).unwrap();
    let hash = digest_with(HashAlg::Sha256, &PeImage::parse(&original).unwrap()).unwrap();
    let dbx = [dbx.clone(), sha256_list(&[hash.as_bytes()])].concat();
    let dbs = Databases { db: &db, dbx: &dbx, ..Default::default() };
    assert_eq!(verify(&PeImage::parse(&original).unwrap(), &dbs).unwrap_err().reason, Reason::Revoked("the image's hash"));
}

fn sha256_list(hashes: &[&[u8]]) -> Vec<u8> {
    list(&CERT_SHA256, hashes)
}

/// EDK2's test key in db: sbsign's signature is accepted, the unsigned and the tampered
/// image are refused, each for its reason; the image's hash alone in db is enough.
#[test]
fn snakeoil_db_accepts_what_its_key_signed() {
    let (keys, unsigned, signed) = qemu_tests::snakeoil_and_emulator("verify");
    let db = variable(xtask::harness::secure_boot::SNAKEOIL_VARS, "db");
    let dbs = Databases { db: &db, ..Default::default() };
    let accepted = verdict(&signed, &dbs).expect("signed by the db key");
    assert!(accepted.contains("SnakeOil"), "{accepted}");
    assert_eq!(verdict(&unsigned, &dbs), Err(Reason::NotSigned));
    let mut tampered = std::fs::read(&signed).unwrap();
    tampered[0x1000 + 64] ^= 0x80;
    assert_eq!(verify(&PeImage::parse(&tampered).unwrap(), &dbs).unwrap_err().reason, Reason::DigestMismatch);
    // Microsoft's db does not know the test key.
    let ms = variable(MS_VARS, "db");
    assert_eq!(verdict(&signed, &Databases { db: &ms, ..Default::default() }), Err(Reason::UnknownSigner));
    // The unsigned image by its hash.
    let hash = digest_with(HashAlg::Sha256, &PeImage::parse(&std::fs::read(&unsigned).unwrap()).unwrap()).unwrap();
    let by_hash = sha256_list(&[hash.as_bytes()]);
    assert_eq!(verdict(&unsigned, &Databases { db: &by_hash, ..Default::default() }), Ok("hash Sha256".into()));
    assert_eq!(verdict(&unsigned, &Databases { db: &by_hash, dbx: &by_hash, ..Default::default() }), Err(Reason::Revoked("the image's hash")));
    // The test certificate in dbx revokes what it signed; MokListRT trusts like db.
    let der = certificate_der(xtask::harness::secure_boot::SNAKEOIL_CERT);
    let list = list(&CERT_X509, &[&der]);
    assert!(verdict(&signed, &Databases { mok: &list, ..Default::default() }).is_ok(), "MokListRT trusts");
    assert_eq!(verdict(&signed, &Databases { db: &db, dbx: &list, ..Default::default() }), Err(Reason::Revoked("a certificate of its signature")));
    assert_eq!(verdict(&signed, &Databases { db: &db, mokx: &list, ..Default::default() }), Err(Reason::Revoked("a certificate of its signature")));
    let _ = std::fs::remove_dir_all(keys.dir);
}

/// A PEM certificate file as DER, by OpenSSL.
fn certificate_der(pem: &str) -> Vec<u8> {
    let out = std::process::Command::new("openssl").args(["x509", "-outform", "DER", "-in", pem]).output().unwrap();
    assert!(out.status.success(), "openssl x509 {pem}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
