//! Memory services: AllocatePages, FreePages, GetMemoryMap, AllocatePool, FreePool.

use super::*;
use crate::efi::memory::AllocateType;
use core::ffi::c_void;

/// Descriptor stride GetMemoryMap reports (EDK2's, larger than the struct, so payloads must
/// step by DescriptorSize as the spec says).
pub const DESC_SIZE: usize = 48;

efiapi! {
    fn allocate_pages(how: efi::AllocateType, ty: efi::MemoryType, pages: usize, memory: *mut efi::PhysicalAddress) -> Status {
        guarded_growing(|| {
            // SAFETY: `memory` is the payload's in/out address argument.
            let addr = unsafe { read(memory)? };
            let how = match how {
                efi::ALLOCATE_ANY_PAGES => AllocateType::AnyPages,
                efi::ALLOCATE_MAX_ADDRESS => AllocateType::MaxAddress(addr),
                efi::ALLOCATE_ADDRESS => AllocateType::Address(addr),
                _ => return Err(EfiError::InvalidParameter),
            };
            let at = with_core(|c| c.memory.allocate(how, ty, pages as u64, PAGE_SIZE))?;
            // SAFETY: as above.
            unsafe { out(memory, at) }
        })
    }

    fn free_pages(memory: efi::PhysicalAddress, pages: usize) -> Status {
        guarded(|| with_core(|c| c.memory.free(memory, pages as u64)))
    }

    fn get_memory_map(size: *mut usize, map: *mut efi::MemoryDescriptor, key: *mut usize, desc_size: *mut usize, version: *mut u32) -> Status {
        guarded(|| {
            // SAFETY: `size` is the payload's in/out size argument.
            let have = unsafe { read(size)? };
            // SAFETY: optional out-arguments of the payload (NULL is skipped).
            unsafe {
                if !desc_size.is_null() {
                    out(desc_size, DESC_SIZE)?;
                }
                if !version.is_null() {
                    out(version, efi::MEMORY_DESCRIPTOR_VERSION)?;
                }
            }
            with_core(|c| {
                let buf = (!map.is_null()).then(|| {
                    // SAFETY: the payload says `have` bytes at `map` are its buffer.
                    unsafe { core::slice::from_raw_parts_mut(map as *mut u8, have) }
                });
                let written = c.memory.write_descriptors(buf, DESC_SIZE);
                // SAFETY: `size` and `key` are the payload's out-arguments.
                unsafe {
                    match written {
                        Ok(n) => {
                            out(size, n)?;
                            // Optional, as EDK2 has it (UEFI 2.10 does not list a NULL MapKey
                            // as invalid).
                            if !key.is_null() {
                                out(key, c.memory.key())?;
                            }
                            Ok(())
                        }
                        Err((EfiError::BufferTooSmall, needed)) if map.is_null() && have >= needed => Err(EfiError::InvalidParameter),
                        Err((e, needed)) => {
                            out(size, needed)?;
                            Err(e)
                        }
                    }
                }
            })
        })
    }

    fn allocate_pool(ty: efi::MemoryType, size: usize, buffer: *mut *mut c_void) -> Status {
        guarded_growing(|| {
            if buffer.is_null() {
                return Err(EfiError::InvalidParameter);
            }
            let p = with_core(|c| c.pool.allocate(&mut c.memory, ty, size))?;
            // SAFETY: `buffer` is the payload's out-argument.
            unsafe { out(buffer, p as *mut c_void) }
        })
    }

    fn free_pool(buffer: *mut c_void) -> Status {
        guarded(|| with_core(|c| c.pool.free(&mut c.memory, buffer as u64)))
    }
}
