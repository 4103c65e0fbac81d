//! EFI_MEMORY_ATTRIBUTE_PROTOCOL on the live page tables, so NX_COMPAT images (the 6.12 stub
//! remapping a relocated kernel) keep W^X. RO and XP are served; RP (read-prevent) is never set
//! (SetMemoryAttributes with RP is EFI_UNSUPPORTED), so clearing it always succeeds: shim 15.7+
//! clears RP|XP on every code section of the image it loads.
//! `/chosen/efi-emulator,no-memory-attribute` hides the protocol from payloads that misuse it.

use crate::efi::platform::{Access, Protection};
use crate::services::*;
use efi::protocols::memory_attribute as ma;

const SUPPORTED: u64 = efi::MEMORY_RO | efi::MEMORY_XP;

fn check_range(base: u64, length: u64) -> Result<(), EfiError> {
    if length == 0 || !base.is_multiple_of(PAGE_SIZE) || !length.is_multiple_of(PAGE_SIZE) || base.checked_add(length).is_none() {
        return Err(EfiError::InvalidParameter);
    }
    Ok(())
}

/// The protocol reports unmapped (or non-uniform) ranges as EFI_NO_MAPPING, which the core's
/// error type does not carry: its NotFound stands for it here.
fn no_mapping(s: Status) -> Status {
    if s == Status::NOT_FOUND {
        Status::NO_MAPPING
    } else {
        s
    }
}

/// Applies `f` to the access of every page of the range, a run of equal pages at a time; `set`
/// says whether the attributes are being set or cleared.
fn change(this: *mut ma::Protocol, base: u64, length: u64, attributes: u64, f: fn(Access, u64) -> Access, set: bool) -> Status {
    no_mapping(guarded(|| {
        if this.is_null() {
            return Err(EfiError::InvalidParameter);
        }
        check_range(base, length)?;
        log::info!("memory attributes: {} {attributes:#x} on {base:#x}..{:#x}", if set { "set" } else { "clear" }, base + length);
        if attributes == 0 || attributes & !(SUPPORTED | efi::MEMORY_RP) != 0 {
            return Err(EfiError::InvalidParameter);
        }
        if set && attributes & efi::MEMORY_RP != 0 {
            return Err(EfiError::Unsupported);
        }
        let mut at = base;
        while at < base + length {
            let current = Machine::access_of(at).ok_or(EfiError::NotFound)?;
            let mut end = at + PAGE_SIZE;
            while end < base + length && Machine::access_of(end) == Some(current) {
                end += PAGE_SIZE;
            }
            Machine::set_access(at, end - at, f(current, attributes)).map_err(|_| EfiError::OutOfResources)?;
            at = end;
        }
        Ok(())
    }))
}

efiapi! {
    fn get_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: *mut u64) -> Status {
        no_mapping(guarded(|| {
            if this.is_null() || attributes.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            check_range(base, length)?;
            let first = Machine::access_of(base).ok_or(EfiError::NotFound)?;
            let mut at = base + PAGE_SIZE;
            while at < base + length {
                if Machine::access_of(at) != Some(first) {
                    // Not one set of attributes over the range.
                    return Err(EfiError::NotFound);
                }
                at += PAGE_SIZE;
            }
            // SAFETY: the payload's out-argument.
            unsafe { out(attributes, first.efi_bits()) }
        }))
    }

    fn set_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: u64) -> Status {
        let f = |a: Access, bits: u64| Access { writable: a.writable && bits & efi::MEMORY_RO == 0, executable: a.executable && bits & efi::MEMORY_XP == 0 };
        change(this, base, length, attributes, f, true)
    }

    fn clear_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: u64) -> Status {
        let f = |a: Access, bits: u64| Access { writable: a.writable || bits & efi::MEMORY_RO != 0, executable: a.executable || bits & efi::MEMORY_XP != 0 };
        change(this, base, length, attributes, f, false)
    }
}

pub fn install(c: &mut Core) -> Result<(), EfiError> {
    let protocol = ma::Protocol {
        get_memory_attributes: get_memory_attributes::entry,
        set_memory_attributes: set_memory_attributes::entry,
        clear_memory_attributes: clear_memory_attributes::entry,
    };
    install_protocol(c, &ma::PROTOCOL_GUID, protocol)?;
    Ok(())
}
