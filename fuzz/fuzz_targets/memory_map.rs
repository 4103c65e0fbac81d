//! The memory-map allocator driven by random operations, with its invariants checked after
//! each: sorted and disjoint regions, pages conserved, allocations only from conventional
//! memory, the map key changing exactly when the map does.
#![no_main]
use efi_emulator::efi::memory::{AllocateType, MemoryMap, Region};
use libfuzzer_sys::fuzz_target;
use r_efi::efi;

const POOL: (u64, u64) = (0x4100_0000, 0x4200_0000);

fn map() -> MemoryMap {
    let r = |ty, start: u64, end: u64| Region { ty, start, pages: (end - start) / 4096, attr: efi::MEMORY_WB, virt: 0, allocated: false };
    MemoryMap::new(vec![r(efi::BOOT_SERVICES_DATA, 0x4000_0000, POOL.0), r(efi::CONVENTIONAL_MEMORY, POOL.0, POOL.1), r(efi::BOOT_SERVICES_DATA, POOL.1, 0x8000_0000)])
}

fuzz_target!(|data: &[u8]| {
    let mut m = map();
    let total: u64 = m.regions().iter().map(|r| r.pages).sum();
    for op in data.chunks_exact(8) {
        let before = m.regions().to_vec();
        let key = m.key();
        let arg = u32::from_le_bytes(op[4..8].try_into().unwrap()) as u64;
        let pages = 1 + (op[1] as u64 % 64);
        let ty = [efi::LOADER_CODE, efi::LOADER_DATA, efi::RUNTIME_SERVICES_DATA, 0x20, efi::CONVENTIONAL_MEMORY][op[2] as usize % 5];
        let r = match op[0] % 5 {
            0 => m.allocate(AllocateType::AnyPages, ty, pages, 4096 << (op[3] % 10)).map(|a| (a, pages)),
            1 => m.allocate(AllocateType::MaxAddress(0x4000_0000 + arg * 16), ty, pages, 4096).map(|a| (a, pages)),
            2 => m.allocate(AllocateType::Address(0x4000_0000 + (arg % 0x40000) * 4096), ty, pages, 4096).map(|a| (a, pages)),
            3 => m.free(0x4000_0000 + (arg % 0x40000) * 4096, pages).map(|_| (0, 0)),
            _ => m.free(0x4000_0000 + arg, pages).map(|_| (0, 0)),
        };
        let regions = m.regions();
        assert!(regions.windows(2).all(|w| w[0].end() <= w[1].start), "disjoint and sorted");
        assert_eq!(regions.iter().map(|r| r.pages).sum::<u64>(), total, "pages conserved");
        match r {
            Ok((addr, n)) if n > 0 => {
                assert!(addr >= POOL.0 && addr + n * 4096 <= POOL.1, "allocated only from conventional memory");
                assert_ne!(m.key(), key);
            }
            Ok(_) => assert_ne!(m.key(), key),
            Err(_) => {
                assert_eq!(m.key(), key);
                assert_eq!(m.regions(), &before[..]);
            }
        }
        // Loader-owned memory never becomes free.
        assert!(m.regions().iter().filter(|r| r.end() <= POOL.0 || r.start >= POOL.1).all(|r| r.ty != efi::CONVENTIONAL_MEMORY));
    }
});
