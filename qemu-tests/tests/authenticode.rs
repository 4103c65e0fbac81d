//! Authenticode digests of real signed binaries (host side), against the digest each
//! signature itself carries: Microsoft's over Debian's shim, Debian's over its GRUB and kernels,
//! and sbsign's over the emulator Image signed at test time with EDK2's test key.

use efi_emulator::efi::pe::PeImage;
use efi_emulator::efi::secure_boot::authenticode::{certificates, digest, WIN_CERT_TYPE_PKCS_SIGNED_DATA};
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
    let ours = digest::<sha2::Sha256>(&pe).unwrap();
    assert_eq!(ours.to_vec(), signed_digest(first.data), "{}: our Authenticode digest differs from the signed one", path.display());
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
    let dir = std::env::temp_dir().join(format!("efi-emulator-authenticode-{}", std::process::id()));
    let keys = xtask::secure_boot::Snakeoil::new(&dir).unwrap();
    let (unsigned, signed) = (dir.join("efi-emulator.efi"), dir.join("efi-emulator.signed.efi"));
    std::fs::write(&unsigned, qemu_tests::emulator_image()).unwrap();
    keys.sign(&unsigned, &signed).unwrap();
    agrees(&signed);
    // Signing changes nothing the digest covers: the unsigned file has the same one.
    let (a, b) = (std::fs::read(&unsigned).unwrap(), std::fs::read(&signed).unwrap());
    assert_eq!(digest::<sha2::Sha256>(&PeImage::parse(&a).unwrap()).unwrap(), digest::<sha2::Sha256>(&PeImage::parse(&b).unwrap()).unwrap());
    let _ = std::fs::remove_dir_all(dir);
}
