use super::*;
use crate::abi::testkit::{placement, FakeMemory, Fixture};
use crate::abi::validate::validate;
use crate::arch::aarch64::page_table::{FrameAlloc, Regime, Table, ENTRIES};
use std::boxed::Box;
use std::vec::Vec;

#[repr(C, align(4096))]
struct Frame(Table);

#[derive(Default)]
struct HostFrames(Vec<Box<Frame>>);

impl FrameAlloc for &mut HostFrames {
    fn alloc_zeroed(&mut self) -> Option<*mut Table> {
        let mut f = Box::new(Frame([0; ENTRIES]));
        let p = &mut f.0 as *mut Table;
        self.0.push(f);
        Some(p)
    }
}

#[test]
fn identity_map_of_a_kexec_boot() {
    let fixture = Fixture::new();
    let image = fixture.image();
    let mem = FakeMemory::of(&image, &fixture);
    let v = validate(&mem, image.param_addr, placement(&image), &mut |_| {}).unwrap();
    let fdt = Fdt::new(&image.dtb).unwrap();
    let blob = BlobLayout { base: image.emulator.start, text_end: 0x9000, rw_start: 0xc000, file_end: 0xc100, mem_end: 0x2_0000 };
    let mut frames = HostFrames::default();
    let mut pt = PageTables::new(Regime::TwoLevels, &mut frames).unwrap();
    let mut notes = Vec::new();
    build(&mut pt, &v, &fdt, &blob, &mut |n| notes.push(n)).unwrap();

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
