use super::*;

/// Made with OpenSSL: an RSA-3072 root (basicConstraints cA, keyUsage keyCertSign) and an
/// RSA-2048 leaf it signed with SHA-384 (basicConstraints cA false, serial 0x1234).
const ROOT: &[u8] = include_bytes!("test-root-ca.der");
const SIGNER: &[u8] = include_bytes!("test-signer.der");

#[test]
fn reads_what_a_chain_needs() {
    let (root, signer) = (Certificate::parse(ROOT).unwrap(), Certificate::parse(SIGNER).unwrap());
    assert_eq!(std::format!("{}", root.subject), "CN=Test Root CA, O=efi-emulator tests");
    assert_eq!(std::format!("{}", signer.subject), "CN=Test Signer");
    assert_eq!(signer.issuer, root.subject);
    assert_eq!(root.issuer, root.subject, "self-signed");
    assert_eq!((signer.version, signer.serial), (3, &[0x12, 0x34][..]));
    assert_eq!((root.key.unwrap().bits(), signer.key.unwrap().bits()), (3072, 2048));
    assert_eq!((root.signature_hash, signer.signature_hash), (Some(HashAlg::Sha256), Some(HashAlg::Sha384)));
    assert!(root.may_issue() && !signer.may_issue());
    assert_eq!((root.ca, root.key_cert_sign, signer.ca), (Some(true), Some(true), Some(false)));
    assert_eq!(signer.signed_by(&root), Ok(()));
    assert_eq!(root.signed_by(&root), Ok(()));
    assert_eq!(root.signed_by(&signer), Err(RsaError::MalformedSignature), "a 3072-bit signature for a 2048-bit key");
    assert_eq!(signer.tbs.as_ptr(), SIGNER[4..].as_ptr(), "the TBSCertificate follows the outer header");
}

#[test]
fn a_changed_byte_breaks_the_signature_or_the_parse() {
    let signer = Certificate::parse(SIGNER).unwrap();
    let name_at = SIGNER.windows(11).position(|w| w == b"Test Signer").unwrap();
    let mut changed = SIGNER.to_vec();
    changed[name_at] = b'B';
    let c = Certificate::parse(&changed).unwrap();
    assert_eq!(std::format!("{}", c.subject), "CN=Best Signer");
    assert_eq!(c.signed_by(&Certificate::parse(ROOT).unwrap()), Err(RsaError::Mismatch));
    for cut in [0, 1, 4, 100, SIGNER.len() - 1] {
        assert!(Certificate::parse(&SIGNER[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(signer.der.len(), SIGNER.len());
}
