use super::*;
use crate::abi::testkit::{placement, FakeMemory, Fixture};
use crate::abi::validate::validate;
use crate::arch::aarch64::page_table::host_frames::HostFrames;
use crate::arch::aarch64::page_table::Regime;
use std::vec::Vec;

/// Validates the planned boot and builds its identity map: (tables, blob layout, notes).
fn plan<'f>(fixture: &Fixture, image: &crate::abi::testkit::KexecImage, frames: &'f mut HostFrames) -> (PageTables<&'f mut HostFrames>, BlobLayout, Vec<PlanNote>) {
    let mem = FakeMemory::of(image, fixture);
    let v = validate(&mem, image.param_addr, placement(image), &mut |_| {}).unwrap();
    let fdt = Fdt::new(&image.dtb).unwrap();
    let blob = BlobLayout { base: image.emulator.start, text_end: 0x9000, rw_start: 0xc000, file_end: 0xc100, mem_end: 0x2_0000 };
    let mut pt = PageTables::new(Regime::TwoLevels, frames).unwrap();
    let mut notes = Vec::new();
    build(&mut pt, &v, &fdt, &blob, &mut |n| notes.push(n)).unwrap();
    (pt, blob, notes)
}

#[test]
fn identity_map_of_a_kexec_boot() {
    let fixture = Fixture::new();
    let image = fixture.image();
    let mut frames = HostFrames::default();
    let (pt, blob, notes) = plan(&fixture, &image, &mut frames);

    // RAM: Normal, RWX, in 1 GiB / 2 MiB blocks away from the emulator.
    assert_eq!(pt.translate(0x4000_0000).unwrap(), (0x4000_0000, Attributes::RAM, 2));
    assert_eq!(pt.translate(0x7fff_f000).unwrap().1, Attributes::RAM);
    assert_eq!(pt.translate(0x8000_0000), None, "nothing past RAM");
    // The emulator: W^X.
    assert_eq!(pt.translate(blob.base).unwrap().1, Attributes::CODE);
    assert_eq!(pt.translate(blob.base + 0x9000).unwrap().1, Attributes::RODATA);
    assert_eq!(pt.translate(blob.base + 0xc000).unwrap().1, Attributes::DATA);
    assert_eq!(pt.translate(blob.base + 0x1_f000).unwrap().1, Attributes::DATA);
    assert_eq!(pt.translate(blob.base + 0x2_0000).unwrap().1, Attributes::RAM);
    // Devices from the DT and the UART; disabled nodes are not mapped.
    assert_eq!(pt.translate(0x900_0000).unwrap().1, Attributes::DEVICE);
    assert_eq!(pt.translate(0x801_f000).unwrap().1, Attributes::DEVICE);
    assert_eq!(pt.translate(0xa00_0000), None);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn runtime_descriptors_get_their_virtual_alias_unless_it_is_taken() {
    let fixture = Fixture::new();
    let mut image = fixture.image();
    // Two runtime regions carved from the top of RAM: one moved to 0x2000_0000 (free), one to
    // the UART's page (taken by the identity map).
    image.map[2].number_of_pages -= 8;
    let top = image.map[2].physical_start + image.map[2].number_of_pages * PAGE_SIZE;
    for (i, virt) in [(0u64, 0x2000_0000u64), (4, 0x900_0000)] {
        image.map.push(efi::MemoryDescriptor {
            r#type: efi::RUNTIME_SERVICES_DATA,
            physical_start: top + i * PAGE_SIZE,
            virtual_start: virt,
            number_of_pages: 4,
            attribute: efi::MEMORY_RUNTIME | efi::MEMORY_WB,
        });
    }
    image.param.rt_info.memmap.map_size += 80;
    let mut frames = HostFrames::default();
    let (pt, _blob, notes) = plan(&fixture, &image, &mut frames);
    assert_eq!(pt.translate(0x2000_2010).unwrap(), (top + 0x2010, Attributes::RAM, 3));
    assert_eq!(pt.translate(top + 0x2010).unwrap().0, top + 0x2010, "identity stays too");
    assert_eq!(pt.translate(0x900_0000).unwrap(), (0x900_0000, Attributes::DEVICE, 3), "the UART keeps its page");
    assert_eq!(notes, [PlanNote::AliasCollides { index: 4, virt: 0x900_0000 }]);
}
