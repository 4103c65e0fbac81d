//! The emulator's own heap: a linked-list allocator over a range of the mempool the boot flow
//! sets aside, the global allocator of the blob.

/// The emulator's global allocator: a linked-list heap over a range of the mempool.
struct EmulatorHeap(core::cell::UnsafeCell<linked_list_allocator::Heap>);

// SAFETY: one CPU and no interrupts: allocations never run concurrently or re-entrantly.
unsafe impl Sync for EmulatorHeap {}

/// Hands `[start, start + size)` to the allocator.
///
/// # Safety
/// The range must be unused RAM, and this must be called once, before the first allocation.
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: per the contract; no allocation runs concurrently (one CPU).
    unsafe { (*HEAP.0.get()).init(start as *mut u8, size as usize) };
}

// SAFETY: allocation is delegated to linked_list_allocator, which hands out disjoint blocks.
unsafe impl core::alloc::GlobalAlloc for EmulatorHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: no other access to the heap is in progress (see the Sync impl).
        unsafe { (*self.0.get()).allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr()) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { (*self.0.get()).deallocate(core::ptr::NonNull::new_unchecked(ptr), layout) }
    }
}

/// Bytes of the emulator's heap in use now.
pub fn used() -> u64 {
    // SAFETY: a read of the allocator's counters; no allocation runs concurrently (one CPU).
    unsafe { (*HEAP.0.get()).used() as u64 }
}

#[global_allocator]
static HEAP: EmulatorHeap = EmulatorHeap(core::cell::UnsafeCell::new(linked_list_allocator::Heap::empty()));
