use super::*;
use crate::abi::testkit::virt_dtb;
use efi_emulator_loader::dtb_edit::Tree;
use std::vec::Vec;

fn d(ty: u32, start: u64, pages: u64, virt: u64, attr: u64) -> efi::MemoryDescriptor {
    efi::MemoryDescriptor { r#type: ty, physical_start: start, virtual_start: virt, number_of_pages: pages, attribute: attr }
}

/// Descriptors at `stride` bytes each (EDK2 uses 48).
fn raw(map: &[efi::MemoryDescriptor], stride: usize) -> Vec<u8> {
    let mut out = std::vec![0u8; map.len() * stride];
    for (i, m) in map.iter().enumerate() {
        write_desc(&mut out[i * stride..i * stride + 40], m);
    }
    out
}

const RT: u64 = efi::MEMORY_RUNTIME | efi::MEMORY_WB;
const MEMPOOL: Extent = Extent::new(0x5000_0000, 0x1000_0000);

/// An EDK2-like map: RAM, runtime code and data moved to 0x2000_0000+, ACPI tables inside what
/// the loader saw as System RAM, and the flash as runtime MMIO.
fn firmware_map() -> Vec<efi::MemoryDescriptor> {
    std::vec![
        d(efi::MEMORY_MAPPED_IO, 0x0400_0000, 0x4000, 0x2000_0000, efi::MEMORY_RUNTIME | efi::MEMORY_UC),
        d(efi::BOOT_SERVICES_DATA, 0x4000_0000, 0x7e000, 0, efi::MEMORY_WB),
        d(efi::ACPI_RECLAIM_MEMORY, 0xbe00_0000, 0x10, 0, efi::MEMORY_WB),
        d(efi::CONVENTIONAL_MEMORY, 0xbe01_0000, 0xff0, 0, efi::MEMORY_WB),
        d(efi::RUNTIME_SERVICES_CODE, 0xbf00_0000, 0x100, 0x2400_0000, RT),
        d(efi::RUNTIME_SERVICES_DATA, 0xbf10_0000, 0x100, 0x2410_0000, RT),
    ]
}

/// What efi-kexec hands over: System RAM (without the runtime ranges, which are not in it),
/// the mempool conventional.
fn loader_map() -> Vec<efi::MemoryDescriptor> {
    std::vec![
        d(efi::BOOT_SERVICES_DATA, 0x4000_0000, 0x10000, 0, efi::MEMORY_WB),
        d(efi::CONVENTIONAL_MEMORY, 0x5000_0000, 0x10000, 0, efi::MEMORY_WB),
        d(efi::BOOT_SERVICES_DATA, 0x6000_0000, 0x5f000, 0, efi::MEMORY_WB),
    ]
}

fn merged(buffer: &[u8], len: usize) -> Vec<efi::MemoryDescriptor> {
    Descriptors::new(&buffer[..len], 40).iter().collect()
}

#[test]
fn firmware_ranges_join_the_map_and_are_cut_out_of_ram() {
    let loader = raw(&loader_map(), 40);
    let mut buffer = loader.clone();
    buffer.resize(16 * 1024, 0);
    let fw = raw(&firmware_map(), 48);
    let len = merge_maps(&mut buffer, loader.len(), &Descriptors::new(&fw, 48), MEMPOOL).unwrap();
    let map = merged(&buffer, len);
    let summary: Vec<_> = map.iter().map(|m| (m.r#type, m.physical_start, m.number_of_pages, m.virtual_start)).collect();
    assert_eq!(
        summary,
        [
            (efi::MEMORY_MAPPED_IO, 0x0400_0000, 0x4000, 0x2000_0000),
            (efi::BOOT_SERVICES_DATA, 0x4000_0000, 0x10000, 0),
            (efi::CONVENTIONAL_MEMORY, 0x5000_0000, 0x10000, 0),
            (efi::BOOT_SERVICES_DATA, 0x6000_0000, 0x5e000, 0),
            (efi::ACPI_RECLAIM_MEMORY, 0xbe00_0000, 0x10, 0),
            (efi::BOOT_SERVICES_DATA, 0xbe01_0000, 0xff0, 0),
            (efi::RUNTIME_SERVICES_CODE, 0xbf00_0000, 0x100, 0x2400_0000),
            (efi::RUNTIME_SERVICES_DATA, 0xbf10_0000, 0x100, 0x2410_0000),
        ]
    );
    assert_eq!(map[6].attribute, RT, "attributes come along");
}

#[test]
fn merging_refuses_what_does_not_fit_or_overlaps_the_mempool() {
    let loader = raw(&loader_map(), 40);
    let fw = raw(&firmware_map(), 48);
    let mut small = loader.clone();
    small.resize(loader.len() + 40, 0);
    assert_eq!(merge_maps(&mut small, loader.len(), &Descriptors::new(&fw, 48), MEMPOOL).unwrap_err().field, "memmap.buff_size");
    let mut over = firmware_map();
    over.push(d(efi::RESERVED_MEMORY_TYPE, 0x5800_0000, 1, 0, 0));
    let fw = raw(&over, 48);
    let mut buffer = loader.clone();
    buffer.resize(16 * 1024, 0);
    let e = merge_maps(&mut buffer, loader.len(), &Descriptors::new(&fw, 48), MEMPOOL).unwrap_err();
    assert_eq!((e.field, e.value), ("mempool_start", 0x5800_0000));
}

/// Physical memory of a few buffers.
struct Mem(Vec<(u64, Vec<u8>)>);

impl PhysMemory for Mem {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.0.iter().find_map(|(start, data)| data.get(addr.checked_sub(*start)? as usize..)?.get(..len))
    }
}

fn guid_bytes(g: &efi::Guid) -> [u8; 16] {
    *g.as_bytes()
}

#[test]
fn the_system_table_gives_runtime_and_machine_tables() {
    use r_efi::system::*;
    // The system table in runtime data at 0xbf10_0000; its config table array (a virtual
    // address now) right after it; an RT properties table offering GetTime and variables.
    let systab_pa = 0xbf10_0000u64;
    let mut data = std::vec![0u8; 0x1000];
    data[0..8].copy_from_slice(&crate::efi::guids::SYSTEM_TABLE_SIGNATURE.to_le_bytes());
    data[8..12].copy_from_slice(&((2u32 << 16) | 70).to_le_bytes());
    data[88..96].copy_from_slice(&0x2410_0800u64.to_le_bytes());
    data[104..112].copy_from_slice(&4u64.to_le_bytes());
    data[112..120].copy_from_slice(&0x2410_0200u64.to_le_bytes());
    let memreserve = efi::Guid::from_fields(0x888eb0c6, 0x8ede, 0x4ff5, 0xa8, 0xf0, &[0x9a, 0xee, 0x5c, 0xb9, 0x77, 0xc2]);
    for (i, (g, t)) in
        [(ACPI_20_TABLE_GUID, 0xbe00_0000u64), (memreserve, 0x4500_0000), (SMBIOS3_TABLE_GUID, 0xbf10_0400), (RT_PROPERTIES_TABLE_GUID, 0x2410_0300)].iter().enumerate()
    {
        let at = 0x200 + i * 24;
        data[at..at + 16].copy_from_slice(&guid_bytes(g));
        data[at + 16..at + 24].copy_from_slice(&t.to_le_bytes());
    }
    data[0x304..0x308].copy_from_slice(&0x0031u32.to_le_bytes());
    let mem = Mem(std::vec![(systab_pa, data)]);

    let fixture = crate::abi::testkit::Fixture::new();
    let mut p = crate::abi::testkit::param(&fixture.image(), &fixture);
    p.noefi_boot = 0;
    p.mempool_start = MEMPOOL.start;
    p.mempool_sz = MEMPOOL.size;
    let loader = raw(&loader_map(), 40);
    p.rt_info.memmap.map_size = loader.len() as u64;
    let mut buffer = loader.clone();
    buffer.resize(16 * 1024, 0);
    let fw = raw(&firmware_map(), 48);
    let facts = StubFacts { system_table: systab_pa, mmap: Extent::new(0x4500_0000, fw.len() as u64), desc_size: 48, desc_ver: 1 };
    let c = complete(&mut p, &mut buffer, &fw, &facts, &mem).unwrap();
    assert_eq!(c, Completion { previous_emulator: false, firmware_descriptors: 4, config_tables: 4, passed_on: 3, revision: (2 << 16) | 70 });
    assert_eq!(p.rt_info.runtime, 0x2410_0800, "as the first kernel saw it; the validator translates it");
    assert_eq!(p.rt_info.runtime_supported_mask, 0x0031);
    assert_eq!(p.rt_info.systab_nr_tables, 3, "ACPI 2.0, SMBIOS3 and the memreserve chain (GICv3 LPI tables) pass on");
    assert_eq!(p.rt_info.systab_tables[0].guid, ACPI_20_TABLE_GUID);
    assert_eq!((p.rt_info.systab_tables[1].guid, p.rt_info.systab_tables[1].table), (memreserve, 0x4500_0000));
    assert_eq!(p.rt_info.systab_tables[2].table, 0xbf10_0400);
    assert_eq!(p.rt_info.memmap.map_size, 8 * 40);
    let map = Descriptors::new(&buffer[..8 * 40], 40);
    assert_eq!(virt_to_phys(&map, p.rt_info.runtime), Some(0xbf10_0800));

    // The same, but the vendor says efi-emulator: a kexec chain. An emulator never moves, so its
    // pointers are physical. Its services are not passed on; the tables it had are (the
    // memreserve chain above all: the GICv3 LPI tables of every kernel so far).
    let Mem(mut regions) = mem;
    let data = &mut regions[0].1;
    data[24..32].copy_from_slice(&(systab_pa + 0x900).to_le_bytes());
    data[112..120].copy_from_slice(&(systab_pa + 0x200).to_le_bytes());
    for (i, u) in "efi-emulator\0".encode_utf16().enumerate() {
        data[0x900 + 2 * i..0x902 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    let mem = Mem(regions);
    let mut p2 = crate::abi::testkit::param(&fixture.image(), &fixture);
    p2.noefi_boot = 0;
    p2.rt_info.memmap.map_size = loader.len() as u64;
    let mut buffer = loader.clone();
    buffer.resize(16 * 1024, 0);
    let c = complete(&mut p2, &mut buffer, &fw, &facts, &mem).unwrap();
    assert!(c.previous_emulator);
    assert_eq!((p2.noefi_boot, p2.rt_info.runtime), (1, 0), "a noefi block");
    assert_eq!((c.config_tables, c.passed_on, p2.rt_info.systab_nr_tables), (4, 3, 3), "ACPI, memreserve, SMBIOS; not the RT properties");
    // Its ACPI range joins the map (the tables passed on live there); its runtime ranges and
    // MMIO do not (the new emulator has its own).
    let map = merged(&buffer, p2.rt_info.memmap.map_size as usize);
    assert_eq!(c.firmware_descriptors, 1);
    assert!(map.iter().any(|d| d.r#type == efi::ACPI_RECLAIM_MEMORY && d.physical_start == 0xbe00_0000));
    assert!(!map.iter().any(|d| matches!(d.r#type, efi::RUNTIME_SERVICES_CODE | efi::RUNTIME_SERVICES_DATA | efi::MEMORY_MAPPED_IO)));
    assert_eq!(p2.rt_info.systab_tables[1].guid, memreserve);
    assert_eq!(p2.rt_info.systab_tables[1].table, 0x4500_0000);
}

#[test]
fn stub_facts_come_from_chosen() {
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let fdt_blob = tree.to_blob();
    assert!(stub_facts(&Fdt::new(&fdt_blob).unwrap()).is_none(), "no system table: nothing to derive");
    let chosen = tree.chosen_mut();
    chosen.set_property("linux,uefi-system-table", 0xbf10_0000u64.to_be_bytes().to_vec());
    chosen.set_property("linux,uefi-mmap-start", 0x4500_0000u64.to_be_bytes().to_vec());
    chosen.set_property("linux,uefi-mmap-size", 480u32.to_be_bytes().to_vec());
    chosen.set_property("linux,uefi-mmap-desc-size", 48u32.to_be_bytes().to_vec());
    let blob = tree.to_blob();
    let e = stub_facts(&Fdt::new(&blob).unwrap()).unwrap().unwrap_err();
    assert_eq!(e.field, "linux,uefi-mmap-desc-ver");
    tree.chosen_mut().set_property("linux,uefi-mmap-desc-ver", 1u32.to_be_bytes().to_vec());
    let blob = tree.to_blob();
    let facts = stub_facts(&Fdt::new(&blob).unwrap()).unwrap().unwrap();
    assert_eq!(facts, StubFacts { system_table: 0xbf10_0000, mmap: Extent::new(0x4500_0000, 480), desc_size: 48, desc_ver: 1 });
}

/// What Linux's own kexec keeps (the same system table) passes on: the machine's tables, the
/// memreserve chain, the TPM event logs; not the first kernel's device tree or initrd.
#[test]
fn what_passes_on_is_what_linux_kexec_keeps() {
    use crate::efi::guids::*;
    for g in [r_efi::system::ACPI_20_TABLE_GUID, r_efi::system::SMBIOS3_TABLE_GUID, LINUX_EFI_MEMRESERVE, LINUX_EFI_TPM_EVENT_LOG, LINUX_EFI_TPM_FINAL_LOG] {
        assert!(passes_on(&g), "{g:?}");
    }
    for g in [DEVICE_TREE, RT_PROPERTIES_TABLE, r_efi::system::MEMORY_ATTRIBUTES_TABLE_GUID] {
        assert!(!passes_on(&g), "{g:?}");
    }
}

#[test]
fn spcr_names_the_console_of_an_acpi_machine() {
    // The system table (config tables at a virtual address), an RSDP, an XSDT with a FACP and
    // the SPCR, as QEMU virt's EDK2 has them.
    let systab_pa = 0xbf10_0000u64;
    let mut systab = std::vec![0u8; 0x400];
    systab[104..112].copy_from_slice(&1u64.to_le_bytes());
    systab[112..120].copy_from_slice(&0x2410_0200u64.to_le_bytes());
    systab[0x200..0x210].copy_from_slice(&guid_bytes(&r_efi::system::ACPI_20_TABLE_GUID));
    systab[0x210..0x218].copy_from_slice(&0xbe00_0000u64.to_le_bytes());
    let mut acpi = std::vec![0u8; 0x1000];
    acpi[..8].copy_from_slice(b"RSD PTR ");
    acpi[24..32].copy_from_slice(&0xbe00_0100u64.to_le_bytes());
    acpi[0x100..0x104].copy_from_slice(b"XSDT");
    acpi[0x104..0x108].copy_from_slice(&(36u32 + 16).to_le_bytes());
    acpi[0x124..0x12c].copy_from_slice(&0xbe00_0200u64.to_le_bytes());
    acpi[0x12c..0x134].copy_from_slice(&0xbe00_0300u64.to_le_bytes());
    acpi[0x200..0x204].copy_from_slice(b"FACP");
    acpi[0x300..0x304].copy_from_slice(b"SPCR");
    acpi[0x300 + 36] = 3;
    acpi[0x300 + 44..0x300 + 52].copy_from_slice(&0x900_0000u64.to_le_bytes());
    let fw = raw(&firmware_map(), 48);
    let facts = StubFacts { system_table: systab_pa, mmap: Extent::new(0x4500_0000, fw.len() as u64), desc_size: 48, desc_ver: 1 };
    let firmware = Descriptors::new(&fw, 48);
    let mem = Mem(std::vec![(systab_pa, systab.clone()), (0xbe00_0000, acpi.clone())]);
    assert_eq!(spcr_uart(&facts, &firmware, &mem), Some(0x900_0000));
    // The SBSA generic UART, in both its forms (0x0d: 32-bit accesses only, as servers have it).
    for sbsa in [0x0d, 0x0e] {
        let mut spcr = acpi[0x300..0x340].to_vec();
        spcr[36] = sbsa;
        assert_eq!(spcr_pl011(&spcr), Some(0x900_0000), "interface type {sbsa:#x}");
    }
    // A 16550 (interface type 0) is not a console the emulator drives.
    acpi[0x300 + 36] = 0;
    let mem = Mem(std::vec![(systab_pa, systab), (0xbe00_0000, acpi)]);
    assert_eq!(spcr_uart(&facts, &firmware, &mem), None);
}
