use super::*;
use crate::testkit::{Fixture, RAM_START};

#[test]
fn lays_segments_out_like_kexec_file_load() {
    let fixture = Fixture::new();
    let img = fixture.image();
    assert_eq!(img.kernel.start, RAM_START + MIB2, "first 2 MiB boundary after the skipped MiB");
    let initrd = img.initrd.unwrap();
    assert_eq!(initrd.start, align_up(img.kernel.end(), PAGE_SIZE));
    assert_eq!(img.dtb_addr, align_up(initrd.end(), PAGE_SIZE));
    assert_eq!(img.emulator.start % PAGE_SIZE, 0);
    assert!(img.emulator.start >= img.dtb_addr + img.dtb.len() as u64);
    assert_eq!(img.emulator.size, 0x2_0000, "the blob's footprint from its header");
    assert_eq!(img.param_addr, img.emulator.end());
    assert_eq!(img.param.sp, img.param_addr + STACK_REGION);
    assert_eq!(img.param.mempool_start, img.param.sp);
    assert_eq!(img.param.mempool_sz, (1 << 20) + (3 << 20) + MEMPOOL_EXTRA);
    assert_eq!(img.param.mempool_sz % PAGE_SIZE, 0, "no RFC-style unaligned pool");
    assert_eq!(img.param.load_address, img.emulator.start);
}

#[test]
fn memory_map_hides_everything_but_the_mempool() {
    let img = Fixture::new().image();
    let ty: std::vec::Vec<_> = img.map.iter().map(|d| d.r#type).collect();
    assert_eq!(ty, [efi::BOOT_SERVICES_DATA, efi::CONVENTIONAL_MEMORY, efi::BOOT_SERVICES_DATA]);
    assert_eq!(img.map[0].physical_start, RAM_START);
    assert_eq!(img.map[1].physical_start, img.param.mempool_start);
    assert_eq!(img.map[1].number_of_pages * PAGE_SIZE, img.param.mempool_sz);
    // Exclusive ends: the last page of RAM is there.
    let last = &img.map[2];
    assert_eq!(last.physical_start + last.number_of_pages * PAGE_SIZE, RAM_START + (1 << 30));
    let bytes = img.param_bytes();
    assert_eq!(bytes.len(), PARAM_SIZE + 3 * 40);
    assert_eq!(u64::from_le_bytes(bytes[1640..1648].try_into().unwrap()), 120, "map_size");
    assert_eq!(u64::from_le_bytes(bytes[1648..1656].try_into().unwrap()), 40, "desc_size");
    assert_eq!(u32::from_le_bytes(bytes[1680..1684].try_into().unwrap()), efi::BOOT_SERVICES_DATA);
}

#[test]
fn chosen_carries_cmdline_and_initrd() {
    let fixture = Fixture::new();
    let img = fixture.image();
    let fdt = Fdt::new(&img.dtb).unwrap();
    let i = img.initrd.unwrap();
    assert_eq!(fdt.initrd(), Some((i.start, i.end())));
    assert_eq!(fdt.find("/chosen").unwrap().property_str("bootargs"), Some("console=ttyAMA0 earlycon panic=-1"));
    let units = &img.param.cmdline[..img.param.sz_in_byte as usize / 2];
    assert_eq!(std::string::String::from_utf16(units).unwrap(), "console=ttyAMA0 earlycon panic=-1");
    assert_eq!(img.param.cmdline[units.len()], 0, "NUL-terminated");
    assert_eq!(&img.param.earlycon_name[..11], b"amba-pl011\0");
}

/// arm64 takes a 2048-byte command line; the block holds 511 UTF-16 units. A longer line goes
/// in /chosen for the emulator's LoadOptions, and the block's is empty.
#[test]
fn a_command_line_longer_than_the_block_goes_in_chosen() {
    let fixture = Fixture::new();
    let long = "console=ttyAMA0 ".repeat(120);
    let mut spec = fixture.spec();
    spec.cmdline = &long;
    let img = plan(&spec).unwrap();
    assert_eq!(img.param.sz_in_byte, 0);
    let fdt = Fdt::new(&img.dtb).unwrap();
    assert_eq!(fdt.find("/chosen").unwrap().property_str(LONG_CMDLINE_CHOSEN), Some(long.as_str()));
    assert!(img.validate_as_emulator(&spec).unwrap().is_empty());
    // A short line leaves none behind, also when the running kernel's device tree had one.
    let mut tree = Tree::parse(&img.dtb).unwrap();
    tree.chosen_mut().set_property(LONG_CMDLINE_CHOSEN, b"stale\0".to_vec());
    let (dtb, mut spec) = (tree.to_blob(), fixture.spec());
    spec.dtb = &dtb;
    let img = plan(&spec).unwrap();
    assert_eq!(Fdt::new(&img.dtb).unwrap().find("/chosen").unwrap().property(LONG_CMDLINE_CHOSEN), None);
}

#[test]
fn refuses_what_cannot_be_placed() {
    let mut fixture = Fixture::new();
    fixture.dtb = crate::testkit::virt_dtb(128 << 20, "hvc");
    assert!(matches!(plan(&fixture.spec()), Err(LoaderError::DoesNotFit { .. })));
    let fixture = Fixture::new();
    let long = "x".repeat(2048);
    let mut spec = fixture.spec();
    spec.cmdline = &long;
    assert_eq!(plan(&spec).err(), Some(LoaderError::CmdlineTooLong(2048)), "arm64 takes 2047 bytes and the NUL");
    let mut spec = fixture.spec();
    let blob = std::vec![0u8; 100];
    spec.emulator = &blob;
    assert!(matches!(plan(&spec), Err(LoaderError::Blob(_))));
}

fn layout(ram: &[(u64, u64)], busy: &[(u64, u64)], reserved: &[(u64, u64)]) -> MemoryLayout {
    let ext = |v: &[(u64, u64)]| v.iter().map(|&(s, n)| Extent::new(s, n)).collect();
    MemoryLayout { ram: ext(ram), busy: ext(busy), reserved: ext(reserved) }
}

#[test]
fn places_around_busy_ranges_across_banks_and_holes() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec();
    // Bank 0 is small and mostly busy; bank 1 sits above a hole; a reservation in bank 1.
    spec.memory = layout(&[(0x4000_0000, 64 << 20), (0x1_0000_0000, 1 << 30)], &[(0x4000_0000, 61 << 20), (0x1_0000_0000, 0x1234)], &[(0x1_2000_0000, 0x8000)]);
    let img = plan(&spec).unwrap();
    let pieces = [img.kernel, img.initrd.unwrap(), Extent::new(img.dtb_addr, img.dtb.len() as u64), img.emulator, Extent::new(img.param_addr, STACK_REGION + img.param.mempool_sz)];
    for busy in &spec.memory.busy {
        // Busy ranges are rounded outward to whole pages.
        let busy = Extent::new(busy.start, align_up(busy.size, PAGE_SIZE));
        assert!(pieces.iter().all(|p| !p.overlaps(&busy)), "{pieces:x?} overlaps {busy:x?}");
    }
    assert!(pieces.iter().all(|p| !p.overlaps(&Extent::new(0x1_2000_0000, 0x8000))));
    assert_eq!(img.kernel.start, 0x1_0000_0000 + MIB2, "the 3 MiB kernel does not fit the 3 MiB left in bank 0 at 2 MiB alignment");
    assert!(img.initrd.unwrap().start > img.kernel.start, "kexec order: the initrd after the kernel");
    // The map: both banks, the hole absent, the reservation kept as reserved.
    let ty = |t| img.map.iter().filter(move |d| d.r#type == t);
    assert_eq!(ty(efi::RESERVED_MEMORY_TYPE).map(|d| (d.physical_start, d.number_of_pages)).collect::<std::vec::Vec<_>>(), [(0x1_2000_0000, 8)]);
    assert_eq!(ty(efi::CONVENTIONAL_MEMORY).count(), 1);
    let total: u64 = img.map.iter().map(|d| d.number_of_pages * PAGE_SIZE).sum();
    assert_eq!(total, (64 << 20) + (1 << 30), "every byte of RAM described once, nothing of the hole");
    assert!(img.map.windows(2).all(|w| w[0].physical_start + w[0].number_of_pages * PAGE_SIZE <= w[1].physical_start), "sorted, no overlaps");
    // And the emulator's own validator accepts it.
    assert_eq!(img.validate_as_emulator(&spec).unwrap(), std::vec::Vec::<std::string::String>::new());
}

#[test]
fn reservations_in_the_dtb_survive_as_reserved_memory() {
    let mut fixture = Fixture::new();
    let mut tree = Tree::parse(&fixture.dtb).unwrap();
    tree.reservations.push((RAM_START + (600 << 20), 0x1000));
    let rm = tree.root.child_mut("reserved-memory");
    rm.set_property("#address-cells", 2u32.to_be_bytes().to_vec());
    rm.set_property("#size-cells", 2u32.to_be_bytes().to_vec());
    let mut reg = (RAM_START + (700 << 20)).to_be_bytes().to_vec();
    reg.extend_from_slice(&0x10_0000u64.to_be_bytes());
    rm.child_mut("firmware@0").set_property("reg", reg);
    fixture.dtb = tree.to_blob();
    let img = fixture.image();
    let reserved: std::vec::Vec<_> = img.map.iter().filter(|d| d.r#type == efi::RESERVED_MEMORY_TYPE).map(|d| (d.physical_start, d.number_of_pages)).collect();
    assert_eq!(reserved, [(RAM_START + (600 << 20), 1), (RAM_START + (700 << 20), 256)]);
}

#[test]
fn chosen_drops_the_running_kernels_boot_and_gets_fresh_seeds() {
    let mut fixture = Fixture::new();
    let mut tree = Tree::parse(&fixture.dtb).unwrap();
    for stale in STALE_CHOSEN.iter().chain(&UEFI_CHOSEN) {
        tree.chosen_mut().set_property(stale, std::vec![1, 2, 3, 4]);
    }
    fixture.dtb = tree.to_blob();
    let mut spec = fixture.spec();
    spec.initrd = None;
    let img = plan(&spec).unwrap();
    let fdt = Fdt::new(&img.dtb).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    for stale in STALE_CHOSEN.iter().chain(&UEFI_CHOSEN) {
        assert!(chosen.property(stale).is_none(), "{stale} passed on");
    }
    spec.seeds = Some(RandomSeeds { kaslr: 0x1122_3344_5566_7788, rng: std::vec![7; 64] });
    let img = plan(&spec).unwrap();
    let fdt = Fdt::new(&img.dtb).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    assert_eq!(chosen.property("kaslr-seed"), Some(&0x1122_3344_5566_7788u64.to_be_bytes()[..]));
    assert_eq!(chosen.property("rng-seed"), Some(&[7u8; 64][..]));
}

#[test]
fn segments_are_page_sized_and_the_blob_knows_its_block() {
    let fixture = Fixture::new();
    let spec = fixture.spec();
    let img = plan(&spec).unwrap();
    let segments = img.segments(&spec).unwrap();
    let names: std::vec::Vec<_> = segments.iter().map(|s| s.name).collect();
    assert_eq!(names, ["kernel", "initrd", "dtb", "emulator", "param"]);
    for s in &segments {
        assert_eq!(s.addr % PAGE_SIZE, 0, "{}", s.name);
        assert_eq!(s.mem_size % PAGE_SIZE, 0, "{}", s.name);
        assert!(s.bytes.len() as u64 <= s.mem_size, "{}", s.name);
    }
    let blob = &segments[3].bytes;
    assert_eq!(BlobHeader::parse(blob).unwrap().param_slot, img.param_addr);
    assert_eq!(segments[4].mem_size, PARAM_REGION, "the stack and mempool are not copied");
}

/// kexec_load wants every segment on the running kernel's page: a 16K or 64K first kernel
/// (Debian's arm64-16k, RHEL's kernel-64k) refused the 4K layout with EADDRNOTAVAIL. The
/// fixture's RAM starts 1 MiB after a busy MiB and the blob is 128 KiB: 4K-aligned only.
#[test]
fn segments_follow_the_running_kernels_page_size() {
    let fixture = Fixture::new();
    for page in [16 << 10, 64 << 10] {
        let mut spec = fixture.spec();
        spec.page_size = page;
        let img = plan(&spec).unwrap();
        assert_eq!(img.page, page);
        for s in img.segments(&spec).unwrap() {
            assert_eq!((s.addr % page, s.mem_size % page), (0, 0), "{} at {:#x}+{:#x} with {page:#x} pages", s.name, s.addr, s.mem_size);
        }
        assert_eq!(img.param.mempool_sz % page, 0);
        assert!(img.validate_as_emulator(&spec).unwrap().is_empty(), "the emulator takes it as it is");
    }
    let mut spec = fixture.spec();
    spec.page_size = 8 << 10;
    assert_eq!(plan(&spec).err().map(|e| std::format!("{e}")).as_deref(), Some("a page size of 8192 B: arm64 kernels use 4, 16 or 64 KiB pages"));
}

#[test]
fn what_the_emulator_would_refuse_is_refused_by_the_loader() {
    let fixture = Fixture::new();
    let spec = fixture.spec();
    let mut img = plan(&spec).unwrap();
    img.param.mempool_sz = 4096;
    let e = img.validate_as_emulator(&spec).unwrap_err();
    assert_eq!(std::format!("{e}"), "the emulator would refuse this boot: invalid parameter block: mempool_sz = 0x1000: expected at least 1 MiB of whole pages");
}

#[test]
fn too_large_for_ram_names_the_piece() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec();
    spec.memory = layout(&[(0x4000_0000, 64 << 20)], &[], &[]);
    let e = plan(&spec).err().unwrap();
    assert!(matches!(e, LoaderError::DoesNotFit { what: "parameter block, stack and mempool", .. }), "{e:?}");
    assert!(std::format!("{e}").contains("too large for this machine's RAM"));
    spec.memory = layout(&[], &[], &[]);
    assert_eq!(plan(&spec).err(), Some(LoaderError::NoMemory));
}

#[test]
fn highest_placement_fills_free_ram_from_the_top() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec();
    spec.placement = Placement::Highest;
    spec.memory = layout(&[(0x4000_0000, 1 << 30), (0x1_0000_0000, 512 << 20)], &[(0x1_1f00_0000, 0x1000)], &[]);
    let img = plan(&spec).unwrap();
    assert_eq!(img.kernel.start, 0x1_1fc0_0000, "the 3 MiB kernel as high as 2 MiB alignment allows, above the busy page");
    let busy = Extent::new(0x1_1f00_0000, 0x1000);
    assert!(!img.initrd.unwrap().overlaps(&busy) && !img.emulator.overlaps(&busy));
    let pool = Extent::new(img.param.mempool_start, img.param.mempool_sz);
    assert!(pool.start >= 0x1_0000_0000, "the mempool in the high bank too: {pool:x?}");
    assert_eq!(img.validate_as_emulator(&spec).unwrap(), std::vec::Vec::<std::string::String>::new());
}

#[test]
fn a_uefi_booted_kernels_firmware_is_left_for_the_emulator_to_take() {
    let mut fixture = Fixture::new();
    let mut tree = Tree::parse(&fixture.dtb).unwrap();
    for name in UEFI_CHOSEN {
        tree.chosen_mut().set_property(name, 1u64.to_be_bytes().to_vec());
    }
    fixture.dtb = tree.to_blob();
    let mut spec = fixture.spec();
    spec.firmware = true;
    let img = plan(&spec).unwrap();
    assert_eq!((img.param.noefi_boot, img.param.rt_info.runtime), (0, 0), "the emulator derives rt_info");
    assert_eq!(img.param_region(), FIRMWARE_PARAM_REGION, "room for the merged map");
    let chosen_has = |name| Fdt::new(&img.dtb).unwrap().find("/chosen").unwrap().property(name).is_some();
    assert!(UEFI_CHOSEN.iter().all(|&n| chosen_has(n)), "the stub's records stay for the emulator");
    assert!(img.validate_as_emulator(&spec).unwrap().is_empty(), "valid as far as it goes");
}

#[test]
fn a_crash_kernel_stays_in_its_region_and_points_at_its_core_header() {
    let f = Fixture::new();
    let region = Extent::new(RAM_START + (768 << 20), 256 << 20);
    let header = vec![0x7fu8; 700];
    let mut spec = f.spec();
    spec.memory = MemoryLayout { ram: vec![region], busy: vec![], reserved: vec![] };
    let preserved = vec![Extent::new(RAM_START, 768 << 20)];
    spec.crash = Some(Crash { elfcorehdr: &header, preserved: preserved.clone() });
    let img = plan(&spec).unwrap();
    // Every segment, the stack and the mempool inside the crash region.
    for s in img.segments(&spec).unwrap() {
        assert!(s.addr >= region.start && s.addr + s.mem_size <= region.end(), "{} at {:#x}", s.name, s.addr);
    }
    assert!(img.param.mempool_start >= region.start && img.param.mempool_start + img.param.mempool_sz <= region.end());
    let hdr = img.elfcorehdr.unwrap();
    assert_eq!(hdr.size, 700);
    // /chosen names the header and the usable memory, in the root's cells (2 and 2).
    let fdt = efi_emulator::drivers::fdt::Fdt::new(&img.dtb).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    assert_eq!(chosen.property("linux,elfcorehdr").unwrap(), [hdr.start.to_be_bytes(), 700u64.to_be_bytes()].concat());
    assert_eq!(chosen.property("linux,usable-memory-range").unwrap(), [region.start.to_be_bytes(), region.size.to_be_bytes()].concat());
    // The crashed kernel's RAM is reserved in the map; nothing outside the region is free.
    assert!(img.map.iter().any(|d| d.r#type == efi::RESERVED_MEMORY_TYPE && d.physical_start == RAM_START && d.number_of_pages == (768 << 20) / PAGE_SIZE));
    for d in img.map.iter().filter(|d| d.r#type != efi::RESERVED_MEMORY_TYPE) {
        assert!(d.physical_start >= region.start && d.physical_start + d.number_of_pages * PAGE_SIZE <= region.end(), "{:#x} type {}", d.physical_start, d.r#type);
    }
    assert!(img.validate_as_emulator(&spec).is_ok());
    assert!(img.describe().contains("elfcorehdr"));
}

/// A root with one address cell cannot name a crash region above 4 GiB: refused, not cut to
/// its low 32 bits (which would send the crash kernel to the wrong RAM).
#[test]
fn crash_ranges_the_cells_cannot_hold_are_refused() {
    let mut f = Fixture::new();
    let mut tree = Tree::parse(&f.dtb).unwrap();
    tree.root.set_property("#address-cells", 1u32.to_be_bytes().to_vec());
    tree.root.set_property("#size-cells", 1u32.to_be_bytes().to_vec());
    f.dtb = tree.to_blob();
    let header = vec![0x7fu8; 700];
    let region = Extent::new(0x1_0000_0000, 256 << 20);
    let mut spec = f.spec();
    spec.memory = MemoryLayout { ram: vec![region], busy: vec![], reserved: vec![] };
    spec.crash = Some(Crash { elfcorehdr: &header, preserved: vec![] });
    let e = plan(&spec).err().map(|e| std::format!("{e}"));
    assert!(e.as_deref().is_some_and(|e| e.ends_with("does not fit the device tree's 1 cell(s) (#address-cells/#size-cells of /)")), "{e:?}");
}

/// `crashkernel=X,high` with its low part: everything in the high region (the kernel accepts
/// crash segments only there), the low one the crash kernel's RAM too, and named second in
/// `linux,usable-memory-range` (kernels before 5.18 read only the first entry).
#[test]
fn a_crash_kernel_with_a_low_region_loads_high_and_lists_high_first() {
    let f = Fixture::new();
    let low = Extent::new(RAM_START + (64 << 20), 64 << 20);
    let high = Extent::new(RAM_START + (768 << 20), 256 << 20);
    let header = vec![0x7fu8; 700];
    let mut spec = f.spec();
    spec.memory = MemoryLayout { ram: vec![high, low], busy: vec![low], reserved: vec![] };
    spec.crash = Some(Crash { elfcorehdr: &header, preserved: vec![Extent::new(RAM_START, 64 << 20), Extent::new(RAM_START + (128 << 20), 640 << 20)] });
    spec.placement = Placement::Lowest;
    let img = plan(&spec).unwrap();
    for s in img.segments(&spec).unwrap() {
        assert!(high.contains(&Extent::new(s.addr, s.mem_size)), "{} at {:#x}", s.name, s.addr);
    }
    assert!(high.contains(&Extent::new(img.param.mempool_start, img.param.mempool_sz)));
    let fdt = efi_emulator::drivers::fdt::Fdt::new(&img.dtb).unwrap();
    let usable = fdt.find("/chosen").unwrap().property("linux,usable-memory-range").unwrap();
    assert_eq!(usable, [high.start, high.size, low.start, low.size].map(u64::to_be_bytes).concat());
    assert!(img.map.iter().any(|d| d.physical_start == low.start && d.r#type == efi::BOOT_SERVICES_DATA), "the low region is RAM for the crash kernel");
    assert!(img.validate_as_emulator(&spec).is_ok());
}

#[test]
fn a_map_of_hundreds_of_descriptors_takes_a_larger_parameter_region() {
    let fixture = Fixture::new();
    let mut spec = fixture.spec();
    let reserve = |n: u64| (0..n).map(|i| (RAM_START + (512 << 20) + i * 0x20000, 0x10000)).collect::<std::vec::Vec<_>>();
    spec.memory = layout(&[(RAM_START, 1 << 30)], &[], &reserve(300));
    let img = plan(&spec).unwrap();
    assert!(img.map.len() > 600, "{} descriptors", img.map.len());
    assert_eq!(img.param_region(), ((PARAM_SIZE + img.map.len() * 40) as u64).next_multiple_of(PAGE_SIZE));
    assert!(STACK_REGION - img.param_region() >= MIN_STACK);
    assert_eq!(img.validate_as_emulator(&spec).unwrap(), std::vec::Vec::<std::string::String>::new());
    // Beyond what leaves the emulator its stack: refused, with the count.
    spec.memory = layout(&[(RAM_START, 1 << 30)], &[], &reserve(1000));
    assert!(matches!(plan(&spec), Err(LoaderError::TooManyDescriptors(n)) if n > 2000));
}

#[test]
fn file_size_only_reserves_the_file_not_the_running_image() {
    let mut fixture = Fixture::new();
    fixture.kernel = efi_emulator::efi::pe::test_image();
    let mut spec = fixture.spec();
    let running = efi_emulator::efi::pe::PeImage::parse(spec.kernel).unwrap().size_of_image as u64;
    assert!(running > spec.kernel.len() as u64, "the fixture's image is larger running than as a file");
    let reserved = plan(&spec).unwrap();
    assert!(reserved.initrd.unwrap().start >= reserved.kernel.start + running);
    spec.file_size_only = true;
    let file_only = plan(&spec).unwrap();
    assert_eq!(file_only.initrd.unwrap().start, align_up(file_only.kernel.end(), PAGE_SIZE), "the initrd follows the file's bytes");
    assert!(file_only.initrd.unwrap().start < file_only.kernel.start + running);
}
