use super::*;
use std::vec;

const MIB: u64 = 1 << 20;

fn map() -> MemoryMap {
    // Occupied below 0x4100_0000, 16 MiB conventional, occupied above: a kexec map in small.
    let r = |ty, start: u64, end: u64| Region { ty, start, pages: (end - start) / PAGE_SIZE, attr: efi::MEMORY_WB, virt: 0, allocated: false };
    MemoryMap::new(vec![
        r(efi::BOOT_SERVICES_DATA, 0x4000_0000, 0x4100_0000),
        r(efi::CONVENTIONAL_MEMORY, 0x4100_0000, 0x4200_0000),
        r(efi::BOOT_SERVICES_DATA, 0x4200_0000, 0x8000_0000),
    ])
}

#[test]
fn any_pages_come_from_the_top_of_conventional_memory_and_change_the_key() {
    let mut m = map();
    let k0 = m.key();
    let a = m.allocate(AllocateType::AnyPages, efi::LOADER_DATA, 3, PAGE_SIZE).unwrap();
    assert_eq!(a, 0x4200_0000 - 3 * PAGE_SIZE);
    assert_ne!(m.key(), k0);
    assert_eq!(m.find(a).unwrap().ty, efi::LOADER_DATA);
    assert_eq!(m.free_pages(), 16 * MIB / PAGE_SIZE - 3);
}

#[test]
fn address_allocation_needs_free_pages_there() {
    let mut m = map();
    assert_eq!(m.allocate(AllocateType::Address(0x4100_0000), efi::LOADER_CODE, 16, PAGE_SIZE), Ok(0x4100_0000));
    assert_eq!(m.allocate(AllocateType::Address(0x4100_8000), efi::LOADER_CODE, 1, PAGE_SIZE), Err(EfiError::NotFound), "taken");
    assert_eq!(m.allocate(AllocateType::Address(0x4000_0000), efi::LOADER_CODE, 1, PAGE_SIZE), Err(EfiError::NotFound), "not conventional");
    assert_eq!(m.allocate(AllocateType::Address(0x41ff_f000), efi::LOADER_CODE, 2, PAGE_SIZE), Err(EfiError::NotFound), "runs past the pool");
    assert_eq!(m.allocate(AllocateType::Address(0x4110_0800), efi::LOADER_CODE, 1, PAGE_SIZE), Err(EfiError::InvalidParameter));
}

#[test]
fn max_address_allocation_stays_below_the_limit_and_aligns() {
    let mut m = map();
    let a = m.allocate(AllocateType::MaxAddress(0x4180_0000 - 1), efi::LOADER_CODE, 20, 2 * MIB).unwrap();
    assert_eq!(a, 0x4160_0000, "highest 2 MiB-aligned start that ends below the limit");
    assert_eq!(m.allocate(AllocateType::MaxAddress(0x40ff_ffff), efi::LOADER_CODE, 1, PAGE_SIZE), Err(EfiError::NotFound));
}

#[test]
fn aligned_allocation_then_freeing_its_slack_like_the_linux_stub() {
    let mut m = map();
    // efi_allocate_pages_aligned: over-allocate, keep an aligned middle, free head and tail.
    let pages = 300u64;
    let slack = 2 * MIB / PAGE_SIZE - 1;
    let base = m.allocate(AllocateType::MaxAddress(u64::MAX), efi::LOADER_CODE, pages + slack, PAGE_SIZE).unwrap();
    let aligned = base.next_multiple_of(2 * MIB);
    let head = (aligned - base) / PAGE_SIZE;
    if head > 0 {
        m.free(base, head).unwrap();
    }
    m.free(aligned + pages * PAGE_SIZE, slack - head).unwrap();
    let r = m.find(aligned).unwrap();
    assert_eq!((r.start, r.pages, r.ty), (aligned, pages, efi::LOADER_CODE));
    assert_eq!(m.free_pages(), 16 * MIB / PAGE_SIZE - pages);
}

#[test]
fn freeing_what_was_never_allocated_is_refused() {
    let mut m = map();
    assert_eq!(m.free(0x4000_0000, 1), Err(EfiError::NotFound), "loader-owned memory");
    assert_eq!(m.free(0x4100_0000, 1), Err(EfiError::NotFound), "free memory");
    let a = m.allocate(AllocateType::AnyPages, efi::LOADER_DATA, 2, PAGE_SIZE).unwrap();
    assert_eq!(m.free(a, 3), Err(EfiError::NotFound), "runs past the allocation");
    assert_eq!(m.free(a + 1, 1), Err(EfiError::InvalidParameter));
    m.free(a, 2).unwrap();
    assert_eq!(m.free(a, 2), Err(EfiError::NotFound), "double free");
}

#[test]
fn freeing_everything_coalesces_back_to_three_descriptors() {
    let mut m = map();
    let a = m.allocate(AllocateType::AnyPages, efi::LOADER_DATA, 5, PAGE_SIZE).unwrap();
    let b = m.allocate(AllocateType::AnyPages, efi::BOOT_SERVICES_DATA, 7, PAGE_SIZE).unwrap();
    assert_eq!(m.descriptors().len(), 5);
    m.free(a, 5).unwrap();
    m.free(b, 7).unwrap();
    assert_eq!(m.regions(), map().regions());
}

#[test]
fn runtime_allocations_are_64k_granular_and_marked_runtime() {
    let mut m = map();
    let a = m.allocate(AllocateType::AnyPages, efi::RUNTIME_SERVICES_DATA, 1, PAGE_SIZE).unwrap();
    assert_eq!(a % RUNTIME_GRANULE, 0);
    let r = *m.find(a).unwrap();
    assert_eq!(r.pages, 16);
    assert_eq!(r.attr, efi::MEMORY_WB | efi::MEMORY_RUNTIME);
    assert_eq!(m.allocate(AllocateType::AnyPages, efi::CONVENTIONAL_MEMORY, 1, PAGE_SIZE), Err(EfiError::InvalidParameter));
    assert_eq!(m.allocate(AllocateType::AnyPages, 0x7000_0001, 1, PAGE_SIZE).map(|_| ()), Ok(()), "OEM types are allowed");
    assert_eq!(m.allocate(AllocateType::AnyPages, efi::LOADER_DATA, 1 << 20, PAGE_SIZE), Err(EfiError::OutOfResources));
}

#[test]
fn get_memory_map_reports_size_needed_and_honours_the_stride() {
    let mut m = map();
    m.allocate(AllocateType::AnyPages, efi::LOADER_DATA, 1, PAGE_SIZE).unwrap();
    let (err, needed) = m.write_descriptors(None, 48).unwrap_err();
    assert_eq!((err, needed), (EfiError::BufferTooSmall, 4 * 48));
    let mut small = vec![0u8; needed - 1];
    assert_eq!(m.write_descriptors(Some(&mut small), 48).unwrap_err().1, needed);
    let mut buf = vec![0xffu8; needed];
    assert_eq!(m.write_descriptors(Some(&mut buf), 48), Ok(needed));
    let ty = |i: usize| u32::from_le_bytes(buf[i * 48..i * 48 + 4].try_into().unwrap());
    assert_eq!([ty(0), ty(1), ty(2), ty(3)], [efi::BOOT_SERVICES_DATA, efi::CONVENTIONAL_MEMORY, efi::LOADER_DATA, efi::BOOT_SERVICES_DATA]);
    assert_eq!(&buf[40..48], &[0; 8], "padding is zeroed");
}

/// A small deterministic generator for the property test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn property_random_operations_keep_the_map_consistent() {
    for seed in 1..=40u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut m = map();
        let total: u64 = m.regions().iter().map(|r| r.pages).sum();
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut key = m.key();
        for _ in 0..300 {
            let op = rng.next() % 4;
            let before = m.regions().to_vec();
            let result = match op {
                0 | 1 => {
                    let pages = 1 + rng.next() % 64;
                    let how = match rng.next() % 3 {
                        0 => AllocateType::AnyPages,
                        1 => AllocateType::MaxAddress(0x4100_0000 + (rng.next() % (16 * MIB))),
                        _ => AllocateType::Address(0x4100_0000 + (rng.next() % 4096) * PAGE_SIZE),
                    };
                    let ty = [efi::LOADER_CODE, efi::LOADER_DATA, efi::BOOT_SERVICES_DATA, efi::ACPI_RECLAIM_MEMORY][rng.next() as usize % 4];
                    m.allocate(how, ty, pages, PAGE_SIZE).map(|a| {
                        // Inside the original conventional range, never overlapping a live one.
                        assert!(a >= 0x4100_0000 && a + pages * PAGE_SIZE <= 0x4200_0000, "{a:#x}");
                        assert!(live.iter().all(|&(s, n)| a + pages * PAGE_SIZE <= s || s + n * PAGE_SIZE <= a));
                        if let AllocateType::MaxAddress(max) = how {
                            assert!(a + pages * PAGE_SIZE - 1 <= max);
                        }
                        live.push((a, pages));
                    })
                }
                2 if !live.is_empty() => {
                    // Free a random sub-range of a random allocation.
                    let i = rng.next() as usize % live.len();
                    let (s, n) = live.swap_remove(i);
                    let off = rng.next() % n;
                    let len = 1 + rng.next() % (n - off);
                    if off > 0 {
                        live.push((s, off));
                    }
                    if off + len < n {
                        live.push((s + (off + len) * PAGE_SIZE, n - off - len));
                    }
                    m.free(s + off * PAGE_SIZE, len)
                }
                _ => m.free(0x4000_0000 + (rng.next() % 4096) * PAGE_SIZE, 1).map(|_| panic!("freed loader memory")),
            };
            // Invariants: sorted, disjoint, coalesced neighbours differ, pages conserved, and
            // the key changes exactly when the map does.
            let regions = m.regions();
            assert!(regions.windows(2).all(|w| w[0].end() <= w[1].start));
            assert_eq!(regions.iter().map(|r| r.pages).sum::<u64>(), total);
            assert_eq!(live.iter().map(|l| l.1).sum::<u64>() + m.free_pages(), 16 * MIB / PAGE_SIZE);
            if result.is_ok() {
                assert_ne!(m.key(), key);
            } else {
                assert_eq!(m.key(), key);
                assert_eq!(m.regions(), &before[..]);
            }
            key = m.key();
        }
    }
}

#[test]
fn allocatable_types_follow_edk2() {
    let mut m = map();
    for ty in [efi::RESERVED_MEMORY_TYPE, efi::UNUSABLE_MEMORY, efi::MEMORY_MAPPED_IO, efi::PAL_CODE, efi::ACPI_RECLAIM_MEMORY, 0x8000_0001] {
        assert!(m.allocate(AllocateType::AnyPages, ty, 1, PAGE_SIZE).is_ok(), "type {ty:#x}");
    }
    for ty in [efi::CONVENTIONAL_MEMORY, efi::PERSISTENT_MEMORY, efi::UNACCEPTED_MEMORY_TYPE, 16, 0x6fff_ffff] {
        assert_eq!(m.allocate(AllocateType::AnyPages, ty, 1, PAGE_SIZE), Err(EfiError::InvalidParameter), "type {ty:#x}");
    }
}

#[test]
fn runtime_allocations_are_freed_whole_and_placed_on_their_granule() {
    let mut m = map();
    let free = m.free_pages();
    assert_eq!(m.allocate(AllocateType::Address(0x4100_1000), efi::RUNTIME_SERVICES_DATA, 1, PAGE_SIZE), Err(EfiError::NotFound), "off the 64 KiB granule");
    let a = m.allocate(AllocateType::Address(0x4101_0000), efi::RUNTIME_SERVICES_DATA, 1, PAGE_SIZE).unwrap();
    assert_eq!(m.free_pages(), free - 16, "one granule");
    assert_eq!(m.free(a + PAGE_SIZE, 1), Err(EfiError::InvalidParameter), "inside the granule");
    m.free(a, 1).unwrap();
    assert_eq!(m.free_pages(), free, "the whole granule came back: no padding leaks");
}

#[test]
fn mmio_can_be_added_beside_ram_but_not_over_it() {
    let mut m = map();
    let rtc = Region { ty: efi::MEMORY_MAPPED_IO, start: 0x0901_0000, pages: 1, attr: efi::MEMORY_UC | efi::MEMORY_RUNTIME, virt: 0, allocated: false };
    let key = m.key();
    m.add(rtc).unwrap();
    assert_ne!(m.key(), key);
    assert_eq!(m.regions()[0], rtc, "sorted in front of RAM");
    assert_eq!(m.add(rtc), Err(EfiError::AccessDenied), "already there");
    assert_eq!(m.add(Region { start: 0x4100_0000, ..rtc }), Err(EfiError::AccessDenied), "over RAM");
}

/// UEFI 2.10 section 2.3.6: every runtime range on AArch64 is 64 KiB-aligned in start and size,
/// so a 64K-page kernel can map the blob's code read-only and its data never executable.
#[test]
fn the_blobs_runtime_ranges_are_whole_64k_granules() {
    // The blob as built: text 0x3b000, footprint 0x50000 (the linker rounds it to 64 KiB).
    let ([code, data], granular) = blob_runtime_ranges(0x4020_0000, 0x3_b000, 0x5_0000);
    assert!(granular);
    assert_eq!((code, data), (Extent::new(0x4020_0000, 0x4_0000), Extent::new(0x4024_0000, 0x1_0000)));
    // A blob a loader placed on a 4 KiB boundary only: 4 KiB ranges, and said so.
    let ([code, data], granular) = blob_runtime_ranges(0x4020_1000, 0x3_b000, 0x5_0000);
    assert!(!granular);
    assert_eq!((code, data), (Extent::new(0x4020_1000, 0x3_b000), Extent::new(0x4023_c000, 0x1_5000)));
    // Runtime MMIO (the PL031) widened to its granule.
    let rtc = runtime_mmio(0x901_0000, 0x1000);
    assert_eq!((rtc.start, rtc.pages * PAGE_SIZE, rtc.attr & efi::MEMORY_RUNTIME != 0), (0x901_0000, 0x1_0000, true));
    assert_eq!(runtime_mmio(0x901_1800, 0x100).start, 0x901_0000);
}
