//! AllocatePool/FreePool: per memory type, heaps grown from pages of that type.
//!
//! Each allocation carries a 16-byte header (magic, type, size) in front of the pointer handed
//! out, so FreePool finds its heap and refuses pointers it never gave (or gave and took back).
//! Chunks that become empty are returned to the memory map.

use super::memory::{AllocateType, MemoryMap};
use super::EfiError;
use crate::mem::PAGE_SIZE;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;
use linked_list_allocator::Heap;

const MAGIC: u32 = 0x6c6f_6f70; // "pool"
const FREED: u32 = 0x6565_7266; // "free"
const HEADER: usize = 16;
/// Smallest chunk of pages a heap grows by.
const CHUNK: u64 = 64 * 1024;

struct Chunk {
    ty: u32,
    start: u64,
    size: u64,
    used: usize,
    heap: Heap,
}

// SAFETY: the heap only holds pointers into its own chunk, and the pool lives on one CPU.
unsafe impl Send for Chunk {}

#[derive(Default)]
pub struct Pool {
    chunks: Vec<Chunk>,
}

fn layout(size: usize) -> Result<Layout, EfiError> {
    Layout::from_size_align(size.checked_add(HEADER).ok_or(EfiError::OutOfResources)?, 16).map_err(|_| EfiError::OutOfResources)
}

impl Pool {
    /// AllocatePool: `size` bytes of memory type `ty`, 8-byte aligned (16 in fact).
    pub fn allocate(&mut self, map: &mut MemoryMap, ty: u32, size: usize) -> Result<*mut u8, EfiError> {
        if !super::memory::is_allocatable_type(ty) {
            return Err(EfiError::InvalidParameter);
        }
        let layout = layout(size)?;
        let found = self.chunks.iter_mut().enumerate().filter(|(_, c)| c.ty == ty).find_map(|(i, c)| c.heap.allocate_first_fit(layout).ok().map(|b| (i, b)));
        let (index, block) = match found {
            Some(hit) => hit,
            None => {
                // No room: a new chunk of this type, big enough for the request and the
                // heap's own bookkeeping.
                let bytes = (layout.size() as u64 + 256).next_multiple_of(PAGE_SIZE).max(CHUNK);
                let start = map.allocate(AllocateType::AnyPages, ty, bytes / PAGE_SIZE, PAGE_SIZE).map_err(|_| EfiError::OutOfResources)?;
                let mut heap = Heap::empty();
                // SAFETY: the pages were just allocated for this heap alone; RAM is identity-
                // mapped (or, in host tests, the map's addresses are host memory).
                unsafe { heap.init(start as *mut u8, bytes as usize) };
                let block = heap.allocate_first_fit(layout).map_err(|_| EfiError::OutOfResources)?;
                self.chunks.push(Chunk { ty, start, size: bytes, used: 0, heap });
                (self.chunks.len() - 1, block)
            }
        };
        let chunk = &mut self.chunks[index];
        chunk.used += layout.size();
        let header = block.as_ptr();
        // SAFETY: the block is at least HEADER + size bytes and 16-byte aligned.
        unsafe {
            (header as *mut u32).write(MAGIC);
            (header.add(4) as *mut u32).write(ty);
            (header.add(8) as *mut u64).write(size as u64);
            Ok(header.add(HEADER))
        }
    }

    /// FreePool. An address that is not a live pool allocation is `InvalidParameter`. Taking an
    /// address, not a pointer, keeps this safe: only memory inside the pool's own chunks is read.
    pub fn free(&mut self, map: &mut MemoryMap, addr: u64) -> Result<(), EfiError> {
        let index = self.chunks.iter().position(|c| addr >= c.start + HEADER as u64 && addr < c.start + c.size).ok_or(EfiError::InvalidParameter)?;
        if !addr.is_multiple_of(16) {
            return Err(EfiError::InvalidParameter);
        }
        let header = (addr - HEADER as u64) as *mut u8;
        // SAFETY: `header` lies inside one of our chunks (checked above), which is mapped memory
        // the pool owns, and is 16-byte aligned.
        let (magic, size) = unsafe { ((header as *const u32).read(), (header.add(8) as *const u64).read()) };
        if magic != MAGIC {
            return Err(EfiError::InvalidParameter);
        }
        let layout = layout(size as usize)?;
        let chunk = &mut self.chunks[index];
        // SAFETY: the header proves this block was allocated from this chunk with this layout.
        unsafe {
            (header as *mut u32).write(FREED);
            chunk.heap.deallocate(NonNull::new_unchecked(header), layout);
        }
        chunk.used -= layout.size();
        if chunk.used == 0 {
            let (start, pages) = (chunk.start, chunk.size / PAGE_SIZE);
            self.chunks.swap_remove(index);
            map.free(start, pages)?;
        }
        Ok(())
    }

    /// The memory type of a live allocation.
    pub fn type_of(&self, ptr: *const u8) -> Option<u32> {
        let addr = ptr as u64;
        self.chunks.iter().find(|c| addr >= c.start + HEADER as u64 && addr < c.start + c.size).map(|c| c.ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi::memory::Region;
    use r_efi::efi;
    use std::vec;

    /// Host memory posing as a conventional region: addresses in the map are real pointers.
    fn host_ram(mib: usize) -> (Vec<u8>, MemoryMap) {
        let buf = vec![0u8; (mib << 20) + 4096];
        let start = (buf.as_ptr() as u64).next_multiple_of(4096);
        let map = MemoryMap::new(vec![Region { ty: efi::CONVENTIONAL_MEMORY, start, pages: (mib as u64) << 8, attr: efi::MEMORY_WB, virt: 0, allocated: false }]);
        (buf, map)
    }

    #[test]
    fn allocations_are_aligned_typed_and_disjoint() {
        let (_ram, mut map) = host_ram(4);
        let mut pool = Pool::default();
        let a = pool.allocate(&mut map, efi::LOADER_DATA, 100).unwrap();
        let b = pool.allocate(&mut map, efi::LOADER_DATA, 24).unwrap();
        let c = pool.allocate(&mut map, efi::ACPI_RECLAIM_MEMORY, 8).unwrap();
        assert!((a as u64).is_multiple_of(8) && (b as u64).is_multiple_of(8));
        assert!((b as u64) >= a as u64 + 100 || (a as u64) >= b as u64 + 24);
        assert_eq!(pool.type_of(a), Some(efi::LOADER_DATA));
        assert_eq!(map.find(c as u64).unwrap().ty, efi::ACPI_RECLAIM_MEMORY, "pool memory has its type in the map");
        // SAFETY: writes inside allocations just made.
        unsafe { a.write_bytes(0xaa, 100) };
        // SAFETY: as above.
        unsafe { b.write_bytes(0xbb, 24) };
        // SAFETY: as above.
        assert_eq!(unsafe { *a.add(99) }, 0xaa);
    }

    #[test]
    fn freeing_returns_empty_chunks_to_the_map_and_refuses_bad_pointers() {
        let (_ram, mut map) = host_ram(4);
        let free_before = map.free_pages();
        let mut pool = Pool::default();
        let a = pool.allocate(&mut map, efi::LOADER_DATA, 10).unwrap();
        let big = pool.allocate(&mut map, efi::LOADER_DATA, 300_000).unwrap();
        assert!(map.free_pages() < free_before);
        assert_eq!(pool.free(&mut map, a as u64 + 8), Err(EfiError::InvalidParameter), "not the start of an allocation");
        assert_eq!(pool.free(&mut map, 0x10), Err(EfiError::InvalidParameter), "not ours");
        pool.free(&mut map, a as u64).unwrap();
        pool.free(&mut map, big as u64).unwrap();
        assert_eq!(map.free_pages(), free_before, "everything went back");
        assert_eq!(pool.free(&mut map, a as u64), Err(EfiError::InvalidParameter), "double free");
        assert_eq!(pool.allocate(&mut map, efi::CONVENTIONAL_MEMORY, 1), Err(EfiError::InvalidParameter));
        assert_eq!(pool.allocate(&mut map, efi::LOADER_DATA, 8 << 20), Err(EfiError::OutOfResources));
    }

    #[test]
    fn many_small_allocations_share_chunks() {
        let (_ram, mut map) = host_ram(4);
        let mut pool = Pool::default();
        let ptrs: Vec<_> = (0..200).map(|i| pool.allocate(&mut map, efi::BOOT_SERVICES_DATA, 16 + i).unwrap()).collect();
        assert!(pool.chunks.len() <= 2, "{} chunks", pool.chunks.len());
        for p in ptrs {
            pool.free(&mut map, p as u64).unwrap();
        }
        assert!(pool.chunks.is_empty());
    }
}
