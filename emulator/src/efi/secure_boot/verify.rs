//! The verdict on one PE image against the signature databases, in the order EDK2's
//! DxeImageVerificationLib reaches it:
//!
//! 1. for every signature (`WIN_CERT_TYPE_PKCS_SIGNED_DATA`, or `WIN_CERT_TYPE_EFI_GUID` with
//!    `EFI_CERT_TYPE_PKCS7_GUID`; one that cannot be read is passed over): the image's digest with the signature's algorithm, refused
//!    outright if that digest, or any certificate the signature carries (itself or its
//!    TBSCertificate hash), is in a forbidding list; otherwise accepted if the signature holds
//!    (digest, signer) and its signer chains to a certificate of an allowing list (a partial
//!    chain: the signer itself, or any certificate on the way, may be the one listed; the
//!    anchor must not be revoked either);
//! 2. with no signature that did, accepted if the image's hash is in an allowing list and not
//!    in a forbidding one.
//!
//! Allowing lists are `db` and shim's `MokListRT`; forbidding ones `dbx` and `MokListXRT`.

use super::authenticode::{self, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_EFI_GUID, WIN_CERT_TYPE_PKCS_SIGNED_DATA};
use super::hash::{Hash, HashAlg};
use super::pkcs7::{Authenticode, SignerError};
use super::rsa::RsaError;
use super::signature_list::{entries, Entry};
use super::x509::{Certificate, Name};
use crate::efi::pe::PeImage;
use core::fmt;
use r_efi::efi::Guid;

/// `EFI_CERT_TYPE_PKCS7_GUID`: a `WIN_CERTIFICATE_UEFI_GUID` holding a SignedData.
pub const CERT_TYPE_PKCS7: Guid = Guid::from_fields(0x4aafd29d, 0x68df, 0x49ee, 0x8a, 0xa9, &[0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7]);

/// How far up a chain of carried certificates the verifier climbs.
const MAX_CHAIN: usize = 8;

/// The signature databases, as their variables hold them (empty when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Databases<'a> {
    pub db: &'a [u8],
    pub dbx: &'a [u8],
    pub mok: &'a [u8],
    pub mokx: &'a [u8],
}

/// Why an image was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted<'a> {
    /// Its signer chains to `anchor`, a certificate in `db` or MokListRT.
    Signed { signer: Name<'a>, anchor: Name<'a> },
    /// Its digest is listed in `db` or MokListRT.
    HashListed(HashAlg),
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No signature, and its hash is not allowed.
    NotSigned,
    /// The signature's digest is not the image's: the image changed after signing.
    DigestMismatch,
    /// The signature itself does not hold.
    BadSignature(SignerError),
    /// The signature holds, but nothing in `db` (or MokListRT) vouches for its signer.
    UnknownSigner,
    /// `dbx` (or MokListXRT) lists it: its hash, a certificate, or a certificate's hash.
    Revoked(&'static str),
    /// The certificate table or a signature cannot be read.
    Malformed(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    pub reason: Reason,
    /// The signer's (or the revoked certificate's) subject and issuer, when there is one.
    pub certificate: Option<(Name<'a>, Name<'a>)>,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotSigned => f.write_str("not signed, and its hash is not in db"),
            Reason::DigestMismatch => f.write_str("digest mismatch: the image is not what was signed"),
            Reason::BadSignature(SignerError::NoCertificate) => f.write_str("bad signature: the signer's certificate is not in it"),
            Reason::BadSignature(SignerError::ContentDigest) => f.write_str("bad signature: its messageDigest does not match what it signs"),
            Reason::BadSignature(SignerError::Signature(RsaError::UnsupportedKey(why))) => write!(f, "bad signature: the signer's key is not one this verifier takes ({why})"),
            Reason::BadSignature(SignerError::Signature(RsaError::MalformedSignature)) => f.write_str("bad signature: not the size of the key's modulus, or not below it"),
            Reason::BadSignature(SignerError::Signature(RsaError::Mismatch)) => f.write_str("bad signature: the signer's key does not verify it"),
            Reason::BadSignature(SignerError::Malformed(e)) => write!(f, "bad signature: malformed {}", e.0),
            Reason::UnknownSigner => f.write_str("unknown signer: no certificate in db vouches for it"),
            Reason::Revoked(what) => write!(f, "revoked by dbx: {what}"),
            Reason::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

impl<'a> Databases<'a> {
    fn allowing(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        // A broken allowing list allows nothing more from where it breaks.
        entries(self.db).chain(entries(self.mok)).map_while(Result::ok)
    }

    /// Whether a forbidding list lists what `hit` recognises; a broken one forbids everything.
    fn forbids(&self, mut hit: impl FnMut(&Entry) -> bool) -> bool {
        entries(self.dbx).chain(entries(self.mokx)).any(|e| e.as_ref().map_or(true, &mut hit))
    }

    fn forbids_certificate(&self, c: &Certificate) -> bool {
        self.forbids(|e| match *e {
            Entry::X509(der) => der == c.der,
            Entry::CertificateHash(alg, h) => alg.digest(&[c.tbs]).as_bytes() == h,
            _ => false,
        })
    }

    fn forbids_image(&self, digests: &mut Digests) -> bool {
        self.forbids(|e| matches!(*e, Entry::ImageHash(alg, h) if digests.get(alg).is_some_and(|d| d.as_bytes() == h)))
    }

    /// The certificate of an allowing list that `cert` is, or that issued it.
    fn anchor_for(&self, cert: &Certificate<'a>) -> Option<Certificate<'a>> {
        self.allowing().find_map(|e| {
            let Entry::X509(der) = e else { return None };
            let listed = Certificate::parse(der).ok()?;
            let is_it = der == cert.der;
            let issued_it = listed.subject == cert.issuer && listed.may_issue() && cert.signed_by(&listed).is_ok();
            (is_it || issued_it).then_some(listed)
        })
    }
}

/// The image's digests, computed once per algorithm; `None` where the image cannot be hashed.
struct Digests<'p, 'a> {
    pe: &'p PeImage<'a>,
    done: [Option<Option<Hash>>; 4],
}

impl Digests<'_, '_> {
    fn get(&mut self, alg: HashAlg) -> Option<Hash> {
        let i = HashAlg::ALL.iter().position(|&a| a == alg).unwrap_or(0);
        *self.done[i].get_or_insert_with(|| authenticode::digest_with(alg, self.pe).ok())
    }
}

/// The signer chained through the carried certificates to an allowing list's certificate.
fn chain_to_anchor<'a>(dbs: &Databases<'a>, signature: &Authenticode<'a>, signer: Certificate<'a>) -> Option<Certificate<'a>> {
    let mut current = signer;
    for _ in 0..MAX_CHAIN {
        if let Some(anchor) = dbs.anchor_for(&current) {
            return Some(anchor);
        }
        current = signature.certificates().find(|c| c.der != current.der && c.subject == current.issuer && c.may_issue() && current.signed_by(c).is_ok())?;
    }
    None
}

/// The verdict on `pe`.
pub fn verify<'a>(pe: &PeImage<'a>, dbs: &Databases<'a>) -> Result<Accepted<'a>, Refusal<'a>> {
    let refuse = |reason, certificate| Err(Refusal { reason, certificate });
    let mut digests = Digests { pe, done: [None; 4] };
    let mut accepted = None;
    let mut best = Refusal { reason: Reason::NotSigned, certificate: None };
    let mut signatures = 0;
    for entry in authenticode::certificates(pe) {
        let Ok(entry) = entry else { return refuse(Reason::Malformed("certificate table"), None) };
        let data = match (entry.revision, entry.certificate_type) {
            (WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA) => entry.data,
            (WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_EFI_GUID) if entry.data.get(..16) == Some(CERT_TYPE_PKCS7.as_bytes()) => &entry.data[16..],
            // Other kinds of certificate say nothing about the image, as in EDK2.
            _ => continue,
        };
        signatures += 1;
        // A signature that cannot be read, or names a hash the image cannot be hashed with, is
        // passed over (EDK2's HashPeImageByType failing); it vouches for nothing.
        let signature = match Authenticode::parse(data) {
            Ok(s) => s,
            Err(e) => {
                if best.reason == Reason::NotSigned {
                    best.reason = Reason::Malformed(e.0);
                }
                continue;
            }
        };
        let Some(digest) = digests.get(signature.image_hash) else { return refuse(Reason::Malformed("the image cannot be hashed as signed"), None) };
        if dbs.forbids_image(&mut digests) {
            return refuse(Reason::Revoked("the image's hash"), None);
        }
        if let Some(c) = signature.certificates().find(|c| dbs.forbids_certificate(c)) {
            return refuse(Reason::Revoked("a certificate of its signature"), Some((c.subject, c.issuer)));
        }
        if accepted.is_some() {
            continue; // Later signatures are still checked against dbx.
        }
        if digest.as_bytes() != signature.image_digest {
            best = Refusal { reason: Reason::DigestMismatch, certificate: signature.signer_certificate().map(|c| (c.subject, c.issuer)) };
            continue;
        }
        let signer = match signature.verify_signer() {
            Ok(c) => c,
            Err(e) => {
                if best.reason != Reason::DigestMismatch {
                    best = Refusal { reason: Reason::BadSignature(e), certificate: signature.signer_certificate().map(|c| (c.subject, c.issuer)) };
                }
                continue;
            }
        };
        match chain_to_anchor(dbs, &signature, signer) {
            Some(anchor) if dbs.forbids_certificate(&anchor) => return refuse(Reason::Revoked("the db certificate it chains to"), Some((anchor.subject, anchor.issuer))),
            Some(anchor) => accepted = Some(Accepted::Signed { signer: signer.subject, anchor: anchor.subject }),
            None if matches!(best.reason, Reason::NotSigned) => best = Refusal { reason: Reason::UnknownSigner, certificate: Some((signer.subject, signer.issuer)) },
            None => {}
        }
    }
    if let Some(a) = accepted {
        return Ok(a);
    }
    if signatures == 0 && dbs.forbids_image(&mut digests) {
        return refuse(Reason::Revoked("the image's hash"), None);
    }
    for e in dbs.allowing() {
        if let Entry::ImageHash(alg, h) = e {
            if digests.get(alg).is_some_and(|d| d.as_bytes() == h) && !dbs.forbids_image(&mut digests) {
                return Ok(Accepted::HashListed(alg));
            }
        }
    }
    Err(best)
}
