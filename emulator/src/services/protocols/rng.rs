//! EFI_RNG_PROTOCOL from the CPU's random number instructions (FEAT_RNG): RNDRRS for the raw
//! algorithm (reseeded for every number), RNDR for the SP800-90 CTR-256 DRBG algorithm (the
//! architecture specifies RNDR as the output of such a DRBG). Not installed without FEAT_RNG.

use crate::efi::platform::Entropy;
use crate::services::*;
use core::mem::size_of;
use efi::protocols::rng;

const ALGORITHMS: [rng::Algorithm; 2] = [rng::ALGORITHM_SP800_90_CTR_256_GUID, rng::ALGORITHM_RAW];

efiapi! {
    fn get_info(this: *mut rng::Protocol, size: *mut usize, list: *mut rng::Algorithm) -> Status {
        run(|| {
            if this.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's in/out size argument.
            unsafe { sized_buffer(size, ALGORITHMS.len() * size_of::<rng::Algorithm>())? };
            if list.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            for (i, a) in ALGORITHMS.iter().enumerate() {
                // SAFETY: the payload's list holds at least the bytes `sized_buffer` asked for.
                unsafe { list.add(i).write_unaligned(*a) };
            }
            Ok(())
        })
    }

    fn get_rng(this: *mut rng::Protocol, algorithm: *mut rng::Algorithm, len: usize, value: *mut u8) -> Status {
        run(|| {
            if this.is_null() || value.is_null() || len == 0 {
                return Err(EfiError::InvalidParameter);
            }
            let reseed = if algorithm.is_null() {
                false
            } else {
                // SAFETY: the payload's GUID argument.
                match unsafe { guid_arg(algorithm)? } {
                    g if g == rng::ALGORITHM_RAW => true,
                    g if g == rng::ALGORITHM_SP800_90_CTR_256_GUID => false,
                    _ => return Err(EfiError::Unsupported),
                }
            };
            let mut done = 0;
            while done < len {
                let bytes = Machine::random(reseed).ok_or(EfiError::DeviceError)?.to_le_bytes();
                let n = (len - done).min(8);
                // SAFETY: the payload's buffer holds `len` bytes.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), value.add(done), n) };
                done += n;
            }
            Ok(())
        })
    }
}

/// Installs the protocol on a new handle when the CPU has FEAT_RNG.
pub fn install(c: &mut Core) -> Result<bool, EfiError> {
    if !Machine::has_random() {
        return Ok(false);
    }
    install_protocol(c, &rng::PROTOCOL_GUID, rng::Protocol { get_info: get_info::entry, get_rng: get_rng::entry })?;
    Ok(true)
}
