use super::*;
use crate::abi::testkit::{virt_dtb, FakeMemory, RAM_START, UART};
use crate::abi::validate::{validate_with, BlobPlacement};
use efi_emulator_loader::dtb_edit::Tree;
use std::vec::Vec;
use std::{format, vec};

/// Where the kernel put the Image (2 MiB aligned), the payload and the DTB (top-down, 2 MiB
/// aligned), in 1 GiB of RAM.
const IMAGE_AT: u64 = RAM_START + (2 << 20);
const FOOTPRINT: u64 = 0x8_0000;
const PAYLOAD_AT: u64 = RAM_START + (4 << 20);
const DTB_AT: u64 = RAM_START + (1 << 30) - (2 << 20);
const RAM_END: u64 = RAM_START + (1 << 30);

struct Case {
    dtb: Vec<u8>,
    payload: Vec<u8>,
}

/// The DTB `kexec_file_load` builds for `payload`: QEMU virt's, with the initrd range in
/// `/chosen`, `bootargs`, and a `/memreserve/` for the initrd; then `edit`.
fn case(payload: Vec<u8>, edit: impl FnOnce(&mut Tree)) -> Case {
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let chosen = tree.chosen_mut();
    chosen.set_property("linux,initrd-start", PAYLOAD_AT.to_be_bytes().to_vec());
    chosen.set_property("linux,initrd-end", (PAYLOAD_AT + payload.len() as u64).to_be_bytes().to_vec());
    chosen.set_property("bootargs", b"console=ttyAMA0\0".to_vec());
    tree.reservations.push((PAYLOAD_AT, payload.len() as u64));
    edit(&mut tree);
    Case { dtb: tree.to_blob(), payload }
}

fn pe(size: usize) -> Vec<u8> {
    let mut v = vec![0x11u8; size];
    v[..2].copy_from_slice(b"MZ");
    v
}

/// The DTB and the payload where the kernel put them.
fn memory(c: &Case) -> FakeMemory {
    FakeMemory { regions: vec![(DTB_AT, c.dtb.clone()), (PAYLOAD_AT, c.payload.clone())] }
}

fn inputs<'a>(c: &'a Case, mem: &'a FakeMemory) -> Inputs<'a> {
    Inputs { fdt: Fdt::new(&c.dtb).unwrap(), dtb: Extent::new(DTB_AT, c.dtb.len() as u64), footprint: Extent::new(IMAGE_AT, FOOTPRINT), blob_start: IMAGE_AT + 0x1000, mem }
}

/// Plans and writes the block; returns the plan, the block and its map.
fn build(c: &Case) -> Result<(Plan, EfiEmulatorParam, Vec<efi::MemoryDescriptor>), DtbEntryError> {
    let mem = memory(c);
    let i = inputs(c, &mem);
    let plan = plan(&i)?;
    let mut p = unsafe_zeroed_param();
    let mut map = vec![efi::MemoryDescriptor { r#type: 0, physical_start: 0, virtual_start: 0, number_of_pages: 0, attribute: 0 }; 1600];
    let n = write(&i, &plan, &c.payload, &mut p, &mut map)?;
    map.truncate(n);
    Ok((plan, p, map))
}

fn unsafe_zeroed_param() -> EfiEmulatorParam {
    // SAFETY: EfiEmulatorParam is plain old data (integers and arrays of them): all zeros is a
    // valid value.
    unsafe { core::mem::zeroed() }
}

/// Runs the emulator's validator over what was written, with the DTB and the payload in place.
fn validates(c: &Case, plan: &Plan, p: &EfiEmulatorParam, map: &[efi::MemoryDescriptor]) {
    let mut bytes = Vec::new();
    // SAFETY: plain old data of PARAM_SIZE bytes, every byte initialised.
    bytes.extend_from_slice(unsafe { core::slice::from_raw_parts(p as *const _ as *const u8, PARAM_SIZE) });
    for d in map {
        let at = bytes.len();
        bytes.resize(at + 40, 0);
        crate::mem::write_desc(&mut bytes[at..], d);
    }
    let mut mem = memory(c);
    mem.regions.push((plan.param_addr, bytes));
    let mut warnings = Vec::new();
    let placement = BlobPlacement { start: IMAGE_AT + 0x1000, mem_size: FOOTPRINT - 0x1000 };
    validate_with(&mem, plan.param_addr, placement, &mut |w| warnings.push(format!("{w}")), plan.firmware.is_some()).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
}

fn extent(d: &efi::MemoryDescriptor) -> Extent {
    desc_extent(d)
}

#[test]
fn a_pe_payload_boots_from_the_largest_free_range() {
    let c = case(pe(0x12345), |t| t.reservations.push((RAM_START + (512 << 20), 0x1_0000)));
    let (plan, p, map) = build(&c).unwrap();
    assert_eq!(plan.kernel(), Extent::new(PAYLOAD_AT, 0x12345));
    assert_eq!(plan.initrd(), None);
    // The free range above the reservation, below the DTB's 2 MiB; the mempool at its top.
    assert_eq!(plan.mempool.end(), DTB_AT);
    assert_eq!(plan.mempool.size, page_up(2 * 0x12345) + MEMPOOL_EXTRA);
    assert_eq!(p.sp, plan.param_addr + STACK_REGION);
    assert_eq!(p.mempool_start, p.sp);
    assert_eq!((p.kernel_img_start, p.kernel_img_sz, p.dtb, p.noefi_boot, p.earlycon_reg_base), (PAYLOAD_AT, 0x12345, DTB_AT, 1, UART));
    assert_eq!(std::string::String::from_utf16(&p.cmdline[..p.sz_in_byte as usize / 2]).unwrap(), "console=ttyAMA0");
    // The reservation survives, the payload's own /memreserve/ does not; only the mempool is free.
    let reserved: Vec<_> = map.iter().filter(|d| d.r#type == efi::RESERVED_MEMORY_TYPE).map(extent).collect();
    assert_eq!(reserved, [Extent::new(RAM_START + (512 << 20), 0x1_0000)]);
    let free: Vec<_> = map.iter().filter(|d| d.r#type == efi::CONVENTIONAL_MEMORY).map(extent).collect();
    assert_eq!(free, [plan.mempool]);
    // RAM is covered without a gap, from its first to its last page.
    let mut cursor = RAM_START;
    for d in &map {
        assert_eq!(d.physical_start, cursor);
        cursor = extent(d).end();
    }
    assert_eq!(cursor, RAM_END);
    validates(&c, &plan, &p, &map);
}

#[test]
fn a_bundle_brings_its_initrd_and_command_line() {
    let kernel = pe(0x3000);
    let archive = efi_emulator_loader::bundle::make(&kernel, Some(b"the initrd"), Some("root=/dev/vda\n"));
    let c = case(archive, |_| ());
    let (plan, p, map) = build(&c).unwrap();
    let k = plan.kernel();
    assert_eq!(&c.payload[(k.start - PAYLOAD_AT) as usize..][..k.size as usize], &kernel[..]);
    let i = plan.initrd().unwrap();
    assert_eq!(&c.payload[(i.start - PAYLOAD_AT) as usize..][..i.size as usize], b"the initrd");
    assert_eq!(std::string::String::from_utf16(&p.cmdline[..p.sz_in_byte as usize / 2]).unwrap(), "root=/dev/vda", "the bundle's cmdline wins over bootargs");
    validates(&c, &plan, &p, &map);
}

#[test]
fn a_crash_boot_stays_in_the_usable_range() {
    let region = Extent::new(RAM_START + (768 << 20), 256 << 20);
    let header = Extent::new(region.start + (8 << 20), 0x1000);
    let pair = |e: Extent| [e.start.to_be_bytes(), e.size.to_be_bytes()].concat();
    // In a crash boot the kernel puts every segment in the region.
    let c = case(pe(0x2000), |t| {
        let chosen = t.chosen_mut();
        chosen.set_property("linux,elfcorehdr", pair(header));
        chosen.set_property("linux,usable-memory-range", pair(region));
        t.reservations.push((header.start, header.size));
    });
    let mem = memory(&c);
    let mut i = inputs(&c, &mem);
    i.footprint = Extent::new(region.start, FOOTPRINT);
    // The payload and the DTB lie outside the region in this fixture: only the plan is checked.
    let plan = plan(&i).unwrap();
    assert!(region.contains(&Extent::new(plan.param_addr, STACK_REGION + plan.mempool.size)));
    assert!(!plan.mempool.overlaps(&header));
    let mut p = unsafe_zeroed_param();
    let mut map = vec![efi::MemoryDescriptor { r#type: 0, physical_start: 0, virtual_start: 0, number_of_pages: 0, attribute: 0 }; 64];
    let n = write(&i, &plan, &c.payload, &mut p, &mut map).unwrap();
    let map = &map[..n];
    // Outside the region: reserved, all of it; inside: the mempool is the only free memory.
    let reserved: Vec<_> = map.iter().filter(|d| d.r#type == efi::RESERVED_MEMORY_TYPE).map(extent).collect();
    assert_eq!(reserved, [Extent::new(RAM_START, region.start - RAM_START)]);
    assert!(map.iter().filter(|d| d.r#type != efi::RESERVED_MEMORY_TYPE).all(|d| region.contains(&extent(d))));
    assert_eq!(map.iter().filter(|d| d.r#type == efi::CONVENTIONAL_MEMORY).count(), 1);
}

#[test]
fn the_ima_buffer_is_kept_where_the_next_kernel_maps_it() {
    let ima = Extent::new(RAM_START + (600 << 20), 0x1800);
    let c = case(pe(0x2000), |t| {
        t.chosen_mut().set_property(IMA_BUFFER, [ima.start.to_be_bytes(), ima.size.to_be_bytes()].concat());
        t.reservations.push((ima.start, ima.size));
    });
    let (plan, p, map) = build(&c).unwrap();
    assert_eq!(plan.ima, Some(ima));
    let acpi: Vec<_> = map.iter().filter(|d| d.r#type == efi::ACPI_RECLAIM_MEMORY).map(extent).collect();
    assert_eq!(acpi, [Extent::new(ima.start, 0x2000)]);
    assert!(map.iter().all(|d| d.r#type != efi::RESERVED_MEMORY_TYPE), "its /memreserve/ is not kept twice");
    validates(&c, &plan, &p, &map);
}

#[test]
fn what_cannot_boot_is_named() {
    let no_payload = case(pe(0x2000), |t| {
        t.chosen_mut().remove_property("linux,initrd-start");
    });
    assert_eq!(build(&no_payload).err().unwrap(), DtbEntryError::NoPayload);
    let elf = case(b"\x7fELF and more".to_vec(), |_| ());
    assert!(matches!(build(&elf).err().unwrap(), DtbEntryError::Payload(BundleError::Unknown { .. })));
    let no_console = case(pe(0x2000), |t| t.chosen_mut().remove_property("stdout-path"));
    assert_eq!(build(&no_console).err().unwrap(), DtbEntryError::NoConsole);
    let not_a_pl011 = case(pe(0x2000), |t| t.chosen_mut().set_property("stdout-path", b"/intc@8000000\0".to_vec()));
    assert_eq!(build(&not_a_pl011).err().unwrap(), DtbEntryError::NoConsole, "a console the emulator cannot drive is none");
    // RAM taken by reservations but for 512 KiB.
    let full = case(pe(0x2000), |t| t.reservations.push((RAM_START, (1 << 30) - 0x8_0000)));
    assert!(matches!(build(&full).err().unwrap(), DtbEntryError::NoRoom { .. }));
    // Longer than the block holds: the block's line is empty and the boot flow takes the text
    // from bootargs; longer than the kernel takes: refused.
    let long = case(pe(0x2000), |t| t.chosen_mut().set_property("bootargs", [vec![b'x'; 600], vec![0]].concat()));
    let (plan_, p, _) = build(&long).unwrap();
    assert_eq!(p.sz_in_byte, 0);
    let mem = memory(&long);
    assert_eq!(command_line(&inputs(&long, &mem), &plan_, &long.payload).len(), 600);
    let too_long = case(pe(0x2000), |t| t.chosen_mut().set_property("bootargs", [vec![b'x'; 2048], vec![0]].concat()));
    assert_eq!(build(&too_long).err().unwrap(), DtbEntryError::CmdlineTooLong(2048));
}

#[test]
fn merging_keeps_every_reserved_byte() {
    let d = |ty, start: u64, pages| efi::MemoryDescriptor { r#type: ty, physical_start: start, virtual_start: 0, number_of_pages: pages, attribute: 0 };
    let (r, a) = (efi::RESERVED_MEMORY_TYPE, efi::ACPI_RECLAIM_MEMORY);
    let mut map = [d(r, 0x5000, 2), d(r, 0x1000, 2), d(r, 0x2000, 2), d(a, 0x3000, 1), d(a, 0x6000, 3)];
    let n = merge(&mut map);
    let got: Vec<_> = map[..n].iter().map(|d| (d.r#type, d.physical_start, d.number_of_pages)).collect();
    // The overlapping and touching reserved ranges are one; the ACPI range inside it is dropped,
    // the one that overlaps its end keeps only what lies beyond.
    assert_eq!(got, [(r, 0x1000, 3), (r, 0x5000, 2), (a, 0x7000, 2)]);
}
