use super::*;
use crate::abi::testkit::KexecImage;
use crate::abi::testkit::{extent, placement, FakeMemory, Fixture};
use std::vec::Vec;

fn run(mutate: impl FnOnce(&mut KexecImage)) -> (Result<(), ParamError>, Vec<ParamWarning>) {
    let fixture = Fixture::new();
    let mut image = fixture.image();
    mutate(&mut image);
    let mem = FakeMemory::of(&image, &fixture);
    let mut warnings = Vec::new();
    let r = validate(&mem, image.param_addr, placement(&image), &mut |w| warnings.push(w)).map(|_| ());
    (r, warnings)
}

fn rejected(mutate: impl FnOnce(&mut KexecImage)) -> ParamError {
    run(mutate).0.expect_err("the block should be refused")
}

#[test]
fn the_loader_library_block_is_valid_without_warnings() {
    let fixture = Fixture::new();
    let image = fixture.image();
    let mem = FakeMemory::of(&image, &fixture);
    let mut warnings = Vec::new();
    let v = validate(&mem, image.param_addr, placement(&image), &mut |w| warnings.push(w)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(v.kernel, extent(image.kernel));
    assert_eq!(v.mempool.start, image.param.mempool_start);
    assert_eq!(v.dtb, Extent::new(image.dtb_addr, image.dtb.len() as u64));
    assert_eq!(v.map.len(), 3);
    assert_eq!(v.uart, Extent::new(0x900_0000, 0x1000));
    assert_eq!(v.runtime_phys, None);
    assert_eq!(std::string::String::from_utf16(v.cmdline_utf16()).unwrap(), "console=ttyAMA0 earlycon panic=-1");
}

macro_rules! rejects {
    ($($name:ident: $field:literal, |$img:ident| $body:expr;)*) => {$(
        #[test]
        fn $name() {
            let e = rejected(|$img: &mut KexecImage| { $body; });
            assert_eq!(e.field, $field, "{e}");
            // The message names the field, shows the value, and says what was expected.
            let text = std::format!("{e}");
            assert!(text.contains($field) && text.contains("expected"), "{text}");
        }
    )*};
}

rejects! {
    rejects_misaligned_param_address: "param (x0)", |img| img.param_addr += 8;
    rejects_null_sp: "sp", |img| img.param.sp = 0;
    rejects_block_over_the_blob: "param (x0)", |img| img.param_addr = img.emulator.start + 0x1000;
    rejects_misaligned_sp: "sp", |img| img.param.sp += 8;
    rejects_small_desc_size: "memmap.desc_size", |img| img.param.rt_info.memmap.desc_size = 32;
    rejects_odd_desc_size: "memmap.desc_size", |img| img.param.rt_info.memmap.desc_size = 44;
    rejects_desc_version: "memmap.desc_ver", |img| img.param.rt_info.memmap.desc_ver = 2;
    rejects_map_size_off_stride: "memmap.map_size", |img| img.param.rt_info.memmap.map_size -= 8;
    rejects_empty_map: "memmap.map_size", |img| img.param.rt_info.memmap.map_size = 0;
    rejects_map_running_into_the_stack: "memmap.map_size", |img| img.param.rt_info.memmap.map_size = 40 * 2000;
    rejects_non_bool_noefi_boot: "noefi_boot", |img| img.param.noefi_boot = 2;
    rejects_non_bool_print_enabled: "print_enabled", |img| img.param.print_enabled = 0xff;
    rejects_mmu_on: "mmu_on", |img| img.param.mmu_on = 1;
    rejects_odd_cmdline_size: "sz_in_byte", |img| img.param.sz_in_byte = 7;
    rejects_oversized_cmdline: "sz_in_byte", |img| img.param.sz_in_byte = 1024;
    rejects_nul_inside_cmdline: "cmdline", |img| img.param.cmdline[3] = 0;
    rejects_unpaired_surrogate: "cmdline", |img| img.param.cmdline[0] = 0xd800;
    rejects_unknown_memory_type: "memmap.type", |img| img.map[0].r#type = 0x20;
    rejects_empty_descriptor: "memmap.num_pages", |img| img.map[2].number_of_pages = 0;
    rejects_descriptor_beyond_52_bits: "memmap.phys_addr", |img| img.map[2].physical_start = 1 << 52;
    rejects_overlapping_descriptors: "memmap.phys_addr", |img| img.map[0].number_of_pages += 1;
    rejects_overlap_in_an_unsorted_map: "memmap.phys_addr", |img| {
        img.map.swap(0, 2);
        img.map[2].number_of_pages += 1;
    };
    rejects_overlap_past_a_page_that_rounds_away: "memmap.phys_addr", |img| {
        // Sorted, and the neighbour an unaligned half page (empty once rounded inward): the
        // first descriptor still overlaps the one after it.
        let d = img.map[0];
        let mut sliver = d;
        sliver.physical_start = d.physical_start + d.number_of_pages * PAGE_SIZE - 0x800;
        sliver.number_of_pages = 1;
        img.map[0].number_of_pages += 1;
        img.map.insert(1, sliver);
    };
    rejects_null_mempool: "mempool_start", |img| img.param.mempool_start = 0;
    rejects_tiny_mempool: "mempool_sz", |img| img.param.mempool_sz = 0x8000;
    rejects_mempool_outside_conventional_memory: "mempool_start", |img| img.param.mempool_start -= 0x10_0000;
    rejects_mempool_over_the_stack: "mempool_start", |img| {
        // Conventional memory that also covers the stack, and a mempool starting in it.
        let stack = img.param.sp - 0x1000;
        img.map[0].number_of_pages -= 1;
        img.map[1].physical_start = stack;
        img.map[1].number_of_pages += 1;
        img.param.mempool_start = stack;
    };
    rejects_empty_kernel: "kernel_img_sz", |img| img.param.kernel_img_sz = 0;
    rejects_kernel_outside_ram: "kernel_img_start", |img| img.param.kernel_img_start = 0x1000;
    rejects_kernel_in_the_mempool: "kernel_img_start", |img| img.param.kernel_img_start = img.param.mempool_start;
    rejects_kernel_over_the_emulator: "kernel_img_start", |img| img.param.kernel_img_start = img.emulator.start;
    rejects_null_dtb: "dtb", |img| img.param.dtb = 0;
    rejects_misaligned_dtb: "dtb", |img| img.param.dtb += 4;
    rejects_dtb_without_magic: "dtb", |img| img.dtb[0] = 0;
    rejects_dtb_with_bad_struct_offset: "dtb", |img| img.dtb[8..12].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    rejects_dtb_over_the_kernel: "dtb", |img| {
        img.param.kernel_img_start = img.dtb_addr - 0x1000;
        img.param.kernel_img_sz = 0x2000;
    };
    rejects_null_uart: "earlycon_reg_base", |img| img.param.earlycon_reg_base = 0;
    rejects_uart_in_ram: "earlycon_reg_base", |img| img.param.earlycon_reg_base = 0x4000_0000;
    rejects_unknown_earlycon: "earlycon_name", |img| img.param.earlycon_name[..7].copy_from_slice(b"ns16550");
    rejects_runtime_without_firmware: "rt_info.runtime", |img| img.param.rt_info.runtime = 0x4000_0000;
    rejects_firmware_without_runtime: "rt_info.runtime", |img| img.param.noefi_boot = 0;
    rejects_too_many_tables: "rt_info.systab_nr_tables", |img| img.param.rt_info.systab_nr_tables = 21;
    rejects_null_config_table: "rt_info.systab_tables.table", |img| img.param.rt_info.systab_nr_tables = 1;
}

#[test]
fn firmware_runtime_table_is_found_through_virt_addr() {
    let fixture = Fixture::new();
    let mut img = fixture.image();
    // Firmware runtime data at the top of RAM, moved to 0x20000000 by SetVirtualAddressMap.
    img.map[2].number_of_pages -= 4;
    let phys = img.map[2].physical_start + img.map[2].number_of_pages * PAGE_SIZE;
    img.map.push(r_efi::efi::MemoryDescriptor {
        r#type: r_efi::efi::RUNTIME_SERVICES_DATA,
        physical_start: phys,
        virtual_start: 0x2000_0000,
        number_of_pages: 4,
        attribute: r_efi::efi::MEMORY_RUNTIME | r_efi::efi::MEMORY_WB,
    });
    img.param.rt_info.memmap.map_size += 40;
    img.param.noefi_boot = 0;
    img.param.rt_info.runtime = 0x2000_0018;
    let mem = FakeMemory::of(&img, &fixture);
    let v = validate(&mem, img.param_addr, placement(&img), &mut |_| {}).unwrap();
    assert_eq!(v.runtime_phys, Some(phys + 0x18));
    img.param.rt_info.runtime = 0x3000_0000;
    let mem = FakeMemory::of(&img, &fixture);
    let e = validate(&mem, img.param_addr, placement(&img), &mut |_| {}).err().unwrap();
    assert_eq!((e.field, e.value), ("rt_info.runtime", 0x3000_0000));
}

#[test]
fn translates_virtual_runtime_addresses() {
    let bytes: Vec<u8> =
        [(r_efi::efi::RUNTIME_SERVICES_DATA, 0x7000_0000u64, 0x2000_0000u64, 4u64, r_efi::efi::MEMORY_RUNTIME), (r_efi::efi::BOOT_SERVICES_DATA, 0x4000_0000, 0, 16, 0)]
            .iter()
            .flat_map(|&(t, p, v, n, a)| {
                let mut d = Vec::new();
                d.extend_from_slice(&t.to_le_bytes());
                d.extend_from_slice(&0u32.to_le_bytes());
                for x in [p, v, n, a] {
                    d.extend_from_slice(&x.to_le_bytes());
                }
                d
            })
            .collect();
    let map = Descriptors::new(&bytes, 40);
    assert_eq!(virt_to_phys(&map, 0x2000_0018), Some(0x7000_0018));
    assert_eq!(virt_to_phys(&map, 0x7000_0018), Some(0x7000_0018), "identity-mapped firmware");
    assert_eq!(virt_to_phys(&map, 0x4000_0000), None, "not runtime memory");
    // A hostile firmware map (found by the firmware_merge fuzz target: the page count overflowed).
    let hostile = [efi::MemoryDescriptor {
        r#type: efi::RUNTIME_SERVICES_DATA,
        physical_start: u64::MAX - 0xfff,
        virtual_start: 0x1000,
        number_of_pages: u64::MAX / 2,
        attribute: efi::MEMORY_RUNTIME,
    }];
    let bytes: Vec<u8> = hostile
        .iter()
        .flat_map(|d| {
            let mut b = [0u8; 40];
            crate::mem::write_desc(&mut b, d);
            b
        })
        .collect();
    let hostile = Descriptors::new(&bytes, 40);
    assert_eq!(virt_to_phys(&hostile, 0x2000), None, "no wrap, no overflow");
}

#[test]
fn repairs_rfc_loader_defects_with_warnings() {
    let (r, warnings) = run(|img| {
        img.param.load_address += 0x1000;
        img.param.mempool_sz -= 0x123; // unaligned pool end, as the RFC loader computes it
        img.param.earlycon_reg_sz = 0;
    });
    r.unwrap();
    let fields: Vec<_> = warnings.iter().map(|w| w.field).collect();
    assert_eq!(fields, ["load_address", "mempool_sz", "earlycon_reg_sz"]);
}

#[test]
fn unaligned_descriptor_after_the_mempool_is_tolerated() {
    let (r, warnings) = run(|img| {
        img.param.mempool_sz -= 0x800;
        img.map[1].number_of_pages -= 1;
        img.map[2].physical_start -= 0x800;
        img.map[2].number_of_pages += 1;
    });
    r.unwrap();
    assert!(warnings.iter().any(|w| w.field == "memmap.phys_addr" && w.index == Some(2)), "{warnings:?}");
}
