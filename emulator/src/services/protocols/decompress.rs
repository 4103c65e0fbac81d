//! EFI_DECOMPRESS_PROTOCOL (UEFI 2.10 section 19.5): the EFI compression format, which
//! compressed option ROM drivers and some tools use. The decoder keeps its tables on the
//! stack; the scratch buffer the protocol makes callers pass is checked for size only.

use crate::efi::decompress::{self as codec, Version};
use crate::services::*;
use core::ffi::c_void;
use efi::protocols::decompress as dc;

/// The scratch size GetInfo reports (and Decompress then requires, as the spec says).
pub const SCRATCH_SIZE: u32 = 4096;

/// The source buffer, with its header's sizes checked against `size`.
///
/// # Safety
/// `source` is NULL or points to `size` readable bytes.
unsafe fn source_arg<'a>(source: *mut c_void, size: u32) -> Result<(&'a [u8], usize), EfiError> {
    // SAFETY: per this function's contract.
    let src = unsafe { bytes_arg(source as *const u8, size as usize)? };
    let (_, orig) = codec::sizes(src).map_err(|_| EfiError::InvalidParameter)?;
    Ok((src, orig))
}

efiapi! {
    fn get_info(this: *mut dc::Protocol, source: *mut c_void, source_size: u32, destination_size: *mut u32, scratch_size: *mut u32) -> Status {
        guarded(|| {
            let _ = this;
            if source.is_null() || destination_size.is_null() || scratch_size.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's source of `source_size` bytes, and its out-arguments.
            unsafe {
                let (_, orig) = source_arg(source, source_size)?;
                out(destination_size, orig as u32)?;
                out(scratch_size, SCRATCH_SIZE)
            }
        })
    }

    fn decompress(this: *mut dc::Protocol, source: *mut c_void, source_size: u32, destination: *mut c_void, destination_size: u32, scratch: *mut c_void, scratch_size: u32) -> Status {
        guarded(|| {
            let _ = this;
            if source.is_null() || destination.is_null() || scratch.is_null() || scratch_size < SCRATCH_SIZE {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's source of `source_size` bytes.
            let (src, orig) = unsafe { source_arg(source, source_size)? };
            if (destination_size as usize) < orig {
                return Err(EfiError::InvalidParameter);
            }
            // SAFETY: the payload's destination of `destination_size` bytes (checked above to
            // hold the output), not overlapping the source it passes.
            let dst = unsafe { core::slice::from_raw_parts_mut(destination as *mut u8, orig) };
            codec::decompress(src, dst, Version::Efi).map(|_| ()).map_err(|e| {
                log::warn!("Decompress: {e}");
                EfiError::InvalidParameter
            })
        })
    }
}

pub fn install(c: &mut Core) -> Result<(), EfiError> {
    install_protocol(c, &dc::PROTOCOL_GUID, dc::Protocol { get_info: get_info::entry, decompress: decompress::entry })?;
    Ok(())
}
