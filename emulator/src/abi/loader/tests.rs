use super::*;
use crate::abi::testkit::{Fixture, RAM_START};

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

#[test]
fn refuses_what_cannot_be_placed() {
    let mut fixture = Fixture::new();
    fixture.dtb = crate::abi::testkit::virt_dtb(128 << 20, "hvc");
    assert!(matches!(plan(&fixture.spec()), Err(LoaderError::DoesNotFit { .. })));
    let fixture = Fixture::new();
    let long = "x".repeat(600);
    let mut spec = fixture.spec();
    spec.cmdline = &long;
    assert_eq!(plan(&spec).err(), Some(LoaderError::CmdlineTooLong(600)));
    let mut spec = fixture.spec();
    let blob = std::vec![0u8; 100];
    spec.emulator = &blob;
    assert!(matches!(plan(&spec), Err(LoaderError::Blob(_))));
}
