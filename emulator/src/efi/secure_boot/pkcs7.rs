//! Authenticode signatures: a PKCS#7 SignedData (RFC 2315) whose content is a Microsoft
//! `SpcIndirectDataContent` holding the image's digest, signed by one SignerInfo.
//!
//! ```text
//! ContentInfo { signedData, [0] SignedData {
//!     version, digestAlgorithms,
//!     contentInfo { SpcIndirectDataContent, [0] { SpcAttributeTypeAndOptionalValue,
//!                                                 DigestInfo { algorithm, digest } } },
//!     [0] certificates, [1] crls OPTIONAL,
//!     signerInfos { SignerInfo { version, issuerAndSerialNumber, digestAlgorithm,
//!                                [0] authenticatedAttributes, digestEncryptionAlgorithm,
//!                                encryptedDigest, [1] unauthenticatedAttributes } } } }
//! ```
//!
//! The signer signs its authenticated attributes (re-tagged as a SET), one of which, the
//! messageDigest, is the hash of the SpcIndirectDataContent's contents (without its tag and
//! length, an Authenticode rule).

use super::der::{self, Der, DerError, Tlv};
use super::hash::{oid, HashAlg};
use super::rsa::{self, RsaError};
use super::x509::{Certificate, Name};

const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const SPC_INDIRECT_DATA: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04];
const CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];

#[derive(Clone, Copy, Debug)]
pub struct Authenticode<'a> {
    /// The algorithm and digest of the image the signature covers.
    pub image_hash: HashAlg,
    pub image_digest: &'a [u8],
    /// The SpcIndirectDataContent's contents: what the messageDigest attribute hashes.
    content: &'a [u8],
    /// The certificates the signature carries (signer, intermediates, maybe more).
    certificates: &'a [u8],
    pub signer: SignerInfo<'a>,
}

#[derive(Clone, Copy, Debug)]
pub struct SignerInfo<'a> {
    pub issuer: Name<'a>,
    pub serial: &'a [u8],
    pub digest: HashAlg,
    /// The `[0]` authenticatedAttributes, whole.
    attributes: Option<Tlv<'a>>,
    pub signature: &'a [u8],
}

/// Why a signer's signature does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerError {
    /// No certificate in the signature matches the SignerInfo's issuer and serial number.
    NoCertificate,
    /// The messageDigest attribute is not the hash of the signed content.
    ContentDigest,
    /// The RSA signature over the attributes does not verify with the signer's key.
    Signature(RsaError),
    Malformed(DerError),
}

impl<'a> Authenticode<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DerError> {
        let mut content_info = Der::new(bytes).sequence("ContentInfo")?;
        if content_info.oid("ContentInfo.contentType")? != SIGNED_DATA {
            return Err(DerError("ContentInfo.contentType: not signedData"));
        }
        let mut signed = content_info.expect(der::context(0), "ContentInfo.content")?.inner().sequence("SignedData")?;
        signed.expect(der::INTEGER, "SignedData.version")?;
        signed.expect(der::SET, "SignedData.digestAlgorithms")?;
        let mut inner = signed.sequence("SignedData.contentInfo")?;
        if inner.oid("contentInfo.contentType")? != SPC_INDIRECT_DATA {
            return Err(DerError("contentInfo.contentType: not SpcIndirectDataContent"));
        }
        let spc = inner.expect(der::context(0), "contentInfo.content")?.inner().expect(der::SEQUENCE, "SpcIndirectDataContent")?;
        let mut s = spc.inner();
        s.sequence("SpcIndirectDataContent.data")?;
        let mut digest_info = s.sequence("SpcIndirectDataContent.messageDigest")?;
        let image_hash = HashAlg::from_oid(digest_info.algorithm("DigestInfo.digestAlgorithm")?).ok_or(DerError("DigestInfo.digestAlgorithm: not SHA-1/256/384/512"))?;
        let image_digest = digest_info.expect(der::OCTET_STRING, "DigestInfo.digest")?.value;
        if image_digest.len() != image_hash.digest_len() {
            return Err(DerError("DigestInfo.digest: not the algorithm's length"));
        }
        let certificates = signed.optional(der::context(0), "SignedData.certificates")?.map_or(&[][..], |t| t.value);
        signed.optional(der::context(1), "SignedData.crls")?;
        let mut signers = signed.expect(der::SET, "SignedData.signerInfos")?.inner();
        let signer = SignerInfo::parse(signers.sequence("SignerInfo")?)?;
        if !signers.is_empty() {
            // Authenticode has exactly one; EDK2 (through OpenSSL) would need all to verify.
            return Err(DerError("SignedData.signerInfos: more than one signer"));
        }
        Ok(Authenticode { image_hash, image_digest, content: spc.value, certificates, signer })
    }

    /// The certificates the signature carries that parse (others are skipped).
    pub fn certificates(&self) -> impl Iterator<Item = Certificate<'a>> + 'a {
        let mut d = Der::new(self.certificates);
        core::iter::from_fn(move || loop {
            let t = d.any("certificates").ok()?;
            if let Ok(c) = Certificate::parse(t.whole) {
                return Some(c);
            }
        })
    }

    /// The signer's certificate: the one with the SignerInfo's issuer and serial number.
    pub fn signer_certificate(&self) -> Option<Certificate<'a>> {
        self.certificates().find(|c| c.issuer == self.signer.issuer && c.serial == self.signer.serial)
    }

    /// Checks the signer's signature with its certificate's key: the messageDigest attribute
    /// against the content, the RSA signature against the attributes.
    pub fn verify_signer(&self) -> Result<Certificate<'a>, SignerError> {
        let cert = self.signer_certificate().ok_or(SignerError::NoCertificate)?;
        let key = cert.key.ok_or(SignerError::Signature(RsaError::UnsupportedKey("signer key is not RSA")))?;
        let s = &self.signer;
        let signed = match s.attributes {
            Some(attrs) => {
                let mut message_digest = None;
                let mut list = attrs.inner();
                while !list.is_empty() {
                    let mut a = list.sequence("Attribute").map_err(SignerError::Malformed)?;
                    let kind = a.oid("Attribute.type").map_err(SignerError::Malformed)?;
                    let mut values = a.expect(der::SET, "Attribute.values").map_err(SignerError::Malformed)?.inner();
                    if kind == MESSAGE_DIGEST {
                        message_digest = Some(values.expect(der::OCTET_STRING, "messageDigest").map_err(SignerError::Malformed)?.value);
                    } else if kind == CONTENT_TYPE && values.oid("contentType").map_err(SignerError::Malformed)? != SPC_INDIRECT_DATA {
                        return Err(SignerError::Malformed(DerError("contentType attribute: not SpcIndirectDataContent")));
                    }
                }
                if message_digest != Some(s.digest.digest(&[self.content]).as_bytes()) {
                    return Err(SignerError::ContentDigest);
                }
                // Signed as a SET OF, not with the [0] IMPLICIT tag it is stored under.
                s.digest.digest(&[&[der::SET], &attrs.whole[1..]])
            }
            None => s.digest.digest(&[self.content]),
        };
        rsa::verify_pkcs1v15(&key, s.signature, s.digest, &signed).map_err(SignerError::Signature)?;
        Ok(cert)
    }
}

impl<'a> SignerInfo<'a> {
    fn parse(mut s: Der<'a>) -> Result<Self, DerError> {
        s.expect(der::INTEGER, "SignerInfo.version")?;
        let mut id = s.sequence("SignerInfo.issuerAndSerialNumber (subjectKeyIdentifier is not supported)")?;
        let issuer = Name(id.expect(der::SEQUENCE, "issuerAndSerialNumber.issuer")?.whole);
        let serial = id.expect(der::INTEGER, "issuerAndSerialNumber.serialNumber")?.value;
        let digest = HashAlg::from_oid(s.algorithm("SignerInfo.digestAlgorithm")?).ok_or(DerError("SignerInfo.digestAlgorithm: not SHA-1/256/384/512"))?;
        let attributes = s.optional(der::context(0), "SignerInfo.authenticatedAttributes")?;
        let encryption = s.algorithm("SignerInfo.digestEncryptionAlgorithm")?;
        if !encryption.starts_with(oid::PKCS1) {
            return Err(DerError("SignerInfo.digestEncryptionAlgorithm: not RSA"));
        }
        let signature = s.expect(der::OCTET_STRING, "SignerInfo.encryptedDigest")?.value;
        Ok(SignerInfo { issuer, serial, digest, attributes, signature })
    }
}
