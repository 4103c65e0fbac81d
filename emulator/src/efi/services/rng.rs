//! EFI_RNG_PROTOCOL from the CPU's random number instructions (FEAT_RNG): RNDRRS for the raw
//! algorithm (reseeded for every number), RNDR for the SP800-90 CTR-256 DRBG algorithm (the
//! architecture specifies RNDR as the output of such a DRBG). Not installed without FEAT_RNG.

use super::*;
use core::mem::size_of;
use efi::protocols::rng;

/// ID_AA64ISAR0_EL1.RNDR says whether RNDR/RNDRRS exist.
pub fn available() -> bool {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    (isar0 >> 60) & 0xf != 0
}

/// One 64-bit number, retried while the hardware reports no entropy (NZCV.Z set).
fn read(reseed: bool) -> Option<u64> {
    for _ in 0..64 {
        let (v, ok): (u64, u64);
        // SAFETY: RNDR/RNDRRS exist (checked by `available` before the protocol is installed).
        unsafe {
            if reseed {
                core::arch::asm!("mrs {v}, s3_3_c2_c4_1", "cset {ok}, ne", v = out(reg) v, ok = out(reg) ok, options(nomem, nostack));
            } else {
                core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) v, ok = out(reg) ok, options(nomem, nostack));
            }
        }
        if ok == 1 {
            return Some(v);
        }
    }
    None
}

const ALGORITHMS: [rng::Algorithm; 2] = [rng::ALGORITHM_SP800_90_CTR_256_GUID, rng::ALGORITHM_RAW];

efiapi! {
    fn get_info(this: *mut rng::Protocol, size: *mut usize, list: *mut rng::Algorithm) -> Status {
        status((|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            sized_buffer(size, ALGORITHMS.len() * size_of::<rng::Algorithm>())?;
            if list.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            for (i, a) in ALGORITHMS.iter().enumerate() {
                // SAFETY: the payload's list holds at least the bytes `sized_buffer` asked for.
                unsafe { list.add(i).write_unaligned(*a) };
            }
            Ok(())
        })())
    }

    fn get_rng(this: *mut rng::Protocol, algorithm: *mut rng::Algorithm, len: usize, value: *mut u8) -> Status {
        status((|| {
            if this.is_null() || value.is_null() || len == 0 {
                return Err(EfiError::InvalidParameter);
            }
            let reseed = if algorithm.is_null() {
                false
            } else {
                match guid_arg(algorithm)? {
                    g if g == rng::ALGORITHM_RAW => true,
                    g if g == rng::ALGORITHM_SP800_90_CTR_256_GUID => false,
                    _ => return Err(EfiError::Unsupported),
                }
            };
            let mut done = 0;
            while done < len {
                let bytes = read(reseed).ok_or(EfiError::DeviceError)?.to_le_bytes();
                let n = (len - done).min(8);
                // SAFETY: the payload's buffer holds `len` bytes.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), value.add(done), n) };
                done += n;
            }
            Ok(())
        })())
    }
}

/// Installs the protocol on a new handle when the CPU has FEAT_RNG.
pub fn install(c: &mut Core) -> Result<bool, EfiError> {
    if !available() {
        return Ok(false);
    }
    let p = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, size_of::<rng::Protocol>())? as *mut rng::Protocol;
    // SAFETY: fresh pool memory for the protocol.
    unsafe { p.write(rng::Protocol { get_info: get_info::entry, get_rng: get_rng::entry }) };
    c.handles.install(None, &rng::PROTOCOL_GUID, p as usize)?;
    Ok(true)
}
