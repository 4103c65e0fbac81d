//! RSA signature verification, PKCS#1 v1.5 (RFC 8017 §8.2.2), for moduli of 1024 to 8192 bits.
//!
//! Only the public operation `s^e mod n` is needed, on public values (key, signature), so it
//! runs in variable time: Montgomery multiplication (CIOS) over 64-bit limbs on the stack, no
//! allocation. Written here rather than taken from RustCrypto's `rsa` (45 KB in the blob) or
//! `crypto-bigint` (39 KB), whose constant-time generic arithmetic serves private keys; this is
//! under 3 KB. Host tests check it against `num-bigint` and against real signatures.

use super::hash::{Hash, HashAlg};

const MAX_BITS: usize = 8192;
const MIN_BITS: usize = 1024;
const MAX_LIMBS: usize = MAX_BITS / 64;

/// Why a signature does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaError {
    /// The key is not one this verifier takes (size, even modulus, exponent).
    UnsupportedKey(&'static str),
    /// The signature is not the modulus' size, or not below it.
    MalformedSignature,
    /// The signature decodes to something else than the expected digest.
    Mismatch,
}

/// An RSA public key: big-endian magnitudes without leading zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey<'a> {
    pub modulus: &'a [u8],
    pub exponent: &'a [u8],
}

impl PublicKey<'_> {
    pub fn bits(&self) -> usize {
        self.modulus.first().map_or(0, |&top| self.modulus.len() * 8 - top.leading_zeros() as usize)
    }
}

type Limbs = [u64; MAX_LIMBS];

/// Big-endian bytes into `k` little-endian limbs (the bytes must fit).
fn limbs(bytes: &[u8], k: usize) -> Limbs {
    let mut l = [0u64; MAX_LIMBS];
    for (i, &b) in bytes.iter().rev().enumerate() {
        l[i / 8] |= (b as u64) << (8 * (i % 8));
    }
    debug_assert!(bytes.len() <= k * 8);
    l
}

fn less_than(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b`, returning the borrow.
fn subtract(a: &mut [u64], b: &[u64]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(borrow as u64);
        *x = d;
        borrow = b1 || b2;
    }
    borrow
}

/// Montgomery arithmetic modulo an odd `n` of `k` limbs, `R = 2^(64k)`.
struct Montgomery<'a> {
    n: &'a [u64],
    /// `-n^-1 mod 2^64`.
    n_prime: u64,
}

impl Montgomery<'_> {
    /// `a * b / R mod n`, for `a, b < n`.
    fn multiply(&self, a: &[u64], b: &[u64]) -> Limbs {
        let k = self.n.len();
        let mut t = [0u64; MAX_LIMBS + 2];
        for &ai in &a[..k] {
            let mut carry = 0u64;
            for j in 0..k {
                let x = t[j] as u128 + ai as u128 * b[j] as u128 + carry as u128;
                t[j] = x as u64;
                carry = (x >> 64) as u64;
            }
            let x = t[k] as u128 + carry as u128;
            t[k] = x as u64;
            t[k + 1] = (x >> 64) as u64;
            // Add m*n so the lowest limb becomes zero, and drop it.
            let m = t[0].wrapping_mul(self.n_prime);
            let x = t[0] as u128 + m as u128 * self.n[0] as u128;
            let mut carry = (x >> 64) as u64;
            for j in 1..k {
                let x = t[j] as u128 + m as u128 * self.n[j] as u128 + carry as u128;
                t[j - 1] = x as u64;
                carry = (x >> 64) as u64;
            }
            let x = t[k] as u128 + carry as u128;
            t[k - 1] = x as u64;
            t[k] = t[k + 1] + (x >> 64) as u64;
            t[k + 1] = 0;
        }
        let mut r = [0u64; MAX_LIMBS];
        r[..k].copy_from_slice(&t[..k]);
        if t[k] != 0 || !less_than(&r[..k], self.n) {
            subtract(&mut r[..k], self.n);
        }
        r
    }
}

/// `base^exponent mod modulus`, big-endian, written to `out` (the modulus' length).
fn power(modulus: &[u8], exponent: u64, base: &[u8], out: &mut [u8]) {
    let k = modulus.len().div_ceil(8);
    let n = limbs(modulus, k);
    let n = &n[..k];
    // Newton's iteration doubles the correct low bits of n^-1 each step: 1, 2, 4, .. 64.
    let mut inverse = 1u64;
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(n[0].wrapping_mul(inverse)));
    }
    let mont = Montgomery { n, n_prime: inverse.wrapping_neg() };
    // R^2 mod n by doubling 1, 128k times.
    let mut r2 = [0u64; MAX_LIMBS];
    r2[0] = 1;
    for _ in 0..128 * k {
        let carry = r2[k - 1] >> 63;
        for i in (1..k).rev() {
            r2[i] = (r2[i] << 1) | (r2[i - 1] >> 63);
        }
        r2[0] <<= 1;
        if carry != 0 || !less_than(&r2[..k], n) {
            subtract(&mut r2[..k], n);
        }
    }
    let mut one = [0u64; MAX_LIMBS];
    one[0] = 1;
    let base = mont.multiply(&limbs(base, k), &r2);
    let mut acc = mont.multiply(&one, &r2);
    for bit in (0..64 - exponent.leading_zeros()).rev() {
        acc = mont.multiply(&acc, &acc);
        if exponent >> bit & 1 == 1 {
            acc = mont.multiply(&acc, &base);
        }
    }
    let plain = mont.multiply(&acc, &one);
    let len = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        let from_end = len - 1 - i;
        *b = (plain[from_end / 8] >> (8 * (from_end % 8))) as u8;
    }
}

/// The DER DigestInfo prefix (with NULL parameters) PKCS#1 v1.5 puts before a digest.
fn digest_info_prefix(alg: HashAlg) -> &'static [u8] {
    match alg {
        HashAlg::Sha1 => &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14],
        HashAlg::Sha256 => &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20],
        HashAlg::Sha384 => &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30],
        HashAlg::Sha512 => &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40],
    }
}

/// The public exponent as a number: every key Secure Boot meets uses 65537 (or 3).
fn exponent(key: &PublicKey) -> Result<u64, RsaError> {
    let e = key.exponent;
    if e.is_empty() || e.len() > 8 {
        return Err(RsaError::UnsupportedKey("public exponent wider than 64 bits, or zero"));
    }
    let v = e.iter().fold(0u64, |a, &b| (a << 8) | b as u64);
    if v < 3 || v % 2 == 0 {
        return Err(RsaError::UnsupportedKey("public exponent below 3, or even"));
    }
    Ok(v)
}

/// `s^e mod n`: the encoded message a signature carries, into `out` (the modulus' length).
pub fn recover(key: &PublicKey, signature: &[u8], out: &mut [u8]) -> Result<(), RsaError> {
    let bits = key.bits();
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(RsaError::UnsupportedKey("modulus not between 1024 and 8192 bits"));
    }
    if key.modulus.last().is_some_and(|b| b & 1 == 0) {
        return Err(RsaError::UnsupportedKey("even modulus"));
    }
    let e = exponent(key)?;
    let k = key.modulus.len();
    if signature.len() != k || out.len() != k {
        return Err(RsaError::MalformedSignature);
    }
    let words = k.div_ceil(8);
    if !less_than(&limbs(signature, words)[..words], &limbs(key.modulus, words)[..words]) {
        return Err(RsaError::MalformedSignature);
    }
    power(key.modulus, e, signature, out);
    Ok(())
}

/// RSASSA-PKCS1-v1_5 verification of `signature` over a message whose `alg` digest is `digest`:
/// `EM = 00 01 FF..FF 00 DigestInfo`, at least eight FF bytes.
pub fn verify_pkcs1v15(key: &PublicKey, signature: &[u8], alg: HashAlg, digest: &Hash) -> Result<(), RsaError> {
    let mut em = [0u8; MAX_BITS / 8];
    let em = &mut em[..key.modulus.len()];
    recover(key, signature, em)?;
    let prefix = digest_info_prefix(alg);
    let t_len = prefix.len() + alg.digest_len();
    let Some(ps_len) = em.len().checked_sub(3 + t_len).filter(|&n| n >= 8) else { return Err(RsaError::Mismatch) };
    let expected = em[0] == 0
        && em[1] == 1
        && em[2..2 + ps_len].iter().all(|&b| b == 0xff)
        && em[2 + ps_len] == 0
        && &em[3 + ps_len..3 + ps_len + prefix.len()] == prefix
        && &em[em.len() - alg.digest_len()..] == digest.as_bytes();
    if expected && digest.as_bytes().len() == alg.digest_len() {
        Ok(())
    } else {
        Err(RsaError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
