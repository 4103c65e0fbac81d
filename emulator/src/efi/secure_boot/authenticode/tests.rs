use super::*;
use std::vec::Vec;

/// A small PE32+ image of two sections whose raw data lie in the file in the opposite order of
/// their section table entries, then `trailing` bytes, then a certificate table `certs`.
fn image(trailing: &[u8], certs: &[u8]) -> Vec<u8> {
    let mut f = std::vec![0u8; 0x400];
    f[..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    f[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    f[coff..coff + 2].copy_from_slice(&0xaa64u16.to_le_bytes());
    f[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
    f[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    f[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
    f[opt + 56..opt + 60].copy_from_slice(&0x3000u32.to_le_bytes()); // SizeOfImage
    f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfHeaders
    f[opt + 64..opt + 68].copy_from_slice(&0xdead_beefu32.to_le_bytes()); // CheckSum: not hashed
    f[opt + 68..opt + 70].copy_from_slice(&10u16.to_le_bytes());
    f[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let sections = opt + 240;
    for (i, (name, rva, raw)) in [(b".text", 0x1000u32, 0x300u32), (b".data", 0x2000, 0x200)].iter().enumerate() {
        let s = sections + i * 40;
        f[s..s + 5].copy_from_slice(&name[..]);
        f[s + 8..s + 12].copy_from_slice(&0x100u32.to_le_bytes());
        f[s + 12..s + 16].copy_from_slice(&rva.to_le_bytes());
        f[s + 16..s + 20].copy_from_slice(&0x100u32.to_le_bytes());
        f[s + 20..s + 24].copy_from_slice(&raw.to_le_bytes());
    }
    f[0x200..0x300].fill(0xda);
    f[0x300..0x400].fill(0x7e);
    f.extend_from_slice(trailing);
    if !certs.is_empty() {
        let at = f.len() as u32;
        let dir = opt + 112 + 4 * 8;
        f[dir..dir + 4].copy_from_slice(&at.to_le_bytes());
        f[dir + 4..dir + 8].copy_from_slice(&(certs.len() as u32).to_le_bytes());
        f.extend_from_slice(certs);
    }
    f
}

/// The same digest, spelled out from the specification's steps: the certificate directory's
/// entry is skipped whenever the header has one, signed or not.
fn by_hand(f: &[u8], trailing: usize) -> Vec<u8> {
    let opt = 0x44 + 20;
    let (checksum, dir) = (opt + 64, opt + 112 + 32);
    let mut h = HashAlg::Sha256.hasher();
    h.update(&f[..checksum]);
    h.update(&f[checksum + 4..dir]);
    h.update(&f[dir + 8..0x200]);
    // .data's raw data comes first in the file.
    h.update(&f[0x200..0x300]);
    h.update(&f[0x300..0x400]);
    h.update(&f[0x400..0x400 + trailing]);
    h.finish().as_bytes().to_vec()
}

fn cert(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&(8 + data.len() as u32).to_le_bytes());
    c.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    c.extend_from_slice(&kind.to_le_bytes());
    c.extend_from_slice(data);
    c.resize(c.len().next_multiple_of(8), 0);
    c
}

#[test]
fn the_digest_follows_the_specification() {
    let unsigned = image(b"trailing", &[]);
    let pe = PeImage::parse(&unsigned).unwrap();
    assert_eq!(digest_with(HashAlg::Sha256, &pe).unwrap().as_bytes(), by_hand(&unsigned, 8).as_slice());
    // Signing adds the certificate table and fills its directory entry; neither changes the
    // digest, nor does the checksum.
    let pkcs7 = cert(WIN_CERT_TYPE_PKCS_SIGNED_DATA, b"0\x82 a PKCS#7 SignedData");
    let mut signed = image(b"trailing", &pkcs7);
    signed[0x44 + 20 + 64] ^= 0xff;
    let pe = PeImage::parse(&signed).unwrap();
    assert_eq!(digest_with(HashAlg::Sha256, &pe).unwrap().as_bytes(), by_hand(&signed, 8).as_slice());
    assert_eq!(digest_with(HashAlg::Sha256, &pe).unwrap(), digest_with(HashAlg::Sha256, &PeImage::parse(&unsigned).unwrap()).unwrap());
    // A changed byte in a section does change it.
    let mut tampered = signed.clone();
    tampered[0x250] ^= 1;
    assert_ne!(digest_with(HashAlg::Sha256, &PeImage::parse(&tampered).unwrap()).unwrap(), digest_with(HashAlg::Sha256, &pe).unwrap());
}

#[test]
fn the_certificate_table_is_walked_and_checked() {
    let (a, b) = (cert(WIN_CERT_TYPE_PKCS_SIGNED_DATA, b"first signature"), cert(WIN_CERT_TYPE_EFI_GUID, b"second"));
    let f = image(b"", &[a.clone(), b].concat());
    let pe = PeImage::parse(&f).unwrap();
    let certs: Vec<_> = certificates(&pe).collect::<Result<_, _>>().unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!((certs[0].revision, certs[0].certificate_type, certs[0].data), (0x0200, 2, &b"first signature"[..]));
    assert_eq!((certs[1].certificate_type, certs[1].data), (WIN_CERT_TYPE_EFI_GUID, &b"second"[..]));
    assert_eq!(certificates(&PeImage::parse(&image(b"", &[])).unwrap()).count(), 0, "unsigned: no certificates");
    // A dwLength past the table stops the walk with an error.
    let mut long = a;
    long[..4].copy_from_slice(&0x1000u32.to_le_bytes());
    let f = image(b"", &long);
    let got: Vec<_> = certificates(&PeImage::parse(&f).unwrap()).collect();
    assert_eq!(got, [Err(AuthenticodeError { what: "WIN_CERTIFICATE dwLength past the certificate table", value: 0x400 })]);
    // A table that claims more than the file.
    let mut past = image(b"", &cert(2, b"x"));
    let dir = 0x44 + 20 + 112 + 32;
    past[dir + 4..dir + 8].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let pe = PeImage::parse(&past).unwrap();
    assert_eq!(certificate_table(&pe).unwrap_err().what, "certificate table outside the file, or inside its headers");
    assert!(digest_with(HashAlg::Sha256, &pe).is_err());
    assert!(matches!(certificates(&pe).next(), Some(Err(_))));
}
