//! The emulator's own heap (its tables: handles, events, the memory map, images): linked-list
//! heaps over regions of RAM, the first from the mempool the boot flow sets aside, the others
//! pages boot services take from the memory map when it runs low (`services::heap_room`), so a
//! payload that fills the tables gets EFI_OUT_OF_RESOURCES when RAM runs out, not a fatal error.
//! The global allocator of the blob; the host tests use `Regions` directly.

use linked_list_allocator::Heap;

/// How many regions the heap can have: the first, and growth in `services::HEAP_GROWTH` steps.
pub const MAX_REGIONS: usize = 16;

/// The heap's regions, each its own linked-list heap; an allocation takes the first that fits.
pub struct Regions {
    heaps: [Heap; MAX_REGIONS],
    count: usize,
}

impl Regions {
    pub const fn new() -> Self {
        Regions { heaps: [const { Heap::empty() }; MAX_REGIONS], count: 0 }
    }

    /// Adds `[start, start + size)`; false when every region is taken (nothing changes then).
    ///
    /// # Safety
    /// The range must be writable memory nothing else uses, for as long as the heap is used.
    pub unsafe fn add(&mut self, start: *mut u8, size: usize) -> bool {
        let Some(heap) = self.heaps.get_mut(self.count) else { return false };
        // SAFETY: per the contract; the slot was never initialised.
        unsafe { heap.init(start, size) };
        self.count += 1;
        true
    }

    pub fn allocate(&mut self, layout: core::alloc::Layout) -> *mut u8 {
        self.heaps[..self.count].iter_mut().find_map(|h| h.allocate_first_fit(layout).ok()).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    /// # Safety
    /// `ptr` must come from [`Regions::allocate`] with this layout and not be freed yet.
    pub unsafe fn deallocate(&mut self, ptr: *mut u8, layout: core::alloc::Layout) {
        let Some(heap) = self.heaps[..self.count].iter_mut().find(|h| h.bottom() <= ptr && ptr < h.top()) else { return };
        // SAFETY: per the contract; `ptr` lies in this region, so this heap gave it.
        unsafe { heap.deallocate(core::ptr::NonNull::new_unchecked(ptr), layout) }
    }

    pub fn used(&self) -> u64 {
        self.heaps[..self.count].iter().map(|h| h.used() as u64).sum()
    }

    pub fn free(&self) -> u64 {
        self.heaps[..self.count].iter().map(|h| h.free() as u64).sum()
    }
}

impl Default for Regions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod global {
    use super::Regions;

    /// The emulator's global allocator.
    struct EmulatorHeap(core::cell::UnsafeCell<Regions>);

    // SAFETY: one CPU and no interrupts: allocations never run concurrently or re-entrantly.
    unsafe impl Sync for EmulatorHeap {}

    #[global_allocator]
    static HEAP: EmulatorHeap = EmulatorHeap(core::cell::UnsafeCell::new(Regions::new()));

    // SAFETY: allocation is delegated to linked_list_allocator, which hands out disjoint blocks
    // of disjoint regions.
    unsafe impl core::alloc::GlobalAlloc for EmulatorHeap {
        unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
            // SAFETY: no other access to the heap is in progress (see the Sync impl).
            unsafe { (*self.0.get()).allocate(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
            // SAFETY: `ptr` came from `alloc` with this layout; no other access is in progress.
            unsafe { (*self.0.get()).deallocate(ptr, layout) }
        }
    }

    /// Gives `[start, start + size)` to the heap; false when it can take no more regions.
    ///
    /// # Safety
    /// The range must be writable RAM nothing else uses while boot services run.
    pub unsafe fn add(start: u64, size: u64) -> bool {
        // SAFETY: per the contract; no allocation runs concurrently (one CPU).
        unsafe { (*HEAP.0.get()).add(start as *mut u8, size as usize) }
    }

    /// Bytes of the emulator's heap in use now, and free.
    pub fn used() -> u64 {
        // SAFETY: a read of the allocator's counters; no allocation runs concurrently (one CPU).
        unsafe { (*HEAP.0.get()).used() }
    }

    pub fn free() -> u64 {
        // SAFETY: as in `used`.
        unsafe { (*HEAP.0.get()).free() }
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use global::{add, free, used};

#[cfg(test)]
mod tests {
    use super::*;
    use core::alloc::Layout;

    #[test]
    fn allocations_spill_into_added_regions_and_free_back_to_theirs() {
        let mut first = std::vec![0u64; 512]; // 4 KiB
        let mut second = std::vec![0u64; 8192]; // 64 KiB
        let mut heap = Regions::new();
        // SAFETY: both buffers outlive `heap` and nothing else touches them.
        assert!(unsafe { heap.add(first.as_mut_ptr().cast(), 4096) });
        let big = Layout::from_size_align(16 * 1024, 16).unwrap();
        assert!(heap.allocate(big).is_null(), "larger than the first region");
        // SAFETY: as above.
        assert!(unsafe { heap.add(second.as_mut_ptr().cast(), 64 * 1024) });
        let p = heap.allocate(big);
        let second_range = second.as_ptr_range();
        assert!(second_range.contains(&(p as *const u64)), "from the added region");
        let small = Layout::from_size_align(64, 8).unwrap();
        let q = heap.allocate(small);
        assert!(first.as_ptr_range().contains(&(q as *const u64)), "the first region first");
        let (used, free) = (heap.used(), heap.free());
        assert_eq!(used + free, 4096 + 64 * 1024);
        // SAFETY: `p` and `q` came from `allocate` with these layouts.
        unsafe {
            heap.deallocate(p, big);
            heap.deallocate(q, small);
        }
        assert_eq!(heap.used(), 0);
        let mut more = std::vec![0u8; 4096];
        for i in 2..MAX_REGIONS {
            // SAFETY: `more` outlives `heap`; each region is its own 256 bytes of it.
            assert!(unsafe { heap.add(more.as_mut_ptr().add(i * 256), 256) });
        }
        // SAFETY: the last, unused 256 bytes of `more`.
        assert!(!unsafe { heap.add(more.as_mut_ptr().add(3840), 256) }, "every region taken");
    }
}
