//! EFI_MEMORY_ATTRIBUTE_PROTOCOL on the live page tables, so NX_COMPAT images (the 6.12 stub
//! remapping a relocated kernel) keep W^X. RO and XP are served; RP (read-prevent) is not.
//! `/chosen/efi-emulator,no-memory-attribute` hides the protocol from payloads that misuse it.

use super::*;
use crate::arch::aarch64::mmu;
use crate::arch::aarch64::page_table::Attributes;
use core::mem::size_of;
use efi::protocols::memory_attribute as ma;

const SUPPORTED: u64 = efi::MEMORY_RO | efi::MEMORY_XP;

fn check_range(base: u64, length: u64) -> Result<(), EfiError> {
    if length == 0 || !base.is_multiple_of(PAGE_SIZE) || !length.is_multiple_of(PAGE_SIZE) || base.checked_add(length).is_none() {
        return Err(EfiError::InvalidParameter);
    }
    Ok(())
}

fn bits_of(a: Attributes) -> u64 {
    (if a.writable { 0 } else { efi::MEMORY_RO }) | (if a.executable { 0 } else { efi::MEMORY_XP })
}

/// Applies `f` to the attributes of every page of the range, a run of equal pages at a time.
fn change(base: u64, length: u64, attributes: u64, f: fn(Attributes, u64) -> Attributes, verb: &str) -> Result<(), EfiError> {
    check_range(base, length)?;
    log::info!("memory attributes: {verb} {attributes:#x} on {base:#x}..{:#x}", base + length);
    if attributes == 0 || attributes & !(SUPPORTED | efi::MEMORY_RP) != 0 {
        return Err(EfiError::InvalidParameter);
    }
    if attributes & efi::MEMORY_RP != 0 {
        return Err(EfiError::Unsupported);
    }
    let mut at = base;
    while at < base + length {
        let current = mmu::attributes_of(at).ok_or(EfiError::NotFound)?;
        let mut end = at + PAGE_SIZE;
        while end < base + length && mmu::attributes_of(end) == Some(current) {
            end += PAGE_SIZE;
        }
        mmu::protect(at, end - at, f(current, attributes)).map_err(|_| EfiError::OutOfResources)?;
        at = end;
    }
    Ok(())
}

efiapi! {
    fn get_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: *mut u64) -> Status {
        if let Err(s) = boot_services_available() {
            return s;
        }
        status((|| {
            if this.is_null() || attributes.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            check_range(base, length)?;
            let first = mmu::attributes_of(base).ok_or(EfiError::NotFound)?;
            let mut at = base + PAGE_SIZE;
            while at < base + length {
                if mmu::attributes_of(at) != Some(first) {
                    // Not one set of attributes over the range.
                    return Err(EfiError::NotFound);
                }
                at += PAGE_SIZE;
            }
            out(attributes, bits_of(first))
        })())
        .pipe_no_mapping()
    }

    fn set_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: u64) -> Status {
        if let Err(s) = boot_services_available() {
            return s;
        }
        if this.is_null() {
            return Status::INVALID_PARAMETER;
        }
        status(change(base, length, attributes, |a, bits| Attributes {
            writable: a.writable && bits & efi::MEMORY_RO == 0,
            executable: a.executable && bits & efi::MEMORY_XP == 0,
            ..a
        }, "set"))
        .pipe_no_mapping()
    }

    fn clear_memory_attributes(this: *mut ma::Protocol, base: efi::PhysicalAddress, length: u64, attributes: u64) -> Status {
        if let Err(s) = boot_services_available() {
            return s;
        }
        if this.is_null() {
            return Status::INVALID_PARAMETER;
        }
        status(change(base, length, attributes, |a, bits| Attributes {
            writable: a.writable || bits & efi::MEMORY_RO != 0,
            executable: a.executable || bits & efi::MEMORY_XP != 0,
            ..a
        }, "clear"))
        .pipe_no_mapping()
    }
}

/// The protocol reports unmapped (or non-uniform) ranges as EFI_NO_MAPPING, which the core's
/// error type does not carry: its NotFound stands for it here.
trait NoMapping {
    fn pipe_no_mapping(self) -> Status;
}
impl NoMapping for Status {
    fn pipe_no_mapping(self) -> Status {
        if self == Status::NOT_FOUND {
            Status::NO_MAPPING
        } else {
            self
        }
    }
}

pub fn install(c: &mut Core) -> Result<(), EfiError> {
    let p = c.pool.allocate(&mut c.memory, efi::BOOT_SERVICES_DATA, size_of::<ma::Protocol>())? as *mut ma::Protocol;
    // SAFETY: fresh pool memory for the protocol.
    unsafe {
        p.write(ma::Protocol {
            get_memory_attributes: get_memory_attributes::entry,
            set_memory_attributes: set_memory_attributes::entry,
            clear_memory_attributes: clear_memory_attributes::entry,
        })
    };
    c.handles.install(None, &ma::PROTOCOL_GUID, p as usize)?;
    Ok(())
}
