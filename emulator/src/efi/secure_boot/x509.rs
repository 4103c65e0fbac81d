//! X.509 certificates (RFC 5280), read as far as a Secure Boot chain needs: names (compared as
//! their DER bytes), the serial number, the RSA key, the signature and the two extensions
//! that say whether a certificate may sign others. Validity periods are not read: EDK2 checks
//! no time either (firmware clocks are not trusted).

use super::der::{self, Der, DerError};
use super::hash::HashAlg;
use super::rsa::{self, PublicKey, RsaError};
use core::fmt;

const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

#[derive(Clone, Copy, Debug)]
pub struct Certificate<'a> {
    /// The whole certificate's encoding (what `db`/`dbx` list).
    pub der: &'a [u8],
    /// The TBSCertificate's encoding: what the issuer signed, and what `EFI_CERT_X509_SHA*`
    /// entries hash.
    pub tbs: &'a [u8],
    pub version: u8,
    pub serial: &'a [u8],
    pub issuer: Name<'a>,
    pub subject: Name<'a>,
    /// Absent for a key that is not RSA: such a certificate signs nothing here.
    pub key: Option<PublicKey<'a>>,
    /// The hash of the issuer's signature, when it is an RSA one this verifier knows.
    pub signature_hash: Option<HashAlg>,
    pub signature: &'a [u8],
    /// basicConstraints cA, when present.
    pub ca: Option<bool>,
    /// keyUsage keyCertSign, when keyUsage is present.
    pub key_cert_sign: Option<bool>,
}

/// A distinguished name: its encoding, shown as `CN=…, O=…`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name<'a>(pub &'a [u8]);

impl<'a> Certificate<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DerError> {
        let mut outer = Der::new(bytes);
        let cert = outer.expect(der::SEQUENCE, "Certificate")?;
        let mut c = cert.inner();
        let tbs = c.expect(der::SEQUENCE, "TBSCertificate")?;
        let signature_alg = c.algorithm("Certificate.signatureAlgorithm")?;
        let signature = c.bit_string("Certificate.signatureValue")?;
        let mut t = tbs.inner();
        let version = match t.optional(der::context(0), "TBSCertificate.version")? {
            Some(v) => match v.inner().unsigned("TBSCertificate.version")? {
                [] => 1,
                [n @ 0..=2] => n + 1,
                _ => return Err(DerError("TBSCertificate.version")),
            },
            None => 1,
        };
        let serial = t.expect(der::INTEGER, "TBSCertificate.serialNumber")?.value;
        t.algorithm("TBSCertificate.signature")?;
        let issuer = Name(t.expect(der::SEQUENCE, "TBSCertificate.issuer")?.whole);
        t.expect(der::SEQUENCE, "TBSCertificate.validity")?;
        let subject = Name(t.expect(der::SEQUENCE, "TBSCertificate.subject")?.whole);
        let key = rsa_key(t.sequence("TBSCertificate.subjectPublicKeyInfo")?)?;
        let (mut ca, mut key_cert_sign) = (None, None);
        while !t.is_empty() {
            let field = t.any("TBSCertificate")?;
            if field.tag != der::context(3) {
                continue; // issuerUniqueID, subjectUniqueID
            }
            let mut extensions = field.inner().sequence("TBSCertificate.extensions")?;
            while !extensions.is_empty() {
                let mut e = extensions.sequence("Extension")?;
                let id = e.oid("Extension.extnID")?;
                e.optional(der::BOOLEAN, "Extension.critical")?;
                let value = e.expect(der::OCTET_STRING, "Extension.extnValue")?.value;
                if id == BASIC_CONSTRAINTS {
                    let mut bc = Der::new(value).sequence("basicConstraints")?;
                    ca = Some(bc.optional(der::BOOLEAN, "basicConstraints.cA")?.is_some_and(|b| b.value != [0]));
                } else if id == KEY_USAGE {
                    let bits = Der::new(value).expect(der::BIT_STRING, "keyUsage")?.value;
                    key_cert_sign = Some(bits.get(1).is_some_and(|b| b & 0x04 != 0));
                }
            }
        }
        Ok(Certificate {
            der: cert.whole,
            tbs: tbs.whole,
            version,
            serial,
            issuer,
            subject,
            key,
            signature_hash: HashAlg::from_rsa_signature_oid(signature_alg),
            signature,
            ca,
            key_cert_sign,
        })
    }

    /// Whether this certificate may be the issuer of another, as OpenSSL's X509_check_ca
    /// decides without X509_V_FLAG_X509_STRICT (EDK2's setting): basicConstraints cA if
    /// present, else keyUsage keyCertSign if present, else only a v1 certificate.
    pub fn may_issue(&self) -> bool {
        match (self.ca, self.key_cert_sign) {
            (Some(ca), _) => ca,
            (None, Some(sign)) => sign,
            (None, None) => self.version == 1,
        }
    }

    /// Whether `issuer`'s key signed this certificate (names not compared).
    pub fn signed_by(&self, issuer: &Certificate) -> Result<(), RsaError> {
        let key = issuer.key.ok_or(RsaError::UnsupportedKey("issuer key is not RSA"))?;
        let alg = self.signature_hash.ok_or(RsaError::UnsupportedKey("signature algorithm is not RSA with SHA-1/256/384/512"))?;
        rsa::verify_pkcs1v15(&key, self.signature, alg, &alg.digest(&[self.tbs]))
    }
}

fn rsa_key(mut spki: Der) -> Result<Option<PublicKey>, DerError> {
    if spki.algorithm("SubjectPublicKeyInfo.algorithm")? != RSA_ENCRYPTION {
        return Ok(None);
    }
    let bits = spki.bit_string("SubjectPublicKeyInfo.subjectPublicKey")?;
    let mut key = Der::new(bits).sequence("RSAPublicKey")?;
    Ok(Some(PublicKey { modulus: key.unsigned("RSAPublicKey.modulus")?, exponent: key.unsigned("RSAPublicKey.publicExponent")? }))
}

impl<'a> Name<'a> {
    /// The values of one attribute type, in order.
    fn values(&self, attribute: &'static [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rdns = Der::new(self.0).sequence("Name").unwrap_or(Der::new(&[]));
        core::iter::from_fn(move || loop {
            let mut set = rdns.expect(der::SET, "RelativeDistinguishedName").ok()?.inner();
            let mut atv = set.sequence("AttributeTypeAndValue").ok()?;
            if atv.oid("AttributeType").ok()? == attribute {
                return Some(atv.any("AttributeValue").ok()?.value);
            }
        })
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (label, id) in [("CN", COMMON_NAME), ("O", ORGANIZATION)] {
            for v in self.values(id) {
                write!(f, "{sep}{label}=")?;
                // Printable, UTF-8 or IA5 strings: shown as UTF-8, anything else as '?'.
                match core::str::from_utf8(v) {
                    Ok(s) => f.write_str(s)?,
                    Err(_) => f.write_str("?")?,
                }
                sep = ", ";
            }
        }
        if sep.is_empty() {
            f.write_str("(no CN or O)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests;
