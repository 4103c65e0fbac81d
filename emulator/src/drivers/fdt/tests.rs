use super::*;
use crate::abi::testkit::virt_dtb;
use efi_emulator_loader::dtb_edit::Tree;

#[test]
fn reads_memory_psci_and_devices() {
    let blob = virt_dtb(1 << 30, "smc");
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(fdt.memory().collect::<std::vec::Vec<_>>(), [(0x4000_0000, 1 << 30)]);
    assert_eq!(fdt.psci_method(), Some("smc"));
    let root = fdt.root();
    assert_eq!(root.cells(), Cells { address: 2, size: 2 });
    let gic = fdt.find("/intc").unwrap();
    assert_eq!(gic.name, "intc@8000000");
    assert_eq!(gic.reg(root.cells()).collect::<std::vec::Vec<_>>(), [(0x800_0000, 0x1_0000), (0x801_0000, 0x1_0000)]);
    assert!(!fdt.find("/disabled@a000000").unwrap().is_enabled());
    assert_eq!(fdt.find("/chosen").unwrap().property_str("stdout-path"), Some("/pl011@9000000"));
    assert_eq!(fdt.stdout_uart(), Ok((0x900_0000, 0x1000)));
    assert!(fdt.find("/nothing").is_none());
    assert_eq!(fdt.initrd(), None);
}

#[test]
fn edits_round_trip_through_the_writer() {
    let blob = virt_dtb(1 << 30, "hvc");
    let mut tree = Tree::parse(&blob).unwrap();
    assert_eq!(Tree::parse(&tree.to_blob()).unwrap(), tree, "parse(serialize(t)) == t");
    let chosen = tree.chosen_mut();
    chosen.set_property("linux,initrd-start", 0x4800_0000u64.to_be_bytes().to_vec());
    chosen.set_property("linux,initrd-end", 0x4810_0000u32.to_be_bytes().to_vec());
    chosen.set_property("bootargs", b"console=ttyAMA0\0".to_vec());
    let out = tree.to_blob();
    let fdt = Fdt::new(&out).unwrap();
    assert_eq!(fdt.initrd(), Some((0x4800_0000, 0x4810_0000)), "64- and 32-bit cells");
    assert_eq!(fdt.find("/chosen").unwrap().property_str("bootargs"), Some("console=ttyAMA0"));
    assert_eq!(fdt.psci_method(), Some("hvc"));
}

#[test]
fn deletes_a_property_in_place() {
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let chosen = tree.chosen_mut();
    chosen.set_property("linux,initrd-start", 0x4800_0000u64.to_be_bytes().to_vec());
    chosen.set_property("linux,initrd-end", 0x4810_0000u64.to_be_bytes().to_vec());
    chosen.set_property("bootargs", b"console=ttyAMA0\0".to_vec());
    let mut blob = tree.to_blob();
    let len = blob.len();
    assert!(nop_property(&mut blob, "/chosen", "linux,initrd-start"));
    assert!(nop_property(&mut blob, "/chosen", "linux,initrd-end"));
    assert!(!nop_property(&mut blob, "/chosen", "linux,initrd-end"), "gone already");
    assert!(!nop_property(&mut blob, "/chosen", "linux,initrd"), "a prefix of a name is not the name");
    assert_eq!(blob.len(), len);
    let fdt = Fdt::new(&blob).unwrap();
    assert_eq!(fdt.initrd(), None);
    assert_eq!(fdt.find("/chosen").unwrap().property_str("bootargs"), Some("console=ttyAMA0"), "the properties after it are still read");
    assert_eq!(fdt.psci_method(), Some("hvc"));
}

#[test]
fn overwrites_a_number_in_place() {
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let chosen = tree.chosen_mut();
    chosen.set_property("linux,initrd-start", 0x4800_0000u64.to_be_bytes().to_vec());
    chosen.set_property("linux,initrd-end", 0x4810_0000u32.to_be_bytes().to_vec());
    chosen.set_property("odd", vec![1, 2, 3, 4, 5]);
    let mut blob = tree.to_blob();
    assert!(set_uint_in_place(&mut blob, "/chosen", "linux,initrd-start", 0x4010_0000));
    assert!(set_uint_in_place(&mut blob, "/chosen", "linux,initrd-end", 0x4820_0000));
    assert!(!set_uint_in_place(&mut blob, "/chosen", "linux,initrd-end", 1 << 32), "too large for 4 bytes");
    assert!(!set_uint_in_place(&mut blob, "/chosen", "odd", 1), "5 bytes: neither 4 nor 8");
    assert!(!set_uint_in_place(&mut blob, "/chosen", "missing", 1));
    assert_eq!(Fdt::new(&blob).unwrap().initrd(), Some((0x4010_0000, 0x4820_0000)));
}

#[test]
fn rejects_damaged_blobs_with_the_bad_value() {
    let good = virt_dtb(1 << 30, "hvc");
    let mut bad = good.clone();
    bad[0] = 0;
    assert_eq!(Fdt::new(&bad).err().unwrap().expected, "the FDT magic 0xd00dfeed");
    assert_eq!(total_size(&good[..10]).err().unwrap().expected, "a 40-byte FDT header");
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&15u32.to_be_bytes());
    assert_eq!(Fdt::new(&bad).err().unwrap().value, 15);
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&(32u32 << 20).to_be_bytes());
    assert_eq!(Fdt::new(&bad).err().unwrap().value, 32 << 20);
    // Truncated structure block: the walk notices and does not run off the end.
    let mut bad = good.clone();
    let size_struct = u32::from_be_bytes(bad[36..40].try_into().unwrap());
    bad[36..40].copy_from_slice(&(size_struct - 8).to_be_bytes());
    assert!(Fdt::new(&bad).is_err());
    // A blob shorter than its totalsize.
    assert_eq!(Fdt::new(&good[..good.len() - 1]).err().unwrap().expected, "at least totalsize bytes of DTB");
}

/// A board's console under a translated bus, as a Raspberry Pi 4's: `reg` in the bus's own
/// address space (one cell each), `ranges` mapping it to the CPU's; an alias with options; a
/// UART of another kind; a bus without `ranges`.
#[test]
fn the_console_is_a_pl011_at_its_translated_address_or_none() {
    let cells = |v: &[u32]| v.iter().flat_map(|w| w.to_be_bytes()).collect::<std::vec::Vec<u8>>();
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let soc = tree.root.child_mut("soc");
    soc.set_property("#address-cells", cells(&[1]));
    soc.set_property("#size-cells", cells(&[1]));
    soc.set_property("ranges", cells(&[0x7e00_0000, 0x0, 0xfe00_0000, 0x180_0000]));
    let pl011 = soc.child_mut("serial@7e201000");
    pl011.set_property("compatible", b"arm,pl011\0arm,primecell\0".to_vec());
    pl011.set_property("reg", cells(&[0x7e20_1000, 0x200]));
    let aux = soc.child_mut("serial@7e215040");
    aux.set_property("compatible", b"brcm,bcm2835-aux-uart\0".to_vec());
    aux.set_property("reg", cells(&[0x7e21_5040, 0x40]));
    let closed = tree.root.child_mut("closed-bus");
    closed.set_property("#address-cells", cells(&[1]));
    closed.set_property("#size-cells", cells(&[1]));
    closed.child_mut("serial@1000").set_property("compatible", b"arm,sbsa-uart\0".to_vec());
    closed.child_mut("serial@1000").set_property("reg", cells(&[0x1000, 0x1000]));
    let aliases = tree.root.child_mut("aliases");
    aliases.set_property("serial0", b"/soc/serial@7e201000\0".to_vec());
    aliases.set_property("serial1", b"/soc/serial@7e215040\0".to_vec());
    let console = |tree: &mut Tree, path: &str| {
        tree.chosen_mut().set_property("stdout-path", [path.as_bytes(), b"\0"].concat());
        let blob = tree.to_blob();
        Fdt::new(&blob).unwrap().stdout_uart().map_err(|e| e.to_string())
    };
    assert_eq!(console(&mut tree, "serial0:115200n8"), Ok((0xfe20_1000, 0x200)), "translated through /soc's ranges");
    assert_eq!(console(&mut tree, "serial1:115200n8"), Err("/chosen/stdout-path names a brcm,bcm2835-aux-uart UART, not a PL011 or SBSA UART".into()));
    assert_eq!(console(&mut tree, "/closed-bus/serial@1000"), Err("the stdout-path UART's address 0x1000 does not translate through closed-bus's ranges".into()));
    assert_eq!(console(&mut tree, "/pl011@9000000"), Ok((0x900_0000, 0x1000)), "a root device needs no translation");
    assert_eq!(console(&mut tree, "serial7"), Err("/chosen/stdout-path names no node of the tree".into()));
}

/// The PL031 the emulator's runtime GetTime drives is taken from the OS by NOP-ing its
/// `compatible` in place: Linux then binds rtc-efi alone, not rtc-pl031 to the same clock too.
#[test]
fn the_served_pl031_is_hidden_from_the_os() {
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    let rtc = tree.root.child_mut("pl031@9010000");
    rtc.set_property("compatible", b"arm,pl031\0arm,primecell\0".to_vec());
    rtc.set_property("reg", [0x901_0000u64.to_be_bytes(), 0x1000u64.to_be_bytes()].concat());
    let mut blob = tree.to_blob();
    let (node, base, size) = Fdt::new(&blob).unwrap().pl031().unwrap();
    assert_eq!((node.name, base, size), ("pl031@9010000", 0x901_0000, 0x1000));
    let len = blob.len();
    assert!(nop_property(&mut blob, "/pl031@9010000", "compatible"));
    assert_eq!(blob.len(), len);
    let fdt = Fdt::new(&blob).unwrap();
    assert!(fdt.pl031().is_none(), "no driver matches it now");
    assert_eq!(fdt.find("/pl031@9010000").unwrap().reg(fdt.root().cells()).next(), Some((0x901_0000, 0x1000)), "still mapped by the memory plan");
}

/// QEMU's `tpm-tis-device` as `virt` describes it: under the platform bus, at an offset its
/// `ranges` (one child cell, two parent cells, one size cell) place.
#[test]
fn the_tpm_is_found_on_the_platform_bus_at_its_translated_address() {
    let cells = |v: &[u32]| v.iter().flat_map(|w| w.to_be_bytes()).collect::<std::vec::Vec<u8>>();
    let mut tree = Tree::parse(&virt_dtb(1 << 30, "hvc")).unwrap();
    assert_eq!(Fdt::new(&tree.to_blob()).unwrap().tpm_tis(), None, "no TPM on this machine");
    let bus = tree.root.child_mut("platform-bus@c000000");
    bus.set_property("compatible", b"qemu,platform\0simple-bus\0".to_vec());
    bus.set_property("#address-cells", cells(&[1]));
    bus.set_property("#size-cells", cells(&[1]));
    bus.set_property("ranges", cells(&[0, 0, 0xc00_0000, 0x200_0000]));
    let tpm = bus.child_mut("tpm_tis@0");
    tpm.set_property("compatible", b"tcg,tpm-tis-mmio\0".to_vec());
    tpm.set_property("reg", cells(&[0, 0x5000]));
    assert_eq!(Fdt::new(&tree.to_blob()).unwrap().tpm_tis(), Some((0xc00_0000, 0x5000)));
    tree.root.child_mut("platform-bus@c000000").child_mut("tpm_tis@0").set_property("status", b"disabled\0".to_vec());
    assert_eq!(Fdt::new(&tree.to_blob()).unwrap().tpm_tis(), None, "a disabled TPM is not used");
    // An ACPI machine's, as efi-kexec passes it on.
    tree.chosen_mut().set_property(TPM_TIS_CHOSEN, [0xc00_0000u64.to_be_bytes(), 0x5000u64.to_be_bytes()].concat());
    assert_eq!(Fdt::new(&tree.to_blob()).unwrap().tpm_tis(), Some((0xc00_0000, 0x5000)));
}
