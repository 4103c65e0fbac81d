//! The TPM 2.0 commands measured boot sends, and what it reads of the responses (TPM 2.0
//! Library, Part 3; big-endian, a 10-byte header of tag, size and command or response code).

use super::hash_bit;
use crate::efi::event_log::alg_id;
use crate::efi::secure_boot::hash::{Hash, HashAlg};
use alloc::vec::Vec;

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;
const CC_PCR_ALLOCATE: u32 = 0x12b;
const CC_STARTUP: u32 = 0x144;
const CC_GET_CAPABILITY: u32 = 0x17a;
const CC_PCR_EXTEND: u32 = 0x182;
/// The password session with an empty password, and the platform hierarchy.
const RS_PW: u32 = 0x4000_0009;
const RH_PLATFORM: u32 = 0x4000_000c;

/// Whether a response code says the TPM itself failed: TPM_RC_FAILURE (failure mode), or the
/// TPM 1.2 TPM_FAIL a broken transport answers with (QEMU's backend when swtpm is gone).
pub fn is_failure(code: u32) -> bool {
    code == 0x101 || code == 0x9
}

/// TPM_RC_INITIALIZE: the TPM waits for TPM2_Startup.
pub const RC_INITIALIZE: u32 = 0x100;
pub const CAP_PCRS: u32 = 5;
pub const CAP_TPM_PROPERTIES: u32 = 6;
pub const PT_MANUFACTURER: u32 = 0x105;

/// A command: the header (its size filled in) and `body`.
fn command(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(10 + body.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    c.extend_from_slice(&code.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// `handle`, then an authorization area of one password session with an empty password.
fn with_password_session(handle: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&handle.to_be_bytes());
    b.extend_from_slice(&9u32.to_be_bytes()); // authorizationSize
    b.extend_from_slice(&RS_PW.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0]); // nonce (empty), sessionAttributes, hmac (empty)
    b
}

/// The response code of a response (`u32::MAX` when it is shorter than a header).
pub fn response_code(response: &[u8]) -> u32 {
    response.get(6..10).map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// TPM2_Startup(TPM_SU_CLEAR), what firmware sends first.
pub fn startup_clear() -> Vec<u8> {
    command(ST_NO_SESSIONS, CC_STARTUP, &[0, 0])
}

/// TPM2_GetCapability(capability, property, count).
pub fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(12);
    for v in [capability, property, count] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    command(ST_NO_SESSIONS, CC_GET_CAPABILITY, &b)
}

/// TPM2_PCR_Extend of `pcr` with one digest per bank.
pub fn pcr_extend<'a>(pcr: u32, digests: impl Iterator<Item = (HashAlg, &'a Hash)>) -> Vec<u8> {
    let mut b = with_password_session(pcr);
    let count_at = b.len();
    b.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for (alg, d) in digests {
        b.extend_from_slice(&alg_id(alg).to_be_bytes());
        b.extend_from_slice(d.as_bytes());
        count += 1;
    }
    b[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
    command(ST_SESSIONS, CC_PCR_EXTEND, &b)
}

/// TPM2_PCR_Allocate on the platform hierarchy: each bank of `supported` (EFI_TCG2_BOOT_HASH_ALG_*
/// bits) with all 24 PCRs when `active` has it, else none.
pub fn pcr_allocate(supported: u32, active: u32) -> Vec<u8> {
    let mut b = with_password_session(RH_PLATFORM);
    let banks = HashAlg::ALL.into_iter().filter(|a| supported & hash_bit(*a) != 0);
    b.extend_from_slice(&(banks.clone().count() as u32).to_be_bytes());
    for alg in banks {
        b.extend_from_slice(&alg_id(alg).to_be_bytes());
        let select = if active & hash_bit(alg) != 0 { 0xff } else { 0 };
        b.extend_from_slice(&[3, select, select, select]);
    }
    command(ST_SESSIONS, CC_PCR_ALLOCATE, &b)
}

/// From a TPM2_GetCapability(TPM_CAP_PCRS) response: the EFI_TCG2_BOOT_HASH_ALG_* bits of the
/// banks the TPM implements, and of those with PCRs allocated (active). Banks the emulator
/// cannot hash (SM3) are left out.
pub fn pcr_banks(response: &[u8]) -> Option<(u32, u32)> {
    // Header, moreData, capability, then TPML_PCR_SELECTION: count, then (hash, sizeofSelect, select).
    let count = u32::from_be_bytes(response.get(15..19)?.try_into().ok()?);
    let (mut supported, mut active) = (0, 0);
    let mut at = 19;
    for _ in 0..count.min(16) {
        let alg = u16::from_be_bytes(response.get(at..at + 2)?.try_into().ok()?);
        let size = *response.get(at + 2)? as usize;
        let select = response.get(at + 3..at + 3 + size)?;
        if let Some(a) = HashAlg::ALL.into_iter().find(|a| alg_id(*a) == alg) {
            supported |= hash_bit(a);
            if select.iter().any(|&s| s != 0) {
                active |= hash_bit(a);
            }
        }
        at += 3 + size;
    }
    Some((supported, active))
}

/// From a TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES) response: the first property's value.
pub fn first_property(response: &[u8]) -> Option<u32> {
    // Header, moreData, capability, count, then (property, value).
    let count = u32::from_be_bytes(response.get(15..19)?.try_into().ok()?);
    (count > 0).then(|| response.get(23..27)).flatten().map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}
