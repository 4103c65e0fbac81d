//! Reading and writing a payload's pointer arguments. NULL is `InvalidParameter`; anything else
//! the payload vouches for, as the UEFI calling convention makes it do, and these functions say
//! so in their contracts.

use crate::efi::EfiError;
use r_efi::efi::Guid;

/// Reads a GUID argument.
///
/// # Safety
/// `g` is NULL or points to 16 readable bytes (alignment not required).
pub unsafe fn guid_arg(g: *const Guid) -> Result<Guid, EfiError> {
    if g.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL, readable per the contract; read_unaligned needs no alignment.
    Ok(unsafe { core::ptr::read_unaligned(g) })
}

/// Reads an in or in/out argument.
///
/// # Safety
/// `p` is NULL or points to a readable `T` (alignment not required).
pub unsafe fn read<T>(p: *const T) -> Result<T, EfiError> {
    if p.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL, readable per the contract.
    Ok(unsafe { p.read_unaligned() })
}

/// Writes an out-parameter.
///
/// # Safety
/// `p` is NULL or points to a writable `T` (alignment not required).
pub unsafe fn out<T>(p: *mut T, v: T) -> Result<(), EfiError> {
    if p.is_null() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: non-NULL, writable per the contract.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// The size-probe convention of GetMemoryMap, LocateHandle, GetVariable, LoadFile, GetInfo:
/// `*size` is the caller's buffer size; it is set to `needed`, and a smaller buffer is
/// `BufferTooSmall`. Returns the caller's size.
///
/// # Safety
/// `size` is NULL or points to a readable and writable `usize`.
pub unsafe fn sized_buffer(size: *mut usize, needed: usize) -> Result<usize, EfiError> {
    // SAFETY: per the contract.
    let have = unsafe { read(size)? };
    // SAFETY: per the contract.
    unsafe { out(size, needed)? };
    if have < needed {
        Err(EfiError::BufferTooSmall)
    } else {
        Ok(have)
    }
}

/// Longest UCS-2 string argument accepted, in code units.
const MAX_STRING: usize = 32 * 1024;

/// A NUL-terminated UCS-2 string argument, without its NUL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UCS-2 string (or at least `MAX_STRING` readable
/// units) that stays unchanged while the result is used.
pub unsafe fn ucs2_arg<'a>(p: *const u16) -> Result<&'a [u16], EfiError> {
    if p.is_null() || !p.is_aligned() {
        return Err(EfiError::InvalidParameter);
    }
    let mut n = 0;
    // SAFETY: readable up to its NUL per the contract; the length is bounded.
    while unsafe { p.add(n).read() } != 0 {
        n += 1;
        if n > MAX_STRING {
            return Err(EfiError::InvalidParameter);
        }
    }
    // SAFETY: `n` aligned units were just read.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

/// A NUL-terminated UCS-2 string in a buffer of `units` units: refused when no NUL lies in the
/// buffer, which is never read past (GetNextVariableName's VariableNameSize).
///
/// # Safety
/// `p` is NULL or points to `units` readable units that stay unchanged while the result is used.
pub unsafe fn ucs2_arg_within<'a>(p: *const u16, units: usize) -> Result<&'a [u16], EfiError> {
    if p.is_null() || !p.is_aligned() {
        return Err(EfiError::InvalidParameter);
    }
    // SAFETY: `units` readable units per the contract.
    let buffer = unsafe { core::slice::from_raw_parts(p, units.min(MAX_STRING + 1)) };
    let n = buffer.iter().position(|&u| u == 0).ok_or(EfiError::InvalidParameter)?;
    Ok(&buffer[..n])
}

/// `len` bytes the payload passed.
///
/// # Safety
/// `p` is NULL (only with `len` 0) or points to `len` readable bytes that stay unchanged while
/// the result is used.
pub unsafe fn bytes_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8], EfiError> {
    match (p.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(EfiError::InvalidParameter),
        // SAFETY: per the contract.
        (false, _) => Ok(unsafe { core::slice::from_raw_parts(p, len) }),
    }
}
