//! The DT reader and editor on QEMU's own `virt` device trees.

use efi_emulator::drivers::fdt::Fdt;
use efi_emulator_loader::dtb_edit::Tree;
use qemu_tests::{options, EntryEl};

fn dump(el: EntryEl, mem: &str, smp: u32) -> Vec<u8> {
    let mut o = options(el);
    o.mem = mem.into();
    o.smp = smp;
    let dir = std::env::temp_dir().join(format!("efi-emu-dtb-{}-{el:?}-{mem}-{smp}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = xtask::harness::run::dump_dtb(&o, &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    dtb
}

#[test]
fn reads_memory_psci_console_and_cpus() {
    for (el, mem, bytes, method) in [(EntryEl::El1, "1G", 1u64 << 30, "hvc"), (EntryEl::El2, "2G", 2 << 30, "smc")] {
        let blob = dump(el, mem, 2);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.memory().collect::<Vec<_>>(), [(0x4000_0000, bytes)]);
        assert_eq!(fdt.psci_method(), Some(method), "PSCI conduit at {el:?}");
        let path = fdt.find("/chosen").unwrap().property_str("stdout-path").unwrap();
        let uart = fdt.find(path).unwrap();
        assert!(uart.compatible_with("arm,pl011"));
        assert_eq!(uart.reg(fdt.root().cells()).next(), Some((0x900_0000, 0x1000)));
        let cpus = fdt.find("/cpus").unwrap();
        assert_eq!(cpus.children().filter(|c| c.name.starts_with("cpu@")).count(), 2);
    }
}

#[test]
fn editing_chosen_keeps_everything_else() {
    let blob = dump(EntryEl::El1, "1G", 1);
    let tree = Tree::parse(&blob).unwrap();
    assert_eq!(Tree::parse(&tree.to_blob()).unwrap(), tree, "a real tree survives a round trip");
    let mut edited = tree.clone();
    edited.chosen_mut().set_property("bootargs", b"quiet\0".to_vec());
    let out = edited.to_blob();
    let fdt = Fdt::new(&out).unwrap();
    assert_eq!(fdt.find("/chosen").unwrap().property_str("bootargs"), Some("quiet"));
    assert_eq!(fdt.find("/chosen").unwrap().property("rng-seed").map(|v| v.len()), Some(32), "QEMU's rng-seed kept");
    assert_eq!(fdt.psci_method(), Some("hvc"));
}
